"""The scoring DAG's decision to skip a run: a day with no batch has nothing to score."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from pipelines.ops import tasks
from tests.support.params import set_param
from tests.support.project import build_project

CALENDAR = (date(2026, 1, 1), date(2026, 1, 24))
TODAY = date(2026, 12, 3)


def reason(day: date = TODAY, **facts: object) -> str | None:
    given = {"has_batch": False, "asked": False, "simulated": True, "calendar": CALENDAR, "raw_dir": "data/raw", **facts}
    return tasks.no_batch_reason(day, **given)  # type: ignore[arg-type]


def test_own_data_a_day_without_its_file_is_skipped_only_when_the_feed_is_not_running() -> None:
    assert reason(simulated=False) == (
        "no batch for 2026-12-03 in data/raw, nor in the 7 days before it (there is none): nothing to score"
    )
    assert reason(simulated=False, latest=date(2026, 1, 24)) == (
        "no batch for 2026-12-03 in data/raw, nor in the 7 days before it (the latest is 2026-01-24): nothing to score"
    )
    # a running feed's missing batch goes ahead: land_batch fails naming the file, and that alerts
    assert reason(simulated=False, latest=date(2026, 12, 2)) is None
    assert reason(simulated=False, latest=date(2026, 11, 26)) is None
    assert reason(simulated=False, has_batch=True) is None


def test_the_simulated_feed_scores_its_calendar_only() -> None:
    assert reason(date(2026, 1, 1)) is None and reason(date(2026, 1, 24)) is None
    outside = reason(date(2026, 1, 25))
    assert outside == (
        "no batch for 2026-01-25 in data/raw, and the simulated feed's calendar is 2026-01-01 to 2026-01-24: "
        "nothing to score (name the day in the run's conf to simulate it)"
    )
    assert reason(TODAY, has_batch=True) is None  # a day landed outside the calendar is scored


def test_a_run_that_asks_for_its_day_goes_ahead() -> None:
    """land_batch then simulates the day, or fails naming the missing file (an alert)."""
    assert reason(asked=True) is None
    assert reason(asked=True, simulated=False) is None


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = build_project(tmp_path / "proj").root
    monkeypatch.setenv("PIPELINES_ROOT", str(root))
    return root


def test_the_facts_come_from_params_and_data(project: Path) -> None:
    # the repository's params.yaml: the simulated feed from 2026-01-01, 24 days
    assert tasks.nothing_to_score(date(2026, 1, 24), "scheduled", None, None) is None
    assert "nothing to score" in (tasks.nothing_to_score(date(2026, 1, 25), "scheduled", None, None) or "")
    set_param(project / "params.yaml", "simulate.days", 30)
    assert tasks.nothing_to_score(date(2026, 1, 25), "scheduled", None, None) is None

    set_param(project / "params.yaml", "data.source", "files")
    assert tasks.nothing_to_score(TODAY, "scheduled", None, None) == (
        "no batch for 2026-12-03 in data/raw, nor in the 7 days before it (there is none): nothing to score"
    )
    assert tasks.nothing_to_score(TODAY, "manual", None, None) is not None  # the trigger form's defaults: today
    # asked: the trigger form's day, a scenario, a backfill's dates
    assert tasks.nothing_to_score(TODAY, "manual", "2026-12-03", None) is None
    assert tasks.nothing_to_score(TODAY, "manual", None, "feature_drift") is None
    assert tasks.nothing_to_score(TODAY, "backfill", None, None) is None
    # a batch there, as a CSV; or one that was quarantined (land_batch says so, as before)
    (project / "data" / "raw").mkdir(parents=True)
    (project / "data" / "raw" / "2026-12-03.csv").write_text("customer_id\n1\n")
    assert tasks.nothing_to_score(TODAY, "scheduled", None, None) is None
    assert tasks.nothing_to_score(date(2026, 12, 6), "scheduled", None, None) is None  # a running feed's gap: it fails, loud
    (project / "data" / "quarantine" / "2026-12-04").mkdir(parents=True)
    assert tasks.nothing_to_score(date(2026, 12, 4), "scheduled", None, None) is None


def test_the_compact_task_compacts_the_two_closed_days_before_its_day_and_skips_an_open_one(project: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = project / "data" / "predictions_online" / "2026-01-04"
    folder.mkdir(parents=True)
    for k in range(3):
        pq.write_table(pa.table({"request_id": [f"r{k}"], "score": [0.5]}), folder / f"part-{k}-1-{k:06d}.parquet")
    run = datetime(2026, 1, 6, 0, 30, tzinfo=UTC)
    out = tasks.compact(run, None, now=run)
    assert [(r["day"], r["merged_parts"], r["files"]) for r in out] == [("2026-01-04", 3, 1), ("2026-01-05", 0, 0)]
    assert tasks.compact(run, None, now=run)[0]["written"] == 0  # idempotent
    just_after_midnight = datetime(2026, 1, 6, 0, 0, 1, tzinfo=UTC)
    assert [r["day"] for r in tasks.compact(run, None, now=just_after_midnight)] == ["2026-01-04"]  # the 5th still open
