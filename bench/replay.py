"""Replay speed: one story through the real CLI, wall time, and the cost per simulated day and
per training run (from the replay's own timeline.json).

    .venv/bin/python -m bench.replay [--story login_policy] [--days 120] [--out /tmp/replay-bench]

Prints one Markdown table row for BENCHMARKS.md. The machine's load average is printed beside
it: on a shared 2-core machine the figures move with whatever else runs.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from bench.measure import run_measured

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--story", default="login_policy")
    ap.add_argument("--days", type=int, default=120)
    ap.add_argument("--out", default=None, help="where the replay writes (default: a fresh temporary folder)")
    args = ap.parse_args()
    if args.out is None:
        import tempfile

        args.out = tempfile.mkdtemp(prefix="replay-bench-")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "PIPELINES_"))}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    load_before = os.getloadavg()[0]
    cmd = [sys.executable, "-m", "pipelines", "replay", "--story", args.story, "--days", str(args.days), "--out", args.out]
    wall, peak, _, _ = run_measured(cmd, env, REPO)
    t = json.loads((Path(args.out) / "timeline.json").read_text())
    days = len(t["days"])
    trainings = t["trainings"]
    steps: dict[str, float] = {}
    for tr in trainings:
        for k, v in (tr.get("step_seconds") or {}).items():
            steps[k] = steps.get(k, 0.0) + v / len(trainings)
    print(
        "| story | days (warm-up + served) | trainings | wall | per day (no training) "
        "| per training | training steps (mean s) | peak RSS | load avg before/after |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    print(
        f"| {args.story} | {days} ({days - t['seconds']['served_days']} + {t['seconds']['served_days']}) | {len(trainings)} "
        f"| {wall:.0f} s | {t['seconds']['per_day']:.2f} s | {t['seconds']['per_training']:.0f} s "
        f"| {', '.join(f'{k} {v:.0f}' for k, v in steps.items())} "
        f"| {peak:.0f} MB | {load_before:.1f} / {os.getloadavg()[0]:.1f} |"
    )


if __name__ == "__main__":
    main()
