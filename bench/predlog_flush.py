"""The prediction log's flush against the number of parts already in the day's folder.

    .venv/bin/python bench/predlog_flush.py [--parts 0 5000 20000 43200] [--rows 90] [--repeat 30]

The server flushes its prediction log every ``serve.log_flush_seconds`` (2 s by default): one
new part file per flush, so a day of steady traffic leaves 43,200 parts in one folder. Each
flush writes ``--rows`` rows (90: 45 req/s for 2 s) through ``PredictionLog.flush`` (this
tree), and, for comparison in the same run, the same part through ``atomic_path`` with its
stale-file sweep (a flush that lists the folder on every write, which the log avoids),
timed without building the table, so the sweep's cost is if anything understated.
Both run in the serving process under its interpreter lock. Prints a Markdown table of the
median milliseconds per flush.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--parts", type=int, nargs="+", default=[0, 5000, 20000, 43200], help="part files already in the day's folder"
    )
    ap.add_argument("--rows", type=int, default=90, help="rows per flush")
    ap.add_argument("--repeat", type=int, default=30, help="flushes per measurement (the median is reported)")
    args = ap.parse_args()

    import pyarrow.parquet as pq

    from pipelines.config import DataParams
    from pipelines.io import atomic_path
    from pipelines.serving.predlog import PredictionLog

    print("| parts in the folder | flush now (ms) | flush with a sweep per write (ms) | ratio |")
    print("| ---: | ---: | ---: | ---: |")
    for n in args.parts:
        with tempfile.TemporaryDirectory() as tmp:
            log = PredictionLog(Path(tmp), DataParams(id_col="id", timestamp_col="ts", numerical=["x"], categorical=[]))
            log.append("warm", list(range(args.rows)), "champion", "m", "1", "run", np.full(args.rows, 0.5), 1.0)
            log.flush()  # creates the day's folder (and does its one sweep)
            folder = next(p for p in Path(tmp).iterdir() if p.is_dir())
            for i in range(n):
                (folder / f"part-{i:013d}-1-{i:06d}.parquet").touch()
            now, before = [], []
            for k in range(args.repeat):
                log.append(f"r{k}", list(range(args.rows)), "champion", "m", "1", "run", np.full(args.rows, 0.5), 1.0)
                t = time.perf_counter()
                log.flush()
                now.append((time.perf_counter() - t) * 1000)
                part = max(folder.glob("part-*-*-*.parquet"), key=lambda p: p.stat().st_mtime_ns)  # the part just written
                table = pq.read_table(part)
                t = time.perf_counter()
                with atomic_path(folder / f"part-before-{k:06d}.parquet") as dest:  # the sweep on: lists the folder
                    pq.write_table(table, dest)
                before.append((time.perf_counter() - t) * 1000)
            a, b = statistics.median(now), statistics.median(before)
            print(f"| {n} | {a:.2f} | {b:.2f} | {b / a:.1f}x |", flush=True)


if __name__ == "__main__":
    main()
