"""A `dvc repro` typed by hand while a training run holds the project's training marker: the real
dvc runs the real stage command, which refuses with one line; the run's own stage passes."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.support.project import build_project

pytestmark = pytest.mark.integration

RUN = "manual__2026-01-12T00:00:00+00:00"


def test_a_hand_typed_dvc_repro_does_not_run_beside_a_training_run(tmp_path: Path) -> None:
    proj = build_project(tmp_path / "repo", days=12, rows=300, code=True)
    window = proj.root / "data/training/window.json"
    claim = (
        "from pipelines.config import load_settings; from pipelines.monitoring.inflight import claim_in_flight; "
        f"claim_in_flight(load_settings(), {RUN!r})"
    )
    proj.run(sys.executable, "-c", claim)  # what the DAG's `prepare` task does first

    typed = proj.run(sys.executable, "-m", "dvc", "repro", "--single-item", "prepare", ok=False)
    assert typed.returncode != 0, typed.stdout[-2000:] + typed.stderr[-2000:]
    refusals = [ln for ln in typed.stderr.splitlines() if "a training run is in flight" in ln]
    assert len(refusals) == 1, typed.stderr[-3000:]
    assert refusals[0].startswith(f"error: a training run is in flight (training run {RUN} since "), refusals[0]
    assert "not running the `prepare` stage beside it; wait for it to finish, then run it again" in refusals[0]
    assert not window.exists()  # nothing was prepared

    # the run's own `prepare` task: the same stage, through the same dvc, as the run that holds the marker
    task = f"from pipelines.ops import tasks; print(tasks.prepare(None, {RUN!r}))"
    ran = proj.run(sys.executable, "-c", task)
    assert "Running stage 'prepare'" in ran.stdout and "in flight" not in ran.stdout + ran.stderr, ran.stdout[-2000:]
    assert window.is_file()
