"""The one way to run an outside tool (dvc, git, a stage command) and to say why it failed.

In core, not in ops, because training needs git for its lineage (the commit it was trained
from) and the model layer may not import ops. Every caller gets the same environment (this
interpreter first on PATH and in PIPELINES_PYTHON, the one scripts/python runs the stage
commands with) and the same one-line failure reason (the last line the tool printed).
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from pipelines.errors import PipelineError, first_line

log = logging.getLogger(__name__)


def tool_env(root: Any = None, **extra: str) -> dict[str, str]:
    """Environment for `dvc` and the stage commands it runs (`scripts/python -m pipelines ...`):
    this interpreter's venv first on PATH and named in PIPELINES_PYTHON (the stages run the
    caller's interpreter), and PIPELINES_ROOT set to ``root`` when given."""
    bindir = os.path.dirname(sys.executable)
    env = {**os.environ, "PATH": f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}", "PIPELINES_PYTHON": sys.executable, **extra}
    if root is not None:
        env["PIPELINES_ROOT"] = str(root)
    return env


def run(
    cmd: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: float = 1800, capture: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run a command; never raises for a non-zero exit (see :func:`check`). ``capture=False``
    lets its output through to ours (a long `dvc repro` shows its own progress)."""
    log.debug("running %s in %s", " ".join(cmd), cwd)
    try:
        return subprocess.run(cmd, cwd=cwd, env=env, capture_output=capture, text=True, timeout=timeout, check=False)
    except FileNotFoundError as exc:
        raise PipelineError(f"cannot run {cmd[0]!r}: not installed or not on PATH") from exc
    except subprocess.TimeoutExpired as exc:
        raise PipelineError(f"`{' '.join(cmd)}` did not finish within {timeout:.0f} s") from exc


def reason(proc: subprocess.CompletedProcess[str]) -> str:
    """The last non-empty line a failed command printed (stderr first): its one-line reason."""
    return first_line(proc.stderr or proc.stdout or "", last=True) or f"exit code {proc.returncode}"


def check(proc: subprocess.CompletedProcess[str], what: str) -> subprocess.CompletedProcess[str]:
    """Raise a one-line PipelineError naming ``what`` failed and why, or return ``proc``."""
    if proc.returncode != 0:
        why = (
            reason(proc)
            if proc.stdout is not None or proc.stderr is not None
            else f"exit code {proc.returncode} (see its output above)"
        )
        raise PipelineError(f"{what} failed: {why}")
    return proc


def dvc(args: list[str], root: Path, capture: bool = True, **extra: str) -> subprocess.CompletedProcess[str]:
    """The real dvc CLI of this venv, in ``root``, with the stage environment."""
    return run([sys.executable, "-m", "dvc", *args], cwd=root, env=tool_env(root, **extra), capture=capture)


def git(args: list[str], cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return run(["git", *args], cwd=cwd, timeout=timeout)
