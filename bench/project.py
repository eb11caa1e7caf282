"""The serving benchmarks' project, built the same way every time.

    .venv/bin/python bench/project.py /tmp/benchproj        # about 30 seconds

A fresh folder with 12 simulated, validated days of 600 rows and a training window, champion v1
trained with the repository's `train:` params and v2, a smaller model (40 trees), registered as
the promote stage registers (artifact hash tag), v1 holding the `champion` alias. Then
`bench/serving.py --params /tmp/benchproj/params.yaml --challenger 2`.

Its `params.yaml` is the repository's, except what keeps a challenger in shadow while it is
measured (SHADOW below, the values the serving tests use too). The registry poll, the prediction
log's flush and the rollout check keep the repository's defaults: the tests' 1-second settings
cost the server p99 (BENCHMARKS.md). The benchmarks read the store of `MLFLOW_TRACKING_URI` when
it is set: leave it unset, or point it at the project's `mlflow.db`.

``register``, ``train_version`` and ``set_alias`` are also the serving tests' (tests/support/
serving.py imports them from here: tests may import bench/, bench/ never imports tests/).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
# guardrails are judged on short windows; a shared 2-core machine: the SLO sits far above a busy
# champion, far below a slow model
SHADOW = (("bake_seconds: 300", "bake_seconds: 0"), ("min_requests: 200", "min_requests: 20"),
          ("psi_min_pairs: 200", "psi_min_pairs: 100000"), ("p99_slo_ms: 50 ", "p99_slo_ms: 1000 "))


def register(settings: Any, model_uri: str) -> str:
    """Register a logged model as the promote stage does: a version with its artifact hash."""
    import mlflow

    from pipelines.model.champion import artifact_sha256
    from pipelines.model.registry import mlflow_client

    client = mlflow_client(settings)
    name = settings.params.project.model_name
    mv = mlflow.register_model(model_uri, name)
    local = mlflow.artifacts.download_artifacts(artifact_uri=f"models:/{name}/{mv.version}")
    client.set_model_version_tag(name, mv.version, "model_sha256", artifact_sha256(Path(local)))
    return str(mv.version)


def train_version(settings: Any, **train: Any) -> str:
    """Train with the pipeline's ``train`` (params overridden by ``train``) and register it."""
    from pipelines.config import Settings
    from pipelines.model.train import train as train_fn

    p = settings.params.model_copy(update={"train": settings.params.train.model_copy(update=train)}) if train else settings.params
    candidate = train_fn(Settings(p, settings.root))
    return register(settings, candidate["model_uri"])


def set_alias(settings: Any, alias: str, version: str) -> None:
    """Move ``alias`` to ``version``: the champion through the registry's own promotion."""
    from pipelines.model.registry import mlflow_client, promote_version

    if alias == "champion":
        promote_version(settings, version, "serving test")
    else:
        mlflow_client(settings).set_registered_model_alias(settings.params.project.model_name, alias, version)


def build(root: Path, days: int = 12, rows: int = 600) -> Any:
    """Settings of the project in ``root`` (new): params.yaml with SHADOW, the suites, ``days``
    simulated and validated days, the training window. Points MLFLOW_TRACKING_URI at its store."""
    from pipelines.config import load_settings
    from pipelines.data.prepare import prepare
    from pipelines.data.simulate import simulate
    from pipelines.data.validate import validate_batch
    from pipelines.io import partition_files

    root.mkdir(parents=True)
    shutil.copytree(REPO / "expectations", root / "expectations")
    text = (REPO / "params.yaml").read_text()
    for old, new in SHADOW:
        assert old in text, old
        text = text.replace(old, new)
    (root / "params.yaml").write_text(text)
    settings = load_settings(root / "params.yaml")
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{root / 'mlflow.db'}"
    os.environ.pop("MLFLOW_REGISTRY_URI", None)
    simulate(settings, "2026-01-01", days, None, None, rows)
    for day in partition_files(settings.raw_dir):
        validate_batch(settings, day)
    prepare(settings)
    return settings


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("folder", type=Path, help="a folder that does not exist yet")
    args = ap.parse_args()
    root = args.folder.resolve()
    if root.exists():
        raise SystemExit(f"{root} exists: give a new folder (the project is built from scratch)")
    sys.path.insert(0, str(REPO))  # run as a script: the package is imported from the repository

    print(f"==> building {root} (simulate, validate, prepare)", flush=True)
    settings = build(root)
    params = root / "params.yaml"
    print("==> training and registering v1 (champion) and v2 (40 trees)", flush=True)
    v1 = train_version(settings)
    v2 = train_version(settings, max_iter=40)
    set_alias(settings, "champion", v1)
    print(f"done: champion v{v1}, challenger candidate v{v2}; MLFLOW_TRACKING_URI={os.environ['MLFLOW_TRACKING_URI']}")
    print(f"next: .venv/bin/python bench/serving.py --params {params} --challenger {v2}")


if __name__ == "__main__":
    main()
