"""A static security lint of the shipped code (ruff's flake8-bandit rules), with the ignore
list and its reasons in pyproject.toml, and a check that secrets stay out of the repository."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SHIPPED = ["pipelines", "dags", "scripts", "deploy", "bench"]


def test_the_security_lint_is_clean() -> None:
    ruff = Path(sys.executable).with_name("ruff")
    res = subprocess.run([str(ruff), "check", "--select", "S", "--output-format", "concise", *SHIPPED],
                         cwd=REPO, capture_output=True, text=True, timeout=120, check=False)
    assert res.returncode == 0, res.stdout + res.stderr


def test_every_ignore_has_a_reason() -> None:
    text = (REPO / "pyproject.toml").read_text()
    section = text.split("[tool.ruff.lint.per-file-ignores]", 1)[1].split("\n[", 1)[0]
    lines = section.splitlines()
    for i, line in enumerate(lines):
        if re.match(r'^"[^"]+" = \[', line):
            assert i > 0 and lines[i - 1].startswith("#"), f"ignore without a reason above it: {line}"
