"""Shared fixtures: a throw-away project root with the real params.yaml and suites."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from pipelines.config import Settings, load_settings

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings whose data folders live in tmp_path (params and suites copied from the repo)."""
    shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml")
    shutil.copytree(REPO / "expectations", tmp_path / "expectations")
    return load_settings(tmp_path / "params.yaml")


# pyarrow 25 can abort a process at interpreter exit after Parquet reads (apache/arrow#34314;
# see pipelines/__main__.py and BENCHMARKS.md). The test process reads Parquet too, so once
# pytest has reported everything, leave the way the CLI does: without finalization, with
# pytest's own exit status. Without this, a green run can exit 134 at random.
_EXIT: dict[str, int] = {}


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    _EXIT["status"] = int(exitstatus)


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    if "status" in _EXIT and not hasattr(config, "workerinput"):
        import logging
        import os
        import sys

        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(_EXIT["status"])
