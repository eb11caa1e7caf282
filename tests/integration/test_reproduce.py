"""`python -m pipelines reproduce`: rebuild a registered version from its lineage.

Real git worktrees, the real dvc CLI and remote, a real MLflow store. One project, in order:
register v1; change data and params and register v2; reproduce v1 exactly; break its data
in the remote and get refusals naming the file; a version from a dirty tree is refused.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from tests.support.project import Project, build_project

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Project:
    proj = build_project(tmp_path_factory.mktemp("reproduce") / "repo", days=16, rows=800, code=True)
    proj.run(sys.executable, "-m", "dvc", "repro")
    proj.cli("push")
    return proj


def remote_file(project: Project, md5: str) -> Path:
    return project.root / "dvc-storage" / "files" / "md5" / md5[:2] / md5[2:]


def tags(project: Project, version: str) -> dict:
    from mlflow import MlflowClient

    uri = f"sqlite:///{project.root / 'mlflow.db'}"
    return MlflowClient(tracking_uri=uri, registry_uri=uri).get_model_version("credit-default", version).tags


def test_a_version_records_what_a_rebuild_needs(project: Project) -> None:
    t = tags(project, "1")
    assert t["git_dirty"] == "false" and len(t["git_commit"]) == 40
    assert t["lock_sha256"] and t["params_md5"] and t["dvc_remote"].startswith("local (")
    for key in ("data_md5", "holdout_md5"):
        assert remote_file(project, t[key]).is_file(), f"{key} pushed to the DVC remote"


def test_reproduce_v1_exactly_after_data_and_params_changed(project: Project) -> None:
    project.set_params("window_days: 30", "window_days: 4")
    project.set_params("learning_rate: 0.05", "learning_rate: 0.1")
    project.run("git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qam", "shorter window, faster learning")
    project.run(sys.executable, "-m", "dvc", "repro")
    project.cli("push")
    assert tags(project, "2")["data_md5"] != tags(project, "1")["data_md5"]
    before = project.status()
    res = project.cli("reproduce", "1")
    assert "reproduce v1: EXACT MATCH" in res.stderr
    report = json.loads((project.root / "data/reports/reproduce/credit-default-v1.json").read_text())
    assert report["exact"] and report["checks"]["holdout_predictions"]["identical"]
    assert report["checks"]["holdout_predictions"]["rows"] > 1000
    assert report["checks"]["train_roc_auc"]["registered"] == pytest.approx(
        report["checks"]["train_roc_auc"]["rebuilt"], abs=1e-6
    )
    after = project.status()
    assert (after["champion"], after["challenger"], after["champion_history"]) == (
        before["champion"],
        before["challenger"],
        before["champion_history"],
    )
    assert project.run("git", "status", "--porcelain", "--untracked-files=no").stdout.strip() == ""
    assert "reproduce-v1" not in project.run("git", "worktree", "list").stdout


def test_corrupted_or_missing_data_in_the_remote_is_named(project: Project) -> None:
    t = tags(project, "1")
    holdout = remote_file(project, t["holdout_md5"])
    original = holdout.read_bytes()
    holdout.chmod(0o644)
    holdout.write_bytes(original[:-10] + b"0123456789")
    res = project.cli("reproduce", "1", ok=False)
    assert res.returncode == 1
    assert "data/training/holdout.parquet in DVC remote local is corrupted" in res.stderr and t["holdout_md5"] in res.stderr
    holdout.write_bytes(original)
    train = remote_file(project, t["data_md5"])
    train.unlink()
    res = project.cli("reproduce", "1", ok=False)
    assert res.returncode == 1
    assert f"data/training/train.parquet (md5 {t['data_md5']}) is missing from DVC remote local" in res.stderr
    assert "holdout" not in res.stderr, "the restored holdout is fine"


def test_a_version_from_a_dirty_tree_is_flagged_and_refused(project: Project) -> None:
    train_py = project.root / "pipelines" / "model" / "train.py"
    train_py.write_text(train_py.read_text() + "\n# an uncommitted experiment\n")
    res = project.run(sys.executable, "-m", "dvc", "repro")
    assert "was trained from a dirty working tree" in res.stderr + res.stdout
    version = json.loads((project.root / "data/reports/gate/registration.json").read_text())["version"]
    assert tags(project, version)["git_dirty"] == "true"
    res = project.cli("reproduce", version, ok=False)
    assert res.returncode == 1 and "dirty working tree" in res.stderr and "cannot be reproduced exactly" in res.stderr
