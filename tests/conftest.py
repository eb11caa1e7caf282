"""Shared fixtures: a throw-away project root with the real params.yaml and suites."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import pytest

from pipelines.config import Settings
from tests.support.process import restore_process_settings
from tests.support.project import REPO, build_project

# A pytest-xdist worker runs under `python -c`: its __main__ has neither __spec__ nor __file__,
# which pyspark's Spark Connect module (imported by Great Expectations) takes for its own doctest
# runner, and it calls sys.exit(0) on import. Give the worker's __main__ a file: an empty one,
# since a process the worker spawns (multiprocessing's spawn, as the off-path scorer) runs it.
if os.environ.get("PYTEST_XDIST_WORKER"):
    _main = sys.modules["__main__"]
    if getattr(_main, "__spec__", None) is None and not hasattr(_main, "__file__"):
        _main.__file__ = str(REPO / "tests" / "support" / "xdist_main.py")


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings whose data folders live in tmp_path (params and suites copied from the repo)."""
    return build_project(tmp_path).settings


# `make test` runs the suite in two worker processes (pytest-xdist, TEST_WORKERS). A file's tests stay
# together on one worker, in order (its module fixtures are built once, and several files' tests
# build on the one before); the files below share a group. Under xdist the longest groups go first, so
# neither worker is left with a long one at the end. Of a file in SPREAD, the tests whose names
# start with the prefixes given (those sharing its module fixtures) stay together, and the
# others go one by one. (pytest-xdist 3.8's own `xdist_group` marks no longer reach its
# scheduler under pytest 9, which renamed the node id it rewrites: our scheduler reads the
# groups from here instead.)
SHARED_GROUPS = {
    # each starts a whole Airflow (api-server, scheduler, dag-processor, triggerer): one at a time
    "tests/integration/test_airflow_e2e.py": "airflow",
    "tests/integration/test_replay_airflow.py": "airflow",
    "tests/integration/test_postgres_topology.py": "airflow",
    # one session fixture (`trained`, changed by one test after another)
    "tests/faults/": "faults",
}
SPREAD = {"tests/integration/test_replay.py": ("test_login_policy_", "test_the_audit_")}  # these use `login`
FIRST = ["airflow", "faults", "tests/integration/test_replay.py", "tests/integration/test_own_data.py",
         "tests/integration/test_serving.py", "tests/integration/test_cycle.py", "tests/integration/test_gate.py"]


def group_of(nodeid: str) -> str:
    """The group of a test: its tests run on one worker, in collection order."""
    path, name = nodeid.split("::", maxsplit=1)[0], nodeid.rsplit("::", maxsplit=1)[-1]
    for prefix, group in SHARED_GROUPS.items():
        if path.startswith(prefix):
            return group
    if path in SPREAD and not name.startswith(SPREAD[path]):
        return nodeid
    return path


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> Any:
    try:
        return (yield)  # the test's own fixtures are torn down first (a module's, when it is the last)
    finally:  # even when a fixture's teardown raised
        if nextitem is None or nextitem.path != item.path:
            restore_process_settings()


@pytest.hookimpl(optionalhook=True)  # pytest-xdist's controller: `--dist loadscope` schedules by group_of
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    if config.getvalue("dist") != "loadscope":
        return None  # another mode asked for by hand: xdist's own scheduler
    from xdist.scheduler import LoadScopeScheduling

    class GroupScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return group_of(nodeid)

    config.option.loadscopereorder = False  # the order is ours (FIRST), not xdist's (by test count)
    return GroupScheduling(config, log)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:  # a test spread alone must not share a module fixture with others
        if group_of(item.nodeid) == item.nodeid:
            defs = item._fixtureinfo.name2fixturedefs.items()
            shared = [n for n, d in defs if d and d[-1].scope in ("class", "module", "package")]
            if shared:
                raise pytest.UsageError(
                    f"{item.nodeid} uses the shared fixture(s) {shared}: list its name's prefix in SPREAD (tests/conftest.py)"
                )

    if not config.getoption("numprocesses", None):
        return  # one process (`make test TEST_WORKERS=0`): the files' own order

    def rank(item: pytest.Item) -> int:
        group = group_of(item.nodeid)
        return next((i for i, first in enumerate(FIRST) if group == first or group.startswith(first + "::")), len(FIRST))

    items.sort(key=rank)  # stable: every file keeps its own order


# pyarrow 25 can abort a process at interpreter exit after Parquet reads (apache/arrow#34314;
# see pipelines/cli/__init__.py and BENCHMARKS.md). The test process reads Parquet too, so once
# pytest has reported everything, leave the way the CLI does: without finalization, with
# pytest's own exit status. Without this, a green run can exit 134 at random.
_EXIT: dict[str, int] = {}


_FAULT_ROWS: dict[str, dict[str, object]] = {}  # the workers' faults-table rows (tests/support/fault_table.py)


@pytest.hookimpl(optionalhook=True)  # pytest-xdist's controller, as each worker finishes
def pytest_testnodedown(node: object, error: object) -> None:
    from tests.support.fault_table import WORKER_KEY, merge

    rows = getattr(node, "workeroutput", {}).get(WORKER_KEY)
    if rows:
        merge(_FAULT_ROWS, rows)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _FAULT_ROWS and not hasattr(session.config, "workerinput"):
        from tests.support.fault_table import write

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
