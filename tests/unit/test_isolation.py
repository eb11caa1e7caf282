"""The harness's own promise: MLflow's process-wide settings do not cross from one test file to
the next (tests/conftest.py restores them between files, with tests/support/process.py)."""

from __future__ import annotations

import os
from pathlib import Path

import mlflow

from tests.support.process import restore_process_settings


def test_restore_process_settings_undoes_mlflow_uris_and_pipelines_variables(tmp_path: Path) -> None:
    before_tracking, before_registry = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    mlflow.set_tracking_uri(store)  # also exports MLFLOW_TRACKING_URI, for subprocesses
    mlflow.set_registry_uri(store)
    os.environ["PIPELINES_SERVER_URL"] = "http://127.0.0.1:1"
    assert os.environ["MLFLOW_TRACKING_URI"] == store

    changed = restore_process_settings()

    assert {"MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "PIPELINES_SERVER_URL"} <= set(changed)
    from tests.support.process import ENV_AT_START

    for key in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "PIPELINES_SERVER_URL"):  # as the session began (a user may export some)
        assert os.environ.get(key) == ENV_AT_START.get(key), key
    assert mlflow.get_tracking_uri() == before_tracking != store
    assert mlflow.get_registry_uri() == before_registry != store


def test_restore_process_settings_forgets_the_active_experiment(tmp_path: Path) -> None:
    """set_experiment keeps the experiment's id in the process: the next file's store has no
    such experiment (its first run would be created in it, or fail)."""
    from mlflow.tracking import fluent

    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    mlflow.set_experiment("isolation-check")
    assert fluent._active_experiment_id is not None

    restore_process_settings()

    from tests.support.process import ENV_AT_START

    assert fluent._active_experiment_id is None
    assert os.environ.get("MLFLOW_EXPERIMENT_ID") == ENV_AT_START.get("MLFLOW_EXPERIMENT_ID")  # set_experiment exports it too
