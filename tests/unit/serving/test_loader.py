"""The model loader process (pipelines/serving/loader.py), on a real MLflow registry (SQLite in
tmp_path) with a real registered scikit-learn model, and real child processes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pipelines.config import Settings
from pipelines.errors import PipelineError
from pipelines.serving.loader import ModelLoader

NAME_TAG = "model_sha256"


@pytest.fixture
def registry(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> tuple[Settings, Any, np.ndarray]:
    """The project's own SQLite registry with one version of a tiny model, behind `champion`,
    registered WITHOUT its artifact hash: (settings, client, the model's scores of X)."""
    import mlflow
    from sklearn.linear_model import LogisticRegression

    from pipelines.tracking import default_tracking_uri, setup_mlflow

    # the project's own store, in this process and in the loader child (which inherits the
    # environment); monkeypatch restores both afterwards, as MLflow exports the URI it is given
    monkeypatch.setenv("MLFLOW_TRACKING_URI", default_tracking_uri(settings))
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    setup_mlflow(settings)  # and the project's experiment, as training does
    X = np.array([[0.0], [1.0], [2.0], [3.0]])
    model = LogisticRegression().fit(X, [0, 0, 1, 1])
    name = settings.p.project.model_name
    with mlflow.start_run():
        info = mlflow.sklearn.log_model(model, name="model", registered_model_name=name, serialization_format="pickle")
    client = mlflow.MlflowClient()
    client.set_registered_model_alias(name, "champion", info.registered_model_version)
    return settings, client, model.predict_proba(X)


def record_hash(settings: Settings, client: Any) -> None:
    import mlflow

    from pipelines.model.champion import artifact_sha256

    name = settings.p.project.model_name
    local = Path(mlflow.artifacts.download_artifacts(artifact_uri=f"models:/{name}/1"))
    client.set_model_version_tag(name, "1", NAME_TAG, artifact_sha256(local))


def test_a_load_runs_in_the_child_and_refuses_an_unverified_version(registry: tuple[Settings, Any, np.ndarray]) -> None:
    settings, client, scores = registry
    loader = ModelLoader(settings)
    try:
        assert loader.load("challenger") == (None, "loader")  # no such alias: nothing to serve
        with pytest.raises(PipelineError, match="has no recorded artifact hash"):  # the champion store's own check, in the child
            loader.load("champion")
        record_hash(settings, client)
        loaded, where = loader.load("champion")
        assert where == "loader" and loaded is not None and loaded.version == "1" and len(loaded.sha256) == 64
        assert np.array_equal(loaded.model.predict_proba(np.array([[0.0], [1.0], [2.0], [3.0]])), scores)
        assert loader.starts == 1 and loader.proc.pid != __import__("os").getpid()
        # a child that died between loads is replaced by the next load
        loader.proc.kill()
        loader.proc.join(timeout=10)
        assert loader.load("champion")[0].version == "1" and loader.starts == 2
        # a load the child does not answer in time fails in one line; the child is ended, the next load starts a new one
        loader.timeout_s = 0.001
        with pytest.raises(PipelineError, match="the model loader process failed loading champion: no answer"):
            loader.load("champion")
        assert loader.proc is None
        loader.timeout_s = 120
        assert loader.load("champion")[1] == "loader" and loader.starts == 3
        loader.shutdown()  # the server stops: no more loads, no new child
        with pytest.raises(PipelineError, match="the server is stopping"):
            loader.load("champion")
        assert loader.proc is None and loader.starts == 3
    finally:
        loader.close()


def _load_in(q, settings) -> None:  # noqa: ANN001 - runs in a daemonic process, which may not have children
    loader = ModelLoader(settings)
    loaded, where = loader.load("champion")
    q.put((loaded.version if loaded else None, where, loader.in_process))


def test_where_no_child_can_start_loads_run_in_the_server_process(registry: tuple[Settings, Any, np.ndarray]) -> None:
    import multiprocessing

    settings, client, _ = registry
    record_hash(settings, client)
    ctx = multiprocessing.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=_load_in, args=(q, settings), daemon=True)
    p.start()
    version, where, why = q.get(timeout=120)
    p.join(timeout=30)
    assert (version, where) == ("1", "server") and "daemonic" in why
