"""The replay's calendar, guard table, headline numbers and day lines, on tiny records."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipelines.errors import PipelineError
from pipelines.ops.replay import day_line, replay
from pipelines.ops.replay_project import make_project
from pipelines.ops.stories import STORIES, story
from pipelines.ops.timeline import _ranges, guards, headline

REPO = Path(__file__).resolve().parents[3]


def test_stories_run_on_the_shipped_settings() -> None:
    """No story sets what decides (prepare, drift, gate, train): the shipped params.yaml must
    survive every story. The warm-up holds labelled days for the first champion plus the label delay."""
    from pipelines.ops.stories import PRODUCT_SECTIONS, check_overrides

    for name, st in STORIES.items():
        for quick in (False, True):
            cal = st.calendar(quick, None)
            p = cal["params"]
            assert not [k for k in p if k.partition(".")[0] in PRODUCT_SECTIONS], name
            assert cal["warmup_days"] > p.get("simulate.label_delay_days", 7) + 3, name
            assert cal["failure_at"] < cal["days"], name
    assert story("login_policy").calendar(False, 120)["days"] == 120
    with pytest.raises(PipelineError, match="at least 1"):
        story("skew").calendar(True, 0)
    with pytest.raises(PipelineError, match="unknown story 'nope'"):
        story("nope")
    with pytest.raises(PipelineError, match=r"story x overrides gate.max_prediction_psi: stories run on the shipped"):
        check_overrides({"gate.max_prediction_psi": 1.5, "simulate.days": 3, "drift.html_report": False}, "story x")


def _rec(day: str, **kw):
    base = {"day": day, "phase": "served", "failure": False, "validated": True, "champion": "1", "matured": [], "training": []}
    return {**base, **kw}


def _live(day: str, auc: float, v: str = "1"):
    return {"day": day, "versions": [v], "roc_auc": auc, "default_rate": 0.1, "rows": 100}


def test_guard_table_and_headline() -> None:
    drift = lambda retrain, brakes: {  # noqa: E731
        "drifted": ["logins_30d"],
        "threshold": 0.2,
        "top_psi": 2.5,
        "top_feature": "logins_30d",
        "retrain": retrain,
        "brakes": brakes,
    }
    gate = {
        "day": "2026-01-06",
        "trigger": "retrain requested: PSI",
        "passed": True,
        "candidate_roc_auc": 0.83,
        "version": "2",
        "role": "champion",
        "champion_before": "1",
        "champion_after": "2",
        "reasons": [],
    }
    days = [
        _rec("2026-01-01", matured=[_live("2025-12-29", 0.82)]),
        _rec(
            "2026-01-02", validated=False, failure=True, quarantine_reasons=["income: nulls"], matured=[_live("2025-12-30", 0.80)]
        ),
        _rec(
            "2026-01-03",
            failure=True,
            drift=drift(False, ["drifted 1 day(s) in a row, 2 needed"]),
            matured=[_live("2026-01-01", 0.81)],
        ),
        _rec("2026-01-04", failure=True, drift=drift(False, ["waiting for labels: 0 of 2"]), matured=[_live("2026-01-03", 0.70)]),
        _rec("2026-01-05", failure=True, drift=drift(False, ["waiting for labels: 1 of 3"]), matured=[_live("2026-01-04", 0.72)]),
        _rec("2026-01-06", failure=True, drift=drift(True, []), training=[gate], matured=[_live("2026-01-05", 0.71)]),
        _rec("2026-01-07", failure=True, champion="2", matured=[_live("2026-01-06", 0.73)]),
        _rec("2026-01-08", failure=True, champion="2", matured=[_live("2026-01-07", 0.83, "2")]),
        _rec("2026-01-09", failure=True, champion="2", matured=[_live("2026-01-08", 0.81, "2")]),
    ]
    result = {"days": days, "trainings": [gate], "retrains": 1, "failure": {"start": "2026-01-02", "end": None}}
    rows = guards(result)
    assert [r["guard"] for r in rows] == ["validation", "drift", "brakes", "retrain", "gate", "retrains"]
    assert rows[0]["day"] == "2026-01-02" and "1 day(s) quarantined (2026-01-02)" in rows[0]["what"]
    assert rows[2]["day"] == "2026-01-03" and "held 3 day(s) (2026-01-03..2026-01-05)" in rows[2]["what"]
    assert "champion v1 -> v2" in rows[4]["what"]
    h = headline(result)
    assert h["before"] == pytest.approx(0.81) and h["after"] == pytest.approx(0.82) and h["after_version"] == "2"
    assert h["worst"] == pytest.approx(round((0.70 + 0.72 + 0.71) / 3, 4))
    line = day_line(days[5])
    assert (
        line.startswith("2026-01-06  champion   v1  live AUC 0.710 (01-05)")
        and "RETRAIN REQUESTED" in line
        and "v2 gate PASSED" in line
    )


def test_ranges() -> None:
    assert _ranges(["2026-01-01", "2026-01-02", "2026-01-03", "2026-01-07"]) == "2026-01-01..2026-01-03, 2026-01-07"
    assert _ranges([]) == ""


def test_project_settings_must_exist_and_out_must_not_hold_the_project(tmp_path: Path) -> None:
    with pytest.raises(PipelineError, match=r"story setting drift\.no_such_key is not in params\.yaml"):
        make_project(REPO, tmp_path / "p", {"drift.no_such_key": 1})
    with pytest.raises(PipelineError, match="would hold the project itself"):
        replay("skew", out=REPO.parent)


def test_a_replay_project_holds_what_its_stages_run(tmp_path: Path) -> None:
    """Every dvc.yaml stage runs a program by a path inside the project (scripts/python): the
    replay's own project must hold it, or its first training stage fails with "not found"."""
    import os

    import yaml

    root = make_project(REPO, tmp_path / "p", {})
    stages = yaml.safe_load((root / "dvc.yaml").read_text())["stages"]
    for name, stage in stages.items():
        program = root / stage["cmd"].split()[0]
        assert program.is_file() and os.access(program, os.X_OK), f"stage {name} runs {program}, missing from the project"
