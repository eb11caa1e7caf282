"""The serving benchmarks' project, built the same way every time.

    .venv/bin/python bench/project.py /tmp/benchproj        # about 30 seconds

A fresh folder with 12 simulated, validated days of 600 rows (the serving tests' own
`build_project`), champion v1 trained with the repository's `train:` params and v2, a smaller
model (40 trees), registered as the promote stage registers (artifact hash tag), v1 holding the
`champion` alias. Then `bench/serving.py --params /tmp/benchproj/params.yaml --challenger 2`.

Its `params.yaml` is the repository's, except what keeps a challenger in shadow while it is
measured (`serve.bake_seconds: 0`, `min_requests: 20`, `p99_slo_ms: 1000`,
`psi_min_pairs: 100000`, as the tests have them). The registry poll, the prediction log's
flush and the rollout check keep the repository's defaults: the tests' 1-second settings cost
the server p99 (BENCHMARKS.md). The benchmarks read the store of `MLFLOW_TRACKING_URI` when it
is set: leave it unset, or point it at the project's `mlflow.db`.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("folder", type=Path, help="a folder that does not exist yet")
    args = ap.parse_args()
    root = args.folder.resolve()
    if root.exists():
        raise SystemExit(f"{root} exists: give a new folder (the project is built from scratch)")

    from tests.integration.serving_support import build_project, set_alias, train_version

    print(f"==> building {root} (simulate, validate, prepare)", flush=True)
    settings = build_project(root, fast_serve=False)
    params = root / "params.yaml"
    print("==> training and registering v1 (champion) and v2 (40 trees)", flush=True)
    v1 = train_version(settings)
    v2 = train_version(settings, max_iter=40)
    set_alias(settings, "champion", v1)
    print(f"done: champion v{v1}, challenger candidate v{v2}; MLFLOW_TRACKING_URI={os.environ['MLFLOW_TRACKING_URI']}")
    print(f"next: .venv/bin/python bench/serving.py --params {params} --challenger {v2}")


if __name__ == "__main__":
    main()
