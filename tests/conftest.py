"""Shared fixtures: a throw-away project root with the real params.yaml and suites."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

from pipelines.config import Settings, load_settings

REPO = Path(__file__).resolve().parents[1]

# A pytest-xdist worker runs under `python -c`: its __main__ has neither __spec__ nor __file__,
# which pyspark's Spark Connect module (imported by Great Expectations) takes for its own doctest
# runner, and it calls sys.exit(0) on import. Give the worker's __main__ a file: an empty one,
# since a process the worker spawns (multiprocessing's spawn, as the off-path scorer) runs it.
if os.environ.get("PYTEST_XDIST_WORKER"):
    _main = sys.modules["__main__"]
    if getattr(_main, "__spec__", None) is None and not hasattr(_main, "__file__"):
        _main.__file__ = str(REPO / "tests" / "xdist_main.py")


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings whose data folders live in tmp_path (params and suites copied from the repo)."""
    shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml")
    shutil.copytree(REPO / "expectations", tmp_path / "expectations")
    return load_settings(tmp_path / "params.yaml")


# `make test` runs the suite in two worker processes (pytest-xdist, `-n 2 --dist loadgroup`).
# A file's tests stay together on one worker, in order (its module fixtures are built once and
# several files' tests build on the one before); the files below share a group. The longest
# groups go first, so neither worker is left with a long one at the end. Tests of a file listed
# in EACH_TEST that use no module fixture are spread one by one.
SHARED_GROUPS = {
    # each starts a whole Airflow (api-server, scheduler, dag-processor, triggerer): one at a time
    "tests/integration/test_airflow_e2e.py": "airflow",
    "tests/integration/test_replay_airflow.py": "airflow",
    "tests/integration/test_postgres_topology.py": "airflow",
    # one session fixture (`trained`) and one results table (tests/faults/results.md)
    "tests/faults/": "faults",
}
EACH_TEST = {"tests/integration/test_replay.py"}
FIRST = ["airflow", "faults", "tests/integration/test_replay.py", "tests/integration/test_own_data.py",
         "tests/integration/test_serving.py", "tests/integration/test_cycle.py", "tests/integration/test_gate.py"]


def _group(item: pytest.Item) -> str:
    path = item.nodeid.split("::")[0]
    for prefix, name in SHARED_GROUPS.items():
        if path.startswith(prefix):
            return name
    if path in EACH_TEST:
        defs = getattr(item, "_fixtureinfo").name2fixturedefs.values()
        if not any(d[-1].scope in ("module", "package", "session") for d in defs if d):
            return item.nodeid
    return path


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist's own hook reads the groups
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    groups = {id(item): _group(item) for item in items}
    for item in items:
        item.add_marker(pytest.mark.xdist_group(groups[id(item)]))

    def rank(item: pytest.Item) -> int:
        g = groups[id(item)]
        for i, first in enumerate(FIRST):
            if g == first or g.startswith(first + "::"):
                return i
        return len(FIRST)

    items.sort(key=rank)  # stable: every file keeps its own order


# pyarrow 25 can abort a process at interpreter exit after Parquet reads (apache/arrow#34314;
# see pipelines/__main__.py and BENCHMARKS.md). The test process reads Parquet too, so once
# pytest has reported everything, leave the way the CLI does: without finalization, with
# pytest's own exit status. Without this, a green run can exit 134 at random.
_EXIT: dict[str, int] = {}


_FAULT_ROWS: dict[str, dict[str, object]] = {}  # the workers' faults-table rows (tests/faults/table.py)


@pytest.hookimpl(optionalhook=True)  # pytest-xdist's controller, as each worker finishes
def pytest_testnodedown(node: object, error: object) -> None:
    from tests.faults.table import WORKER_KEY, merge

    rows = getattr(node, "workeroutput", {}).get(WORKER_KEY)
    if rows:
        merge(_FAULT_ROWS, rows)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _FAULT_ROWS and not hasattr(session.config, "workerinput"):
        from tests.faults.table import write

        write(_FAULT_ROWS)
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
