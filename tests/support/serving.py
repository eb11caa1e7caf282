"""A small real project for the online server's tests: simulated, validated days, models trained
and registered through the pipeline's own functions in a real MLflow SQLite store, and the
server run as `python -m pipelines serve` on 127.0.0.1 (real uvicorn, in a subprocess).

The full `dvc repro` cycle (tests/integration/test_cycle.py) registers the same kind of model
but takes minutes; the serving tests need registered versions, not the gate, so they call
``train`` and register its run the way the promote stage does (artifact hash tag included),
and move aliases with the registry's own ``promote_version`` (``register``, ``train_version`` and
``set_alias`` are bench/project.py's: the serving benchmarks build their project with them too).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin

from bench.project import register, set_alias, train_version
from tests.support.project import REPO, build_project
from tests.support.system import free_port

__all__ = ["TOKEN", "Crafted", "ServerProcess", "crafted_version", "rows_of", "serving_project", "set_alias", "train_version"]
TOKEN = "test-reload-token"


class Crafted(ClassifierMixin, BaseEstimator):
    """A real trained model made to misbehave: ``raise`` fails on rows with age above 50,
    ``slow`` sleeps ``delay`` seconds per call; anything else passes through."""

    def __init__(self, inner: Any = None, kind: str = "", delay: float = 0.0) -> None:
        self.inner = inner
        self.kind = kind
        self.delay = delay

    def fit(self, X: Any, y: Any) -> Crafted:  # already fitted; sklearn API only
        return self

    @property
    def classes_(self) -> Any:
        return self.inner.classes_

    def predict_proba(self, X: Any) -> Any:
        if self.kind == "raise" and (X["age"].to_numpy() > 50).any():
            raise RuntimeError("crafted failure on age > 50")
        if self.kind == "slow":
            time.sleep(self.delay)
        return self.inner.predict_proba(X)

    def predict(self, X: Any) -> Any:
        return (self.predict_proba(X)[:, 1] >= 0.5).astype("int64")


# tests move aliases and want to see it quickly (bench/project.py keeps the repository's values)
FAST_SERVE = (("poll_seconds: 10", "poll_seconds: 1"), ("check_seconds: 30", "check_seconds: 1"),
              ("log_flush_seconds: 2", "log_flush_seconds: 0.5"))
# guardrails are judged on short windows; a shared 2-core test machine: the SLO sits far above a
# busy champion, far below a slow model
SHORT_ROLLOUT = (("bake_seconds: 300", "bake_seconds: 0"), ("min_requests: 200", "min_requests: 20"),
                 ("psi_min_pairs: 200", "psi_min_pairs: 100000"), ("p99_slo_ms: 50 ", "p99_slo_ms: 1000 "))


def serving_project(root: Path, days: int = 12, rows: int = 600) -> Any:
    """Settings of a fresh project in ``root`` (tests/support/project.py's, with FAST_SERVE and
    SHORT_ROLLOUT) with simulated, validated days and a training window prepared (no model yet).
    Sets MLFLOW_TRACKING_URI to the project's store."""
    settings = build_project(root, days=days, rows=rows, prepare=True, edits=(*FAST_SERVE, *SHORT_ROLLOUT)).settings
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{root / 'mlflow.db'}"
    os.environ.pop("MLFLOW_REGISTRY_URI", None)
    return settings


def crafted_version(settings: Any, kind: str, delay: float = 0.0) -> str:
    """A misbehaving version (see :class:`Crafted`), logged with cloudpickle by value."""
    import cloudpickle
    import mlflow
    from mlflow.models import infer_signature

    from pipelines.io import read_frame
    from pipelines.model.features import model_input
    from pipelines.model.train import fit
    from pipelines.tracking import setup_mlflow

    d = settings.params.data
    train = read_frame(settings.training_dir / "train.parquet")
    X = model_input(train, d)
    model = Crafted(fit(train, d, settings.params.train.model_copy(update={"max_iter": 40}))[0], kind, delay)
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    try:
        setup_mlflow(settings)
        with mlflow.start_run(run_name=f"crafted-{kind}"):
            info = mlflow.sklearn.log_model(model, name="model", serialization_format="cloudpickle",
                                            signature=infer_signature(X.head(50), model.inner.predict_proba(X.head(50))))
    finally:
        cloudpickle.unregister_pickle_by_value(sys.modules[__name__])
    return register(settings, info.model_uri)


class ServerProcess:
    """`python -m pipelines serve` on 127.0.0.1 in a subprocess, stopped with SIGTERM."""

    def __init__(self, settings: Any, log_path: Path, extra: tuple[str, ...] = (), port: int | None = None) -> None:
        self.settings = settings
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        # mlflow.set_registry_uri in this process exported MLFLOW_REGISTRY_URI: the server gets the tracking URI only
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PIPELINES_", "AIRFLOW")) and k != "MLFLOW_REGISTRY_URI"}
        env.update(PIPELINES_RELOAD_TOKEN=TOKEN, PYTHONPATH=str(REPO), MLFLOW_TRACKING_URI=os.environ["MLFLOW_TRACKING_URI"])
        self.log = log_path.open("w")
        params = str(settings.root / "params.yaml")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "pipelines", "--params", params, "serve", "--port", str(self.port), *extra],
            cwd=settings.root, env=env, stdout=self.log, stderr=subprocess.STDOUT,
        )
        self.log_path = log_path

    def wait_ready(self, timeout: float = 120) -> dict[str, Any]:
        import httpx

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"server exited {self.proc.returncode}: {self.log_path.read_text()[-3000:]}"
            try:
                r = httpx.get(self.url + "/health/ready", timeout=2)
            except httpx.TransportError:
                r = None  # not listening yet
            if r is not None and r.status_code == 200:
                return r.json()
            time.sleep(0.2)
        raise AssertionError(f"server not ready after {timeout}s: {self.log_path.read_text()[-3000:]}")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def rows_of(frame: Any, data: Any) -> list[dict[str, Any]]:
    """Rows as a client would send them: JSON-safe values, NaN as null."""
    def value(k: str, v: Any) -> Any:
        return None if isinstance(v, float) and np.isnan(v) else (str(v) if k == data.id_col else v)

    out = [{k: value(k, v) for k, v in rec.items()} for rec in frame[[data.id_col, *data.features]].to_dict(orient="records")]
    return json.loads(json.dumps(out))
