"""The one project builder: a throw-away project in a temporary folder, from the repository's
own params.yaml and suites (and, for the tests that run `dvc repro`, git or Airflow, its code)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from tests.support.params import replace_in_params, set_param

REPO = Path(__file__).resolve().parents[2]
START = "2026-01-01"  # the first simulated day of every test project
_TOP_LEVEL = {".venv", ".git", "data", "models", "mlflow.db", "mlartifacts", "mlruns", "dvc-storage", "dvc.lock",
              "airflow", ".run"}
_ANYWHERE = shutil.ignore_patterns("__pycache__", ".pytest_cache", "*.json.tmp")


def IGNORE(folder: str, names: list[str]) -> set[str]:
    """Run state at the top of the project (not pipelines/data/, the code), caches anywhere."""
    top = {n for n in names if n in _TOP_LEVEL} if Path(folder).resolve() == REPO.resolve() else set()
    return top | set(_ANYWHERE(folder, names))


class Project:
    """A project folder, and its CLI run as a user runs it (this interpreter's bin first on PATH,
    no MLFLOW_, PIPELINES_ or AIRFLOW variables of the test process)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        bindir = str(Path(sys.executable).parent)
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "PIPELINES_", "AIRFLOW"))}
        self.env["PATH"] = f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}"

    @property
    def settings(self) -> Any:
        from pipelines.config import load_settings

        return load_settings(self.root / "params.yaml")

    def run(self, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(list(args), cwd=self.root, env=self.env, capture_output=True, text=True, timeout=900)
        if ok and proc.returncode != 0:
            raise AssertionError(f"{args} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
        return proc

    def cli(self, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
        return self.run(sys.executable, "-m", "pipelines", *args, ok=ok)

    def status(self) -> dict:
        return json.loads(self.cli("status", "--json").stdout)

    def set_params(self, old: str, new: str) -> None:
        """Replace text in params.yaml (see tests/support/params.py)."""
        replace_in_params(self.root / "params.yaml", [(old, new)])

    def set_param(self, key: str, value: object) -> None:
        """Set ``section.name`` in params.yaml, whatever it is now (see tests/support/params.py)."""
        set_param(self.root / "params.yaml", key, value)


def build_project(root: Path, *, days: int = 0, rows: int = 1500, code: bool = False, prepare: bool = False,
                  edits: Iterable[tuple[str, str]] = ()) -> Project:
    """A fresh project in ``root``: the repository's params.yaml (each ``(old, new)`` of ``edits``
    replaced in it) and expectation suites, then ``days`` simulated, validated days of ``rows``
    rows from 2026-01-01 and, with ``prepare``, the training window.

    ``code=False``: params.yaml and expectations/ only, and the data steps run in this process
    through the pipeline's functions: no subprocess, no git, a few seconds. For tests that call
    the functions (the ``settings`` fixture, the serving tests).

    ``code=True``: a copy of the repository's code (``IGNORE`` leaves its run state out) made a
    git repository of its own, and the data steps run through the CLI, as a user runs them. For
    tests that run `dvc repro` (which needs dvc.yaml and the code), record lineage (a git commit)
    or start Airflow (dags/, scripts/).
    """
    if code:
        shutil.copytree(REPO, root, ignore=IGNORE)
    else:
        root.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / "params.yaml", root / "params.yaml")
        shutil.copytree(REPO / "expectations", root / "expectations")
    replace_in_params(root / "params.yaml", edits)
    proj = Project(root)
    if code:
        ident = ("-c", "user.name=t", "-c", "user.email=t@t")
        proj.run("git", "init", "-q")
        proj.run("git", *ident, "add", "-A")
        proj.run("git", *ident, "commit", "-qm", "copy")
        if days:
            proj.cli("simulate", "--start", START, "--days", str(days), "--rows", str(rows))
            proj.cli("validate", "--all")
        if prepare:
            proj.cli("prepare")
        return proj
    if days or prepare:
        from pipelines.data.prepare import prepare as prepare_window
        from pipelines.data.simulate import simulate
        from pipelines.data.validate import validate_batch
        from pipelines.io import partition_files

        settings = proj.settings
        if days:
            simulate(settings, START, days, None, None, rows)
            for day in partition_files(settings.raw_dir):
                validate_batch(settings, day)
        if prepare:
            prepare_window(settings)
    return proj
