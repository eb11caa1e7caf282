"""Compaction of the online prediction log (pipelines/serving/compact.py), on real part files:
the readers' one listing (pipelines.io.day_parts) gives every row exactly once before, during and
after a compaction, after a SIGKILL at any point of it, and after late parts; the parts a
compacted file holds are deleted only past the grace period; a day ends with at most 48 files;
an open day is refused in one line."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from pipelines.config import Settings, load_settings
from pipelines.errors import PipelineError
from pipelines.io import HOLDS_KEY, day_parts
from pipelines.serving.compact import MAX_FILES, compact
from pipelines.serving.predlog import COLUMNS, PredictionLog
from tests.support.params import set_param

DAY = date(2026, 1, 5)
REPO = Path(__file__).resolve().parents[3]


def now() -> datetime:
    return datetime.now(UTC)


def write_parts(settings: Settings, n: int, rows: int = 3, start: int = 0, features: bool = True) -> set[str]:
    """``n`` parts of ``rows`` rows each in DAY's folder, written as the server writes them
    (PredictionLog.table); the request ids they hold."""
    d = settings.params.data
    plog = PredictionLog(settings.online_predictions_dir, d)
    folder = settings.online_predictions_dir / DAY.isoformat()
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(start)
    ids: set[str] = set()
    for k in range(start, start + n):
        when = datetime(DAY.year, DAY.month, DAY.day, tzinfo=UTC) + timedelta(seconds=2 * k)
        cols = {c: rng.normal(size=rows) for c in d.numerical} | {c: ["a"] * rows for c in d.categorical}
        request = (f"r{k}", list(range(rows)), when, "champion", "m", "1", "run", rng.random(rows), 1.0, (cols, 0))
        table = plog.table(DAY.isoformat(), [request])
        if not features:
            table = table.drop_columns([*d.numerical, *d.categorical])
        pq.write_table(table, folder / f"part-{int(when.timestamp() * 1000)}-{100 + k % 3}-{k:06d}.parquet")
        ids.add(f"r{k}")
    return ids


def read_rows(files: list[Path]) -> list[tuple[str, int]]:
    """(request_id, row within it) of every row in ``files``."""
    out: list[tuple[str, int]] = []
    for f in files:
        rid = pq.read_table(f, columns=["request_id"], use_threads=False).column("request_id").to_pylist()
        seen: dict[str, int] = {}
        for r in rid:
            out.append((r, seen.setdefault(r, 0)))
            seen[r] += 1
    return out


def each_once(files: list[Path], ids: set[str], rows: int = 3) -> None:
    got = read_rows(files)
    assert len(got) == len(set(got)) == len(ids) * rows, "a row read twice or missed"
    assert {r for r, _ in got} == ids


def parts_of(settings: Settings) -> list[Path]:
    return sorted((settings.online_predictions_dir / DAY.isoformat()).glob("part-*.parquet"))


def test_a_closed_day_is_merged_and_a_reader_that_listed_before_still_reads_every_row_once(settings: Settings) -> None:
    ids = write_parts(settings, 300)
    listed = day_parts(settings.online_predictions_dir, DAY)  # a reader lists, then the compaction runs
    assert len(listed) == 300
    res = compact(settings, DAY, now())
    assert (res["merged_parts"], res["rows"], res["written"], res["removed"], res["files"]) == (300, 900, 1, 0, 1)
    each_once(listed, ids)  # the parts are still there (grace period)
    after = day_parts(settings.online_predictions_dir, DAY)
    assert [p.name for p in after] == ["compact-00001.parquet"]
    each_once(after, ids)
    holds = json.loads(pq.read_schema(after[0]).metadata[HOLDS_KEY])
    assert holds == [p.name for p in listed]  # in the order the readers read them
    assert pq.read_table(after[0]).schema.remove_metadata().equals(pq.read_schema(listed[0]).remove_metadata())
    again = compact(settings, DAY, now())  # idempotent: nothing new
    assert (again["written"], again["files"], again["reason"]) == (0, 1, "compacted already, no new part")
    assert len(parts_of(settings)) == 300


def test_covered_parts_are_deleted_only_past_the_grace_period(settings: Settings) -> None:
    grace = settings.params.serve.compact_grace_seconds
    assert grace == 3600
    ids = write_parts(settings, 50)
    t = now()
    compact(settings, DAY, t)
    assert compact(settings, DAY, t + timedelta(seconds=grace - 60))["removed"] == 0
    assert len(parts_of(settings)) == 50
    each_once(day_parts(settings.online_predictions_dir, DAY), ids)
    assert compact(settings, DAY, t + timedelta(seconds=grace + 60))["removed"] == 50
    assert parts_of(settings) == []
    each_once(day_parts(settings.online_predictions_dir, DAY), ids)


def test_late_parts_go_into_a_new_compacted_file(settings: Settings) -> None:
    ids = write_parts(settings, 40)
    compact(settings, DAY, now())
    ids |= write_parts(settings, 5, start=1000)  # a server flushed the day's last rows late
    listed = day_parts(settings.online_predictions_dir, DAY)
    assert len(listed) == 6
    each_once(listed, ids)
    res = compact(settings, DAY, now())
    assert (res["merged_parts"], res["written"], res["files"]) == (5, 1, 2)
    each_once(day_parts(settings.online_predictions_dir, DAY), ids)


def test_a_busy_day_ends_with_at_most_48_files_and_a_full_rewrite_replaces_the_old_ones(settings: Settings) -> None:
    set_param(settings.root / "params.yaml", "serve.compact_rows", 1)
    small = load_settings(settings.root / "params.yaml")
    ids = write_parts(small, 60, rows=1)
    res = compact(small, DAY, now())
    assert res["files"] <= MAX_FILES and res["written"] == 30  # a 1-row budget would need 60: doubled
    each_once(day_parts(small.online_predictions_dir, DAY), ids, rows=1)
    rewrites = []
    for k in range(20):  # late parts, one run each, until the compacted files are rewritten
        ids |= write_parts(small, 1, rows=1, start=1000 + k)
        res = compact(small, DAY, now())
        files = day_parts(small.online_predictions_dir, DAY)
        assert len(files) == res["files"] <= MAX_FILES
        each_once(files, ids, rows=1)
        rewrites += [res["reason"]] if "compacted file(s)" in res["reason"] else []
    assert rewrites == ["merged 1 part(s) and 48 compacted file(s) into 40 file(s)"]
    later = now() + timedelta(hours=2)
    assert compact(small, DAY, later)["removed"] > 80  # the parts and the replaced compacted files
    folder = small.online_predictions_dir / DAY.isoformat()
    assert sorted(folder.glob("*.parquet")) == day_parts(small.online_predictions_dir, DAY)
    each_once(day_parts(small.online_predictions_dir, DAY), ids, rows=1)


def test_parts_of_another_schema_keep_their_own_file(settings: Settings) -> None:
    ids = write_parts(settings, 10, features=False)  # written before the log carried the model's inputs
    ids |= write_parts(settings, 10, start=100)
    res = compact(settings, DAY, now())
    assert res["written"] == 2
    files = day_parts(settings.online_predictions_dir, DAY)
    assert sorted(len(pq.read_schema(f).names) for f in files)[0] == len(COLUMNS)
    each_once(files, ids)


def test_a_reader_looping_during_the_compaction_sees_every_row_once(settings: Settings) -> None:
    ids = write_parts(settings, 400, rows=2)
    stop, seen, errors = threading.Event(), [], []

    def reader() -> None:
        while not stop.is_set():
            try:
                got = read_rows(day_parts(settings.online_predictions_dir, DAY))
                seen.append((len(got), len(set(got))))
            except Exception as exc:  # noqa: BLE001 - the thread reports it to the test
                errors.append(exc)
                return

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for k in range(3):  # compactions, late parts between them
            compact(settings, DAY, now())
            ids |= write_parts(settings, 1, rows=2, start=5000 + k)
    finally:
        stop.set()
        thread.join()
    assert not errors, errors
    assert len(seen) >= 1
    assert all(n == distinct and n in range(800, 800 + 2 * 3 + 1) for n, distinct in seen)
    each_once(day_parts(settings.online_predictions_dir, DAY), ids, rows=2)


def test_an_open_day_is_refused_in_one_line(settings: Settings) -> None:
    t = datetime(2026, 1, 6, 0, 0, 1, tzinfo=UTC)  # the servers may still flush 2026-01-05's last rows
    with pytest.raises(PipelineError, match=r"^2026-01-05 is still open .* from 2026-01-06 00:00:02 UTC$"):
        compact(settings, DAY, t)
    with pytest.raises(PipelineError, match=r"^2026-01-07 is in the future"):
        compact(settings, date(2026, 1, 7), t)
    assert compact(settings, DAY, t + timedelta(seconds=1))["reason"].startswith("no prediction log for 2026-01-05")


def _cli(settings: Settings, *args: str, failpoint: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("PIPELINES_FAILPOINT", None)
    if failpoint:
        env["PIPELINES_FAILPOINT"] = failpoint
    return subprocess.run([sys.executable, "-m", "pipelines", "--params", str(settings.root / "params.yaml"), *args],
                          cwd=settings.root, env=env, capture_output=True, text=True, timeout=300)


def test_the_cli_refuses_today_in_one_line_and_compacts_a_closed_day(settings: Settings) -> None:
    today = now().date()
    res = _cli(settings, "compact", "--date", today.isoformat())
    assert res.returncode == 1
    assert res.stderr.strip().startswith(f"error: {today} is still open") and len(res.stderr.strip().splitlines()) == 1
    res = _cli(settings, "compact", "--date", "not-a-day")
    assert res.returncode == 1 and res.stderr.strip() == "error: not a date (expected YYYY-MM-DD): 'not-a-day'"
    write_parts(settings, 20)
    res = _cli(settings, "compact", "--date", DAY.isoformat())
    assert res.returncode == 0, res.stderr
    assert "merged_parts=20" in res.stdout and "20 of 20 parts merged" in res.stderr


@pytest.mark.parametrize("point", ["compact:written", "compact:renamed", "compact:removing"])
def test_a_compaction_killed_anywhere_loses_and_duplicates_nothing(settings: Settings, point: str) -> None:
    set_param(settings.root / "params.yaml", "serve.compact_rows", 50)  # several files: killed after the first
    if point == "compact:removing":
        set_param(settings.root / "params.yaml", "serve.compact_grace_seconds", 0)  # the next run deletes at once
    run = load_settings(settings.root / "params.yaml")
    ids = write_parts(run, 60)
    if point == "compact:removing":  # compacted; the second run is killed after deleting one part
        assert _cli(run, "compact", "--date", DAY.isoformat()).returncode == 0
    res = _cli(run, "compact", "--date", DAY.isoformat(), failpoint=point)
    assert res.returncode in (-signal.SIGKILL, 128 + signal.SIGKILL), res.stderr
    folder = run.online_predictions_dir / DAY.isoformat()
    written = sorted(folder.glob("compact-*.parquet"))
    assert len(written) == (0 if point == "compact:written" else 1 if point == "compact:renamed" else 4)
    each_once(day_parts(run.online_predictions_dir, DAY), ids)  # the next reader
    again = compact(run, DAY, now())  # the next compaction finishes the work
    files = day_parts(run.online_predictions_dir, DAY)
    assert again["files"] == len(files) and all(f.name.startswith("compact-") for f in files)
    each_once(files, ids)


def test_drift_and_live_performance_read_the_same_rows_after_the_compaction(settings: Settings) -> None:
    from pipelines.monitoring.drift import served_counts
    from pipelines.monitoring.performance import day_predictions

    write_parts(settings, 10, features=False)  # left out of drift, as before the compaction
    write_parts(settings, 120, start=100)
    d = settings.params.data
    features = [*d.numerical, *d.categorical]

    def both() -> tuple[object, int]:
        pred = day_predictions(settings, DAY).sort_values(["model_run_id", d.id_col, "score"], ignore_index=True)
        return pred, sum(n for _, n in served_counts(day_parts(settings.online_predictions_dir, DAY), features))

    pred, served = both()
    compact(settings, DAY, now())
    assert len(day_parts(settings.online_predictions_dir, DAY)) == 2
    pred_after, served_after = both()
    assert served == served_after == 360
    assert pred.equals(pred_after) and len(pred) == 390
