"""The whole daily cycle with the real tools, in a temporary copy of the project.

Real `dvc repro`, a real MLflow SQLite store and registry, real Great Expectations and
Evidently; nothing is mocked. Days: 20 stable days (labels for 13), then drifted and broken
batches land on later days.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.integration
IGNORE = shutil.ignore_patterns(
    ".venv", ".git", "data", "models", "mlflow.db", "mlartifacts", "mlruns", "dvc-storage", "dvc.lock",
    "__pycache__", ".pytest_cache", "airflow", ".run", "*.json.tmp",
)


class Project:
    def __init__(self, root: Path) -> None:
        self.root = root
        bindir = str(Path(sys.executable).parent)
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "PIPELINES_", "AIRFLOW"))}
        self.env["PATH"] = f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}"

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
        p = self.root / "params.yaml"
        text = p.read_text()
        assert old in text
        p.write_text(text.replace(old, new))


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Project:
    root = tmp_path_factory.mktemp("project") / "repo"
    shutil.copytree(REPO, root, ignore=IGNORE)
    proj = Project(root)
    proj.run("git", "init", "-q")
    proj.run("git", "-c", "user.name=t", "-c", "user.email=t@t", "add", "-A")
    proj.run("git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "copy")
    proj.cli("simulate", "--start", "2026-01-01", "--days", "20", "--rows", "1500")
    proj.cli("validate", "--all")
    return proj


def test_first_repro_registers_a_champion(project: Project) -> None:
    out = project.run(sys.executable, "-m", "dvc", "repro").stdout
    assert "Running stage 'promote'" in out
    st = project.status()
    assert st["champion"]["version"] == "1"
    assert st["champion"]["gate_passed"] == "true"
    assert st["champion"]["data_md5"] and st["champion"]["git_commit"] not in ("", "unknown")


def test_second_repro_is_a_fast_no_op(project: Project) -> None:
    started = time.monotonic()
    out = project.run(sys.executable, "-m", "dvc", "repro").stdout
    assert "Data and pipelines are up to date" in out
    assert "Running stage" not in out
    assert time.monotonic() - started < 60


def test_crippled_candidate_is_challenger_only(project: Project) -> None:
    project.set_params("max_iter: 150", "max_iter: 1")
    project.set_params("max_depth: 4", "max_depth: 1")
    try:
        out = project.run(sys.executable, "-m", "dvc", "repro").stdout
        assert "Running stage 'train'" in out and "Running stage 'prepare'" not in out
        st = project.status()
        assert st["champion"]["version"] == "1", "the champion must be untouched"
        assert st["challenger"]["version"] == "2"
        assert st["challenger"]["gate_passed"] == "false"
        decision = st["last_gate_decision"]
        assert decision["passed"] is False and decision["champion"]["version"] == "1"
        assert any(r.startswith("roc_auc") for r in decision["reasons"])
    finally:
        project.set_params("max_iter: 1\n", "max_iter: 150\n")
        project.set_params("max_depth: 1\n", "max_depth: 4\n")


def test_scoring_writes_one_row_per_input_with_champion_version(project: Project) -> None:
    project.cli("score", "--date", "2026-01-20")
    pred = pd.read_parquet(project.root / "data/predictions/2026-01-20.parquet")
    batch = pd.read_parquet(project.root / "data/validated/2026-01-20.parquet")
    assert len(pred) == len(batch) == 1500
    assert pred["customer_id"].tolist() == batch["customer_id"].tolist()
    assert set(pred["model_version"]) == {"1"}
    assert pred["score"].between(0, 1).all()


def test_stable_day_does_not_call_for_retraining(project: Project) -> None:
    res = project.cli("drift", "--date", "2026-01-20")
    summary = json.loads((project.root / "data/reports/drift/2026-01-20.json").read_text())
    assert summary["retrain"] is False, summary["psi"]
    assert "retrain not due" in res.stderr
    assert (project.root / "data/reports/drift/2026-01-20.html").stat().st_size > 10_000


def test_feature_drift_calls_for_retraining_naming_logins(project: Project) -> None:
    project.cli("simulate", "--start", "2026-01-21", "--days", "1", "--rows", "1500",
                "--scenario", "feature_drift", "--scenario-start", "2026-01-21")
    project.cli("validate", "--date", "2026-01-21")  # drift is not bad data: it validates
    res = project.cli("drift", "--date", "2026-01-21")
    summary = json.loads((project.root / "data/reports/drift/2026-01-21.json").read_text())
    assert summary["retrain"] is True
    assert summary["drifted_features"][0] == "logins_30d"
    assert "logins_30d" in res.stderr


def test_bad_batch_fails_validation_and_nothing_downstream_runs(project: Project) -> None:
    before = project.status()["champion"]["version"]
    old_predictions = {p.name: p.read_bytes() for p in (project.root / "data/predictions").glob("*.parquet")}
    project.cli("simulate", "--start", "2026-01-22", "--days", "1", "--rows", "1500",
                "--scenario", "data_quality", "--scenario-start", "2026-01-22")
    res = project.cli("validate", "--date", "2026-01-22", ok=False)
    assert res.returncode == 1
    assert "error: batch 2026-01-22 failed validation" in res.stderr
    assert "income: expected at most 5.0% nulls" in res.stderr
    assert "age: expected values between" in res.stderr
    assert (project.root / "data/quarantine/2026-01-22/2026-01-22.parquet").is_file()
    scored = project.cli("score", "--date", "2026-01-22", ok=False)
    assert scored.returncode == 1 and "no validated batch for 2026-01-22" in scored.stderr
    assert len(scored.stderr.strip().splitlines()) == 1
    assert not (project.root / "data/predictions/2026-01-22.parquet").exists()
    assert project.status()["champion"]["version"] == before
    after = {p.name: p.read_bytes() for p in (project.root / "data/predictions").glob("*.parquet")}
    assert after == old_predictions


def test_training_serving_skew_is_a_hard_failure(project: Project) -> None:
    project.cli("simulate", "--start", "2026-01-23", "--days", "1", "--rows", "1500",
                "--scenario", "skew", "--scenario-start", "2026-01-23")
    res = project.cli("validate", "--date", "2026-01-23", ok=False)
    assert res.returncode == 1
    assert "avg_spend_30d: training-serving skew" in res.stderr and "not drift" in res.stderr
    assert "logins_30d" not in res.stderr
    assert (project.root / "data/quarantine/2026-01-23/data_docs/index.html").is_file()


def test_gate_override_needs_justification_then_rollback(project: Project) -> None:
    res = project.cli("promote", "--override", "  ", ok=False)
    assert res.returncode == 1 and "needs a written justification" in res.stderr
    assert project.status()["champion"]["version"] == "1"
    project.cli("promote", "--override", "risk team accepts the lower AUC for this test")
    st = project.status()
    assert st["champion"]["version"] == "2" and st["champion_history"] == ["1", "2"]
    project.cli("rollback", "--reason", "v2 is the crippled one")
    st = project.status()
    assert st["champion"]["version"] == "1" and st["champion_history"] == ["1"]
    res = project.cli("rollback", "--reason", "again", ok=False)
    assert res.returncode == 1 and "no previous champion" in res.stderr


def test_manual_promotion_needs_a_reason(project: Project) -> None:
    res = project.cli("promote", "--version", "2", ok=False)
    assert res.returncode == 1 and "needs a written reason" in res.stderr
    res = project.cli("promote", "--version", "99", "--reason", "x", ok=False)
    assert res.returncode == 1 and "has no version 99" in res.stderr
