"""The promotion lock on a real MLflow registry (a SQLite store in a temporary directory)."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import pytest
from mlflow import MlflowClient

from pipelines.model.registry import LOCK_SUFFIX, promotion_lock


@pytest.fixture()
def client(tmp_path: Path) -> MlflowClient:
    return MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}", registry_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")


def test_a_lock_seen_without_its_tags_is_waited_for_not_broken(client: MlflowClient, caplog: pytest.LogCaptureFixture) -> None:
    """A lock read half-way through its release comes back without tags: that is not a stale lock."""
    lock = "m" + LOCK_SUFFIX
    client.create_registered_model(lock)  # a holder whose tags this reader does not see
    release = threading.Timer(1.0, client.delete_registered_model, args=(lock,))
    release.start()
    started = time.monotonic()
    with caplog.at_level(logging.WARNING), promotion_lock(client, "m", timeout_s=30):
        waited = time.monotonic() - started
        assert client.get_registered_model(lock).tags["acquired_at"]
    release.join()
    assert waited >= 0.9, "the lock was taken before its holder let it go"
    assert "breaking" not in caplog.text
    with pytest.raises(Exception, match=r"RESOURCE_DOES_NOT_EXIST|not found"):
        client.get_registered_model(lock)


def test_a_stale_lock_is_broken_once(client: MlflowClient, caplog: pytest.LogCaptureFixture) -> None:
    lock = "m" + LOCK_SUFFIX
    client.create_registered_model(lock, tags={"owner": "someone", "acquired_at": "0"})
    with caplog.at_level(logging.WARNING), promotion_lock(client, "m", timeout_s=30):
        assert client.get_registered_model(lock).tags["acquired_at"] != "0"
    assert "breaking a stale promotion lock held by someone" in caplog.text
