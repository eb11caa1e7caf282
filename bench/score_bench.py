"""Batch-scoring benchmark: our streaming `score` command against raw predict_proba.

    .venv/bin/python bench/score_bench.py [--rows 1000000 10000000] [--chunk-rows 250000]

In one run, on the same registered model and the same Parquet inputs, each measured in its own
process (peak RSS = the child's own VmHWM, polled):
  ours          `python -m pipelines score`: read Parquet in chunks, build features, score with
                the full Pipeline, write the partition atomically. Its own timer covers read ->
                score -> write; the process wall time adds interpreter start and model load.
  raw pipeline  the same sklearn Pipeline's predict_proba on the rows already in memory.
  raw numpy     the classifier's predict_proba on the already-preprocessed numpy array (the
                strictest baseline: no I/O, no feature building, no categorical encoding).
Prints a Markdown table for BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from datetime import date, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from bench.measure import run_measured  # noqa: E402

DAY = date(2026, 3, 1)

RAW = r"""
import json, sys, time
import mlflow, pandas as pd
from pipelines.config import load_settings
from pipelines.model.features import model_input
s = load_settings(sys.argv[1])
mlflow.set_tracking_uri(sys.argv[3])
model = mlflow.sklearn.load_model(f"models:/{s.params.project.model_name}@champion")
X = model_input(pd.read_parquet(sys.argv[2], use_threads=False), s.params.data)
mode = sys.argv[4]
if mode == "numpy":
    Xt = model[:-1].transform(X)          # preprocessing done before the clock starts
    del X
    t = time.perf_counter(); p = model[-1].predict_proba(Xt)[:, 1]; dt = time.perf_counter() - t
else:
    t = time.perf_counter(); p = model.predict_proba(X)[:, 1]; dt = time.perf_counter() - t
print(json.dumps({"seconds": dt, "rows": int(len(p))}))
sys.stdout.flush()
import os; os._exit(0)
"""


def setup(root: Path) -> None:
    """A throw-away project with a registered champion trained on simulated data."""
    from pipelines.config import load_settings
    from pipelines.data.prepare import join_labels
    from pipelines.data.simulate import generate_day
    from pipelines.io import write_json
    from pipelines.model.gate import gate
    from pipelines.model.train import train
    from pipelines.ops.promote import promote

    shutil.copy(REPO / "params.yaml", root / "params.yaml")
    s = load_settings(root / "params.yaml")
    frames = []
    for i in range(17):
        day = date(2026, 1, 1) + timedelta(days=i)
        f = generate_day(day, 2000, 42)
        frames.append(join_labels(f.batch, f.labels, "customer_id", "default", day))
    s.training_dir.mkdir(parents=True)
    import pandas as pd

    pd.concat(frames[:14]).to_parquet(s.training_dir / "train.parquet", index=False)
    pd.concat(frames[14:]).to_parquet(s.training_dir / "holdout.parquet", index=False)
    days = [(date(2026, 1, 1) + timedelta(days=i)).isoformat() for i in range(17)]
    write_json({"train_days": days[:14], "holdout_days": days[14:]}, s.training_dir / "window.json")
    train(s)
    gate(s)
    promote(s)


def make_batch(path: Path, rows: int) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from pipelines.data.simulate import generate_day

    writer = None
    step = 500_000
    for i, start in enumerate(range(0, rows, step)):
        batch = generate_day(DAY, min(step, rows - start), 1000 + i).batch
        table = pa.Table.from_pandas(batch, preserve_index=False)
        writer = writer or pq.ParquetWriter(path, table.schema)
        writer.write_table(table)
    assert writer is not None
    writer.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 10_000_000])
    ap.add_argument("--chunk-rows", type=int, default=250_000)
    args = ap.parse_args()

    root = Path(tempfile.mkdtemp(prefix="score-bench-"))
    tracking = f"sqlite:///{root / 'mlflow.db'}"
    env = {**os.environ, "MLFLOW_TRACKING_URI": tracking, "PYTHONPATH": str(REPO), "MLFLOW_LOGGING_LEVEL": "WARNING"}
    os.environ.update({"MLFLOW_TRACKING_URI": tracking, "MLFLOW_LOGGING_LEVEL": "WARNING"})
    print(f"setting up a champion in {root} ...", file=sys.stderr)
    setup(root)
    params = root / "params.yaml"
    params.write_text(params.read_text().replace("chunk_rows: 250000", f"chunk_rows: {args.chunk_rows}"))
    rows_out = []
    for n in args.rows:
        src = root / "data" / "validated" / f"{DAY.isoformat()}.parquet"
        src.parent.mkdir(parents=True, exist_ok=True)
        print(f"writing a {n:,}-row batch ...", file=sys.stderr)
        make_batch(src, n)
        res = {}
        for mode in ("numpy", "pipeline"):
            wall, rss, out, _ = run_measured([sys.executable, "-c", RAW, str(params), str(src), tracking, mode], env, REPO)
            res[mode] = {**json.loads(out.strip().splitlines()[-1]), "rss": rss, "wall": wall}
            print(f"  raw {mode}: {res[mode]['seconds']:.2f}s, peak {rss:.0f} MB", file=sys.stderr)
        wall, rss, out, _err = run_measured(
            [sys.executable, "-m", "pipelines", "--json", "--params", str(params), "score", "--date", DAY.isoformat()], env, REPO
        )
        summary = json.loads(out)
        assert summary["rows"] == n
        res["ours"] = {"seconds": summary["seconds"], "wall": wall, "rss": rss}
        print(f"  ours: {summary['seconds']:.2f}s (wall {wall:.2f}s), peak {rss:.0f} MB", file=sys.stderr)
        rows_out.append((n, res))
        src.unlink()

    print(f"\nchunk_rows={args.chunk_rows}; throughput ratio = raw seconds / our read->score->write seconds\n")
    print(
        "| rows | raw numpy predict_proba | raw Pipeline predict_proba "
        "| ours: read->score->write (wall incl. start + model load) | ratio vs numpy "
        "| ratio vs Pipeline | peak RSS: raw numpy / raw Pipeline / ours |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for n, r in rows_out:
        print(
            f"| {n:,} | {r['numpy']['seconds']:.2f} s | {r['pipeline']['seconds']:.2f} s | "
            f"{r['ours']['seconds']:.2f} s ({r['ours']['wall']:.1f} s) | "
            f"{r['numpy']['seconds'] / r['ours']['seconds']:.2f}x | {r['pipeline']['seconds'] / r['ours']['seconds']:.2f}x | "
            f"{r['numpy']['rss']:.0f} / {r['pipeline']['rss']:.0f} / {r['ours']['rss']:.0f} MB |"
        )
    shutil.rmtree(root, ignore_errors=True)
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
