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
