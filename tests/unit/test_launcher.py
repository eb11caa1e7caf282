"""scripts/python, the interpreter dvc.yaml's stages run: found from a plain shell, or one clear line."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
PRINT_EXE = ["-c", "import sys; print(sys.executable)"]


def _project(tmp_path: Path, venv: bool) -> Path:
    """A project folder holding the launcher, with or without a .venv (its python: this one)."""
    root = tmp_path / "project"
    (root / "scripts").mkdir(parents=True)
    shutil.copy2(REPO / "scripts" / "python", root / "scripts" / "python")
    if venv:
        (root / ".venv" / "bin").mkdir(parents=True)
        (root / ".venv" / "bin" / "python").symlink_to(sys.executable)
    return root


def _bare_path(tmp_path: Path) -> str:
    """A PATH with no interpreter on it at all (only what the launcher itself uses), so the
    machine's own python3 cannot stand in."""
    bindir = tmp_path / "bin"
    bindir.mkdir(parents=True)
    (bindir / "dirname").symlink_to(shutil.which("dirname") or "/usr/bin/dirname")
    return str(bindir)


def _launch(root: Path, path: str, **extra: str) -> subprocess.CompletedProcess[str]:
    env = {"PATH": path, "HOME": os.environ.get("HOME", "/tmp"), **extra}
    return subprocess.run(["/bin/sh", str(root / "scripts" / "python"), *PRINT_EXE], cwd=root, env=env,
                          capture_output=True, text=True, timeout=60)


def test_plain_shell_finds_the_projects_venv(tmp_path: Path) -> None:
    root = _project(tmp_path, venv=True)
    proc = _launch(root, "/usr/bin:/bin")  # no venv on PATH, nothing activated
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == str(root / ".venv" / "bin" / "python")


def test_activated_environment_or_the_callers_interpreter(tmp_path: Path) -> None:
    root = _project(tmp_path, venv=False)
    venv = tmp_path / "activated"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").symlink_to(sys.executable)
    proc = _launch(root, _bare_path(tmp_path), VIRTUAL_ENV=str(venv))  # the Docker image sets it
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == str(venv / "bin" / "python")
    proc = _launch(root, _bare_path(tmp_path / "x"), PIPELINES_PYTHON=sys.executable)  # the pipelines' own dvc calls
    assert proc.returncode == 0 and proc.stdout.strip() == sys.executable, proc.stderr


def test_no_environment_is_one_line_saying_what_to_do(tmp_path: Path) -> None:
    root = _project(tmp_path, venv=False)
    proc = _launch(root, _bare_path(tmp_path))
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr.count("\n") == 1, proc.stderr
    assert proc.stderr.startswith("error: no Python environment with the project's dependencies: run `make venv` in ")
    assert str(root) in proc.stderr
    proc = _launch(root, _bare_path(tmp_path / "y"), PIPELINES_PYTHON=str(tmp_path / "missing"))
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1 and "PIPELINES_PYTHON" in proc.stderr


def test_every_stage_runs_the_launcher() -> None:
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    assert os.access(REPO / "scripts" / "python", os.X_OK)
    for name, stage in stages.items():
        assert stage["cmd"].startswith("scripts/python -m pipelines "), f"stage {name}: {stage['cmd']}"
