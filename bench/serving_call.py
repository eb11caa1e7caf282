"""One online request's model call, step by step: where a single-row request's time goes.

    .venv/bin/python bench/serving_call.py [--repeat 2000] [--rows 1 16]

Trains the project's model (params.yaml, ``build_model``) on one simulated day in memory, then
times, in one process and interleaved round by round (so a noisy spell falls on every line):
  frame_of        the request's JSON rows to a frame (pipelines/serving/payload.py)
  model_input     the one feature function (pipelines/model/features.py)
  preprocess      the Pipeline's ColumnTransformer (CategoryCoder + passthrough), with the
                  CategoryCoder's look-up for a few rows, and with its pandas Categorical path
                  forced (the baseline: the path larger batches take)
  predict_proba   the whole Pipeline, both ways
Each line is the median of ``--rounds`` rounds of ``--repeat`` calls. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from datetime import date
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def per_call_ms(fn: Any, repeat: int) -> float:
    fn()
    t0 = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - t0) / repeat * 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=1000, help="calls per round")
    ap.add_argument("--rounds", type=int, default=5, help="interleaved rounds; the median is reported")
    ap.add_argument("--rows", type=int, nargs="+", default=[1, 16], help="rows per request")
    args = ap.parse_args()

    import numpy as np
    from threadpoolctl import threadpool_limits

    from pipelines.config import load_settings
    from pipelines.data.simulate import generate_day
    from pipelines.model import parts
    from pipelines.model.features import model_input
    from pipelines.model.train import fit
    from pipelines.serving.payload import frame_of

    settings = load_settings(REPO / "params.yaml")
    d = settings.params.data
    day = generate_day(date(2026, 3, 1), 20_000, seed=7)
    train = day.batch.merge(day.labels, on=d.id_col)
    print(f"training on {len(train)} simulated rows...", file=sys.stderr, flush=True)
    model, _ = fit(train, d, settings.params.train)
    threadpool_limits(1)  # the server's scorer: one OpenMP thread per call
    sample = day.batch.head(max(args.rows)).astype(object).where(day.batch.head(max(args.rows)).notna(), None)
    rows_all = [
        {k: (str(v) if k == d.id_col else v) for k, v in r.items()} for r in sample[[d.id_col, *d.features]].to_dict("records")
    ]
    default_small = parts.SMALL_ROWS

    print("| rows | step | look-up (ms) | pandas path (ms) | ratio |")
    print("| ---: | --- | ---: | ---: | ---: |")
    for n in args.rows:
        rows = rows_all[:n]
        frame = frame_of(rows, d)
        X = model_input(frame, d)
        pre = model[:-1]
        both: dict[str, dict[bool, list[float]]] = {s: {True: [], False: []} for s in ("preprocess", "predict_proba")}
        plain: dict[str, list[float]] = {"frame_of": [], "model_input": []}
        for _ in range(args.rounds):
            plain["frame_of"].append(per_call_ms(lambda rows=rows: frame_of(rows, d), args.repeat))
            plain["model_input"].append(per_call_ms(lambda frame=frame: model_input(frame, d), args.repeat))
            for lookup in (True, False):
                parts.SMALL_ROWS = default_small if lookup else -1
                both["preprocess"][lookup].append(per_call_ms(lambda pre=pre, X=X: pre.transform(X), args.repeat))
                both["predict_proba"][lookup].append(per_call_ms(lambda X=X: model.predict_proba(X), args.repeat))
            parts.SMALL_ROWS = default_small
        parts.SMALL_ROWS = -1
        reference = model.predict_proba(X)
        parts.SMALL_ROWS = default_small
        assert np.array_equal(model.predict_proba(X), reference), "the look-up changed a score"
        for step, ms in plain.items():
            print(f"| {n} | {step} | {statistics.median(ms):.3f} | | |")
        for step, ways in both.items():
            fast, slow = statistics.median(ways[True]), statistics.median(ways[False])
            print(f"| {n} | {step} | {fast:.3f} | {slow:.3f} | {slow / fast:.2f}x |")


if __name__ == "__main__":
    main()
