"""A day of the online prediction log read before and after its compaction.

    .venv/bin/python bench/predlog_compaction_bench.py [--parts 43200] [--rows 1 5] [--repeat 1]

Builds one closed day of ``--parts`` part files (43,200: one flush every 2 s for a day) of 1 to
5 rows each (uniform in ``--rows``), written as the server writes them
(``PredictionLog.table``: the real schema, the repository's params.yaml feature columns), in a
temporary project. Then, in one run, times what the jobs read of that day before and after
``compact`` (pipelines/serving/compact.py):

  drift        the drift job's read of an online-only day (pipelines/monitoring/drift.py
               ``count_log``, arrow engine): each file's served rows, then its feature columns
               streamed into a reference profile's frozen bins (built beforehand from the same
               rows, as training would), with its report sample;
  performance  the live-performance job's read (pipelines/monitoring/performance.py
               ``day_predictions``): every file's id, score, model and variant columns;
and the compaction itself. Both reads list the day through ``pipelines.io.day_parts``. Every
measurement starts from the page cache (the files were just written or read). Prints a
Markdown table: seconds (median of ``--repeat``), and the ratio before / after.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
DAY = date(2026, 1, 5)


def build_day(settings, parts: int, rows: tuple[int, int], seed: int = 0) -> int:  # type: ignore[no-untyped-def]
    """Write ``parts`` parts of DAY as the server writes them; the number of rows."""
    import pyarrow.parquet as pq

    from pipelines.serving.predlog import PredictionLog

    d = settings.params.data
    plog = PredictionLog(settings.online_predictions_dir, d)
    folder = settings.online_predictions_dir / DAY.isoformat()
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    regions = np.array(["north", "south", "east", "west"])
    total = 0
    for k in range(parts):
        n = int(rng.integers(rows[0], rows[1] + 1))
        when = datetime(DAY.year, DAY.month, DAY.day, tzinfo=UTC) + timedelta(seconds=86400 * k / parts)
        cols = {c: rng.normal(50, 10, size=n) for c in d.numerical}
        cols |= {c: regions[rng.integers(0, 4, size=n)].tolist() for c in d.categorical}
        variant = "champion" if k % 10 else "shadow"
        req = (f"r{k}", [f"c{rng.integers(0, 100000)}" for _ in range(n)], when, variant, "m", "1", "run1",
               rng.random(n), 3.0, (cols, 0))
        name = f"part-{int(when.timestamp() * 1000)}-{100 + k % 4}-{k:06d}.parquet"
        pq.write_table(plog.table(DAY.isoformat(), [req]), folder / name)
        total += n
    return total


def profile_of(settings):  # type: ignore[no-untyped-def]
    """A reference profile with frozen bins, from the day's own rows (as training builds one)."""
    import pandas as pd

    from pipelines.io import day_parts
    from pipelines.model.profile import build_profile

    files = day_parts(settings.online_predictions_dir, DAY)[:2000]
    frame = pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)
    return build_profile(frame, frame["score"].to_numpy(), settings.params.data, settings.params.drift.n_bins)


def timed(fn, repeat: int) -> tuple[float, object]:  # type: ignore[no-untyped-def]
    times, out = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--parts", type=int, default=43200, help="part files of the day (43,200: a flush every 2 s)")
    ap.add_argument("--rows", type=int, nargs=2, default=[1, 5], help="least and most rows per part")
    ap.add_argument("--repeat", type=int, default=1, help="reads per measurement (the median is reported)")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        shutil.copy(REPO / "params.yaml", Path(tmp) / "params.yaml")
        os.environ["PIPELINES_ROOT"] = tmp
        from pipelines.config import load_settings
        from pipelines.io import day_parts
        from pipelines.monitoring.drift import count_log
        from pipelines.monitoring.performance import day_predictions
        from pipelines.serving.compact import compact

        settings = load_settings(Path(tmp) / "params.yaml")
        t = time.perf_counter()
        rows = build_day(settings, args.parts, (args.rows[0], args.rows[1]))
        print(f"built {args.parts} parts, {rows} rows in {time.perf_counter() - t:.1f} s", file=sys.stderr)
        profile = profile_of(settings)

        def drift() -> int:
            return count_log(settings, "arrow", day_parts(settings.online_predictions_dir, DAY), profile)[1]

        def perf() -> int:
            return len(day_predictions(settings, DAY))

        drift_before, served = timed(drift, args.repeat)
        perf_before, predicted = timed(perf, args.repeat)
        t = time.perf_counter()
        res = compact(settings, DAY, datetime.now(UTC))
        took = time.perf_counter() - t
        drift_after, served_after = timed(drift, args.repeat)
        perf_after, predicted_after = timed(perf, args.repeat)
        assert (served, predicted) == (served_after, predicted_after), "the compacted day reads other rows"
        files = len(day_parts(settings.online_predictions_dir, DAY))
        print(f"| read | parts ({rows} rows) | before: {args.parts} parts | after: {files} file(s) | ratio |")
        print("| --- | ---: | ---: | ---: | ---: |")
        print(f"| drift (`count_log`, {served} served rows) | {args.parts} | {drift_before:.2f} s | {drift_after:.3f} s "
              f"| **{drift_before / drift_after:.0f}x** |")
        print(f"| performance (`day_predictions`, {predicted} rows) | {args.parts} | {perf_before:.2f} s | {perf_after:.3f} s "
              f"| **{perf_before / perf_after:.0f}x** |")
        print(f"| compaction (`compact`: {res['merged_parts']} parts into {res['written']} file(s)) | {args.parts} "
              f"| {took:.2f} s | | |")


if __name__ == "__main__":
    main()
