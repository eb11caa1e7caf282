"""The fault suite: real faults (SIGKILL, a full disk, two runners at once, hostile input)
injected into real processes, each test asserting the state left behind, not only the exit
code. Every fault test records what it injected; the session ends by writing the table the
docs' "Faults we survive" page (docs/operations/faults.md) shows (tests/faults/results.md,
git-ignored; tests/support/fault_table.py)."""

from __future__ import annotations

import json

import pytest

from tests.support.fault_table import RESULTS, WORKER_KEY, add, write
from tests.support.params import SHARED_MACHINE_GATE
from tests.support.project import Project, build_project


@pytest.fixture
def record():
    """record(fault, injections, outcome, lost): one row of the faults table."""

    def row(fault: str, injections: int, outcome: str, lost: str = "nothing") -> None:
        add(RESULTS, fault, injections, outcome, lost)

    return row


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if not RESULTS:
        return
    if hasattr(session.config, "workeroutput"):  # a pytest-xdist worker: the controller merges and writes
        session.config.workeroutput[WORKER_KEY] = json.dumps(RESULTS)
        return
    write(RESULTS)


@pytest.fixture(scope="session")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Project:
    """A project with 14 simulated, validated days and a champion from a real `dvc repro`
    (gate bounds loosened for a shared 2-core machine), shared by the disk and soak tests."""
    import sys

    proj = build_project(tmp_path_factory.mktemp("trained") / "repo", days=14, rows=500, code=True)
    for key, value in SHARED_MACHINE_GATE.items():
        proj.set_param(key, value)
    proj.run(sys.executable, "-m", "dvc", "repro")
    return proj
