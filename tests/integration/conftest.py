"""Fixtures of the integration tests that several files share."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.java import ensure_java


@pytest.fixture(scope="session")
def spark() -> Iterator[Any]:
    """One local Spark (`local[2]`: the plan a cluster runs, on two executor threads) for every
    Spark test of the process: a JVM start costs seconds, and the steps' own sessions
    (pipelines/engine.py, getOrCreate) are this one."""
    from pipelines.engine import spark_session

    ensure_java()
    session = spark_session("local[2]")
    yield session
    session.stop()
