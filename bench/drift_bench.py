"""Drift benchmark: our streamed PSI against Evidently's DataDriftPreset(method="psi").

    .venv/bin/python bench/drift_bench.py [--rows 1000000] [--big-rows 10000000] [--spark]

In one run, on the same data (20 numerical + 3 categorical columns; reference and current
batches of --rows rows, the current one shifted on a few columns), each measured in its own
process (peak RSS = the child's own VmHWM, polled):
  ours       the drift job's core (pipelines/model/profile.py): stream the current Parquet file in
             chunks into the reference profile's frozen bins and compute PSI per column. The
             profile is built at training time, so it is built beforehand, as in production.
  ours, job  everything the drift job does with the batch (pipelines/monitoring/drift.py, report.py): the streamed
             PSI above, plus the Evidently HTML report drawn from bounded samples
             (drift.report_sample_rows of the batch, the profile's 5,000-row reference sample)
             with the exact PSI fed in, and the check that the report shows our numbers. Not
             timed: the registry look-up and the MLflow run (fixed costs, not per row), and
             the prediction-drift pass over the day's predictions (one float column).
  evidently  Report([DataDriftPreset(method="psi")]).run(current, reference) on the same rows
             loaded in memory (loading not timed).
Files are read once before each measured run so all start from the page cache.
Then ours alone on a --big-rows Parquet batch (peak memory goal: under 1 GB), and a check that
our PSI values equal a straightforward numpy computation on the same bins to 1e-9. With --spark,
also the Spark engine (pipelines/monitoring/drift_spark.py, local[*]) on the 1 M-row batch, and its PSI
against ours.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from bench.measure import run_measured  # noqa: E402

NUM = [f"n{i}" for i in range(20)]
CAT = ["c0", "c1", "c2"]
RUNS = 5  # ours is timed 5 times (median): single runs here vary 2x with first-touch memory

OURS = r"""
import json, sys, time
from pipelines.config import DataParams
import pyarrow.parquet  # imports outside the clock, as for Evidently
from pipelines.model.profile import Accumulator, stream_batches
profile = json.load(open(sys.argv[1]))
t = time.perf_counter()
acc = Accumulator(profile)
for chunk in stream_batches(sys.argv[2], list(acc.counts), int(sys.argv[3])):
    acc.add(chunk)
res = acc.result()
dt = time.perf_counter() - t
print(json.dumps({"seconds": dt, "rows": acc.rows, "psi": {c: r["psi"] for c, r in res.items()}}))
sys.stdout.flush()
import os; os._exit(0)
"""

EVIDENTLY = r"""
import json, sys, time
import pandas as pd
from evidently import Report
from evidently.presets import DataDriftPreset
ref = pd.read_parquet(sys.argv[1], use_threads=False)
cur = pd.read_parquet(sys.argv[2], use_threads=False)
t = time.perf_counter()
snap = Report([DataDriftPreset(method="psi")]).run(cur, ref)
d = snap.dict()
dt = time.perf_counter() - t
print(json.dumps({"seconds": dt}))
sys.stdout.flush()
import os; os._exit(0)
"""

JOB = r"""
import json, sys, time
from pathlib import Path
import pandas as pd
from pipelines.config import DataParams
from pipelines.monitoring.drift import stream_counts
from pipelines.monitoring.report import write_report
from pipelines.model.features import model_input
import evidently.presets  # imports outside the clock
profile = json.load(open(sys.argv[1]))
data = DataParams(numerical=list(profile["numerical"]), categorical=list(profile["categorical"]))
reference = pd.read_parquet(sys.argv[4], use_threads=False)  # the version's reference sample
sample_rows = int(sys.argv[5])
t = time.perf_counter()
per_feature, rows, sample = stream_counts(Path(sys.argv[2]), profile, int(sys.argv[3]), sample_rows)
psi = {c: r["psi"] for c, r in per_feature.items()}
current = model_input(pd.concat(sample, ignore_index=True), data)
shown = write_report(current, reference.head(sample_rows), psi, 0.2, Path(sys.argv[6]))
assert shown == psi, "the report must show the deciding numbers"
dt = time.perf_counter() - t
print(json.dumps({"seconds": dt, "rows": rows, "psi": psi}))
sys.stdout.flush()
import os; os._exit(0)
"""


SPARK = r"""
import json, sys, time
from pipelines.monitoring.drift_spark import spark_counts, spark_session
from pipelines.model.profile import feature_drift
profile = json.load(open(sys.argv[1]))
t0 = time.perf_counter()
spark = spark_session("local[*]")
t = time.perf_counter()
counts, nulls, rows = spark_counts(spark.read.parquet(sys.argv[2]), profile)
res = feature_drift(profile, counts, nulls, rows)
dt = time.perf_counter() - t
print(json.dumps({"seconds": dt, "startup": t - t0, "psi": {c: r["psi"] for c, r in res.items()}}))
sys.stdout.flush()
import os; os._exit(0)
"""


def warm(*paths: Path) -> None:
    """Read the files' bytes once so every measured run starts with them in the page cache
    (the first read of a freshly written file here varied from 0.2 s to 1.1 s)."""
    for p in paths:
        with open(p, "rb") as f:
            while f.read(1 << 24):
                pass


def measured(cmd: list[str]) -> tuple[dict, float, float]:
    """Run a child; return (its JSON line, wall seconds, peak RSS in MB)."""
    wall, peak, out, _ = run_measured(cmd, {**os.environ, "PYTHONPATH": str(REPO)}, REPO)
    return json.loads(out.strip().splitlines()[-1]), wall, peak


def frame(rows: int, seed: int, shifted: bool):
    import pandas as pd

    rng = np.random.default_rng(seed)
    cols = {}
    for i, c in enumerate(NUM):
        kind = i % 4
        if kind == 0:
            v = rng.normal(0, 1, rows)
        elif kind == 1:
            v = rng.lognormal(3, 0.7, rows)
        elif kind == 2:
            v = rng.poisson(10, rows).astype("float64")
        else:
            v = rng.uniform(0, 100, rows)
        if shifted and i < 3:
            v = v * 0.6 + (1.0 if kind == 0 else 0.0)
        cols[c] = v
    for j, c in enumerate(CAT):
        levels = [f"{c}_{k}" for k in range(5 + j)]
        p = np.ones(len(levels)) / len(levels)
        if shifted and j == 0:
            p = np.r_[[0.5], np.ones(len(levels) - 1) * 0.5 / (len(levels) - 1)]
        cols[c] = rng.choice(levels, rows, p=p)
    return pd.DataFrame(cols)


def write(df, path: Path, row_group: int = 500_000) -> None:
    """Every input is written the same way (pyarrow writer, same row groups)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(df, preserve_index=False)
    with pq.ParquetWriter(path, table.schema) as writer:
        writer.write_table(table, row_group_size=row_group)


def numpy_psi(ref_values: np.ndarray, cur_values: np.ndarray, edges: list[float]) -> float:
    """The textbook computation, written independently of pipelines/model/profile.py."""
    e = np.asarray(edges)
    r = np.bincount(np.digitize(ref_values[~np.isnan(ref_values)], e, right=True), minlength=len(e) + 1)
    c = np.bincount(np.digitize(cur_values[~np.isnan(cur_values)], e, right=True), minlength=len(e) + 1)
    p, q = r / r.sum(), c / c.sum()
    p = np.where(p == 0, 1e-4, p)
    q = np.where(q == 0, 1e-4, q)
    return float(np.sum((q - p) * np.log(q / p)))


def main() -> None:  # noqa: PLR0915 a benchmark: its measured phases in order, then its table
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--big-rows", type=int, default=10_000_000)
    ap.add_argument("--chunk-rows", type=int, default=100_000)
    ap.add_argument("--report-sample-rows", type=int, default=20_000, help="drift.report_sample_rows for the whole-job run")
    ap.add_argument(
        "--spark", action="store_true", help="also time the Spark engine (local[*]) on the same batch (`make spark` first)"
    )
    args = ap.parse_args()

    from pipelines.config import DataParams
    from pipelines.model.profile import build_profile

    tmp = Path(tempfile.mkdtemp(prefix="drift-bench-"))
    data = DataParams(numerical=NUM, categorical=CAT)
    print("generating data ...", file=sys.stderr)
    ref = frame(args.rows, 1, shifted=False)
    cur = frame(args.rows, 2, shifted=True)
    write(ref, tmp / "reference.parquet")
    write(cur, tmp / "current.parquet")
    profile = build_profile(ref, np.zeros(len(ref)), data, 10)
    (tmp / "profile.json").write_text(json.dumps(profile))
    ref.sample(n=5000, random_state=0).to_parquet(tmp / "reference_sample.parquet", index=False)

    def job_cmd(batch: Path) -> list[str]:
        """The whole-job child on ``batch``, with the same profile, reference sample and sizes."""
        return [sys.executable, "-c", JOB, str(tmp / "profile.json"), str(batch), str(args.chunk_rows),
                str(tmp / "reference_sample.parquet"), str(args.report_sample_rows), str(tmp / "report.html")]
    os.sync()  # no writeback of the fresh files competing with the measured reads

    print(f"ours ({RUNS} runs, median) ...", file=sys.stderr)
    runs = []
    for _ in range(RUNS):
        warm(tmp / "current.parquet")
        runs.append(
            measured([sys.executable, "-c", OURS, str(tmp / "profile.json"), str(tmp / "current.parquet"), str(args.chunk_rows)])
        )
    print("  " + ", ".join(f"{r[0]['seconds']:.2f}s" for r in runs), file=sys.stderr)
    ours, ours_wall, ours_rss = sorted(runs, key=lambda r: r[0]["seconds"])[RUNS // 2]
    print(f"ours, whole job ({RUNS} runs, median) ...", file=sys.stderr)
    job_runs = []
    for _ in range(RUNS):
        warm(tmp / "current.parquet")
        job_runs.append(measured(job_cmd(tmp / "current.parquet")))
    print("  " + ", ".join(f"{r[0]['seconds']:.2f}s" for r in job_runs), file=sys.stderr)
    job, job_wall, job_rss = sorted(job_runs, key=lambda r: r[0]["seconds"])[RUNS // 2]
    assert job["psi"] == ours["psi"]
    print("evidently ...", file=sys.stderr)
    warm(tmp / "reference.parquet", tmp / "current.parquet")
    ev, ev_wall, ev_rss = measured(
        [sys.executable, "-c", EVIDENTLY, str(tmp / "reference.parquet"), str(tmp / "current.parquet")]
    )
    print(f"  {ev['seconds']:.2f}s, peak {ev_rss:.0f} MB", file=sys.stderr)

    worst = 0.0
    for c in NUM:
        exact = numpy_psi(ref[c].to_numpy(), cur[c].to_numpy(), profile["numerical"][c]["edges"])
        worst = max(worst, abs(exact - ours["psi"][c]))
    for c in CAT:
        cats = profile["categorical"][c]["categories"]
        r = np.array([(ref[c] == k).sum() for k in cats] + [(~ref[c].isin(cats)).sum()], dtype="float64")
        q = np.array([(cur[c] == k).sum() for k in cats] + [(~cur[c].isin(cats)).sum()], dtype="float64")
        p_, q_ = np.where(r == 0, 1e-4, r / r.sum()), np.where(q == 0, 1e-4, q / q.sum())
        worst = max(worst, abs(float(np.sum((q_ - p_) * np.log(q_ / p_))) - ours["psi"][c]))

    spark = None
    if args.spark:
        print("spark engine (local[*]) ...", file=sys.stderr)
        warm(tmp / "current.parquet")
        spark = measured([sys.executable, "-c", SPARK, str(tmp / "profile.json"), str(tmp / "current.parquet")])
        spark_diff = max(abs(spark[0]["psi"][c] - ours["psi"][c]) for c in ours["psi"])
        print(f"  {spark[0]['seconds']:.2f}s after a {spark[0]['startup']:.1f}s start-up", file=sys.stderr)

    print(f"writing a {args.big_rows:,}-row batch ...", file=sys.stderr)
    import pyarrow as pa
    import pyarrow.parquet as pq

    writer = None
    step = 1_000_000
    for i in range(0, args.big_rows, step):
        t = pa.Table.from_pandas(frame(min(step, args.big_rows - i), 100 + i, shifted=True), preserve_index=False)
        writer = writer or pq.ParquetWriter(tmp / "big.parquet", t.schema)
        writer.write_table(t, row_group_size=args.chunk_rows)
    assert writer is not None
    writer.close()
    del ref, cur
    os.sync()
    warm(tmp / "big.parquet")
    big, big_wall, big_rss = measured(
        [sys.executable, "-c", OURS, str(tmp / "profile.json"), str(tmp / "big.parquet"), str(args.chunk_rows)]
    )
    print(f"  ours on {args.big_rows:,}: {big['seconds']:.2f}s, peak {big_rss:.0f} MB", file=sys.stderr)
    warm(tmp / "big.parquet")
    big_job, big_job_wall, big_job_rss = measured(job_cmd(tmp / "big.parquet"))
    print(f"  ours, whole job on {args.big_rows:,}: {big_job['seconds']:.2f}s, peak {big_job_rss:.0f} MB", file=sys.stderr)

    print(f"\n{args.rows:,} rows x {len(NUM)} numerical + {len(CAT)} categorical columns; chunk_rows={args.chunk_rows}\n")
    times = ", ".join(f"{r[0]['seconds']:.2f}" for r in runs)
    print("| run | rows | time (process wall) | peak RSS |")
    print("| --- | --- | --- | --- |")
    print(
        f'| Evidently DataDriftPreset(method="psi") | {args.rows:,} | {ev["seconds"]:.2f} s ({ev_wall:.1f} s) | {ev_rss:.0f} MB |'
    )
    print(
        f"| ours: streamed PSI, frozen bins (median of {RUNS} runs: {times} s) "
        f"| {args.rows:,} | {ours['seconds']:.2f} s ({ours_wall:.1f} s) | {ours_rss:.0f} MB |"
    )
    print(
        f"| ours: streamed PSI, frozen bins | {args.big_rows:,} | {big['seconds']:.2f} s ({big_wall:.1f} s) | {big_rss:.0f} MB |"
    )
    job_times = ", ".join(f"{r[0]['seconds']:.2f}" for r in job_runs)
    job_label = f"ours, whole job: streamed PSI + Evidently HTML report on {args.report_sample_rows:,}-row samples"
    print(f"| {job_label} (median of {RUNS} runs: {job_times} s) "
          f"| {args.rows:,} | {job['seconds']:.2f} s ({job_wall:.1f} s) | {job_rss:.0f} MB |")
    print(f"| {job_label} | {args.big_rows:,} | {big_job['seconds']:.2f} s ({big_job_wall:.1f} s) | {big_job_rss:.0f} MB |")
    if spark is not None:
        print(
            f"| ours, Spark engine local[*] (after a {spark[0]['startup']:.1f} s session start; "
            "peak RSS of the Python driver only, the JVM is its child) "
            f"| {args.rows:,} | {spark[0]['seconds']:.2f} s ({spark[1]:.1f} s) | {spark[2]:.0f} MB |"
        )
    print(f"\nSpeed-up on {args.rows:,} rows: {ev['seconds'] / ours['seconds']:.0f}x (computation), "
          f"{ev_wall / ours_wall:.1f}x (process wall, incl. imports and Evidently's data loading); "
          f"whole job with its HTML report: {ev['seconds'] / job['seconds']:.0f}x ({ev_wall / job_wall:.1f}x process wall).")
    print(f"Largest |our PSI - numpy PSI on the same bins| over {len(NUM) + len(CAT)} columns: {worst:.2e}")
    if spark is not None:
        print(f"Largest |Spark engine PSI - streamed PSI| over {len(NUM) + len(CAT)} columns: {spark_diff:.2e}")
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
