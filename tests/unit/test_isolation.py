"""The harness's own promises: MLflow's process-wide settings do not cross from one test file to
the next (tests/conftest.py restores them between files, with tests/support/process.py), and no
test module depends on another's code (shared helpers live in tests/support; bench/ never
imports tests/)."""

from __future__ import annotations

import ast
import os
from pathlib import Path

import mlflow

from tests.support.process import restore_process_settings
from tests.support.project import REPO


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

    for key in (
        "MLFLOW_TRACKING_URI",
        "MLFLOW_REGISTRY_URI",
        "PIPELINES_SERVER_URL",
    ):  # as the session began (a user may export some)
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


def _imported_modules(path: Path) -> list[tuple[int, str]]:
    """(line, dotted name) of every module ``path`` imports, at any depth (``from x import y``
    counts x and x.y: y may be a module)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found += [(node.lineno, node.module), *((node.lineno, f"{node.module}.{a.name}") for a in node.names)]
    return found


def test_no_test_module_imports_another() -> None:
    """A test file's helpers live in tests/support: importing a test module runs its module-level
    code and mixes its fixtures and tests into the importer's namespace; conftest.py files are
    pytest's, not libraries."""
    offenders = [
        f"{path.relative_to(REPO)}:{line}: {name}"
        for path in sorted((REPO / "tests").rglob("*.py"))
        for line, name in _imported_modules(path)
        if name.startswith("tests.") and name.rsplit(".", 1)[-1].startswith(("test_", "conftest"))
    ]
    assert not offenders, "move the helper to tests/support:\n" + "\n".join(offenders)


def test_bench_does_not_import_tests() -> None:
    """Benchmarks run without the test tree; tests may import bench helpers, not the reverse."""
    offenders = [
        f"{path.relative_to(REPO)}:{line}: {name}"
        for path in sorted((REPO / "bench").rglob("*.py"))
        for line, name in _imported_modules(path)
        if name == "tests" or name.startswith("tests.")
    ]
    assert not offenders, "\n".join(offenders)


def test_every_tests_import_names_a_module_that_exists() -> None:
    """Imports inside test functions are not checked at collection: a helper that moved leaves
    them pointing nowhere until the test runs. Every `tests.` module named anywhere must exist."""
    import ast
    import importlib.util

    root = Path(__file__).resolve().parents[2]
    missing = []
    for path in sorted((root / "tests").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            is_tests = isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "tests"
            if is_tests and importlib.util.find_spec(node.module) is None:
                missing.append(f"{path.relative_to(root)}:{node.lineno} {node.module}")
    assert not missing, "imports of test modules that do not exist:\n" + "\n".join(missing)
