"""SIGKILL at every step of training, then `dvc repro` again: the registry, the aliases, the
champion history, the promotion lock and the MLflow runs must end consistent.

The kills are real SIGKILLs, delivered by the process to itself at named failpoints
(pipelines/failpoint.py) so that each lands exactly where it matters: half-way through
`prepare`, before `validate_training` writes its report, with the training run open, with the
gate's runs open, holding the promotion lock, between "version registered" and "alias moved",
and between "alias moved" and "history written".
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import yaml

from tests.support.invariants import assert_consistent, registry_state
from tests.support.project import Project, build_project

pytestmark = pytest.mark.integration

# (failpoint, params to change so the stage runs again with a new candidate, the stage DVC names)
KILLS = [
    ("prepare", {}, "prepare"),
    ("validate_training", {"validate.max_single_feature_auc": 0.96, "train.seed": 1}, "validate_training"),
    ("train", {"train.seed": 2}, "train"),
    ("gate", {"train.seed": 3}, "gate"),
    ("promote:locked", {"train.seed": 4}, "promote"),
    ("promote:registered", {"train.seed": 5}, "promote"),
    ("promote:alias", {"train.seed": 6}, "promote"),
]


def repro(proj: Project, failpoint: str | None = None):
    env = {**proj.env, **({"PIPELINES_FAILPOINT": failpoint} if failpoint else {})}
    return subprocess.run(
        [sys.executable, "-m", "dvc", "repro"], cwd=proj.root, env=env, capture_output=True, text=True, timeout=900
    )


@pytest.fixture(scope="module")
def proj(tmp_path_factory: pytest.TempPathFactory) -> Project:
    proj = build_project(tmp_path_factory.mktemp("kill") / "repo", days=16, rows=600, code=True)
    # Small and quick, and every new candidate passes against the champion: the subject here is
    # what a crash leaves behind, not the gate's judgement.
    for key, value in {
        "gate.bootstrap_samples": 100, "gate.latency_calls": 5, "gate.latency_rounds": 1,
        "gate.latency_single_row_p99_ms": 5000, "gate.latency_batch_p99_ms": 60000,
        "gate.max_roc_auc_regression": 1.0, "gate.max_slice_roc_auc_regression": 1.0,
        "gate.max_prediction_psi": 100.0, "gate.min_roc_auc": 0.5,
    }.items():
        proj.set_param(key, value)
    return proj


def test_sigkill_at_every_step_of_training_then_rerun(proj: Project, record) -> None:
    for point, change, stage in KILLS:
        for key, value in change.items():
            proj.set_param(key, value)
        before = registry_state(proj) if (proj.root / "mlflow.db").exists() else {"versions": {}, "reaped": []}
        killed = repro(proj, point)
        assert killed.returncode != 0, f"{point}: the failpoint did not fire"
        assert f"failed to reproduce '{stage}'" in killed.stderr, f"{point}: {killed.stderr[-1500:]}"
        if point.startswith("promote:"):
            candidate = json.loads((proj.root / "models" / "candidate.json").read_text())
        rerun = repro(proj)
        assert rerun.returncode == 0, f"re-run after a kill at {point} failed:\n{rerun.stdout[-2000:]}\n{rerun.stderr[-2000:]}"
        state = registry_state(proj)
        assert_consistent(state)
        new = set(state["versions"]) - set(before["versions"])
        assert len(new) == 1, f"{point}: expected exactly one new version, got {sorted(new)}"
        if point.startswith("promote:"):
            # the killed promotion's candidate was registered, once, with no retraining
            assert state["versions"][new.pop()] == candidate["run_id"]
        if point in ("train", "gate"):
            assert len(state["reaped"]) > len(before["reaped"]), f"{point}: the killed process's MLflow run was not marked FAILED"
        status = proj.run(sys.executable, "-m", "dvc", "status")
        assert "up to date" in status.stdout, status.stdout
        yaml.safe_load((proj.root / "dvc.lock").read_text())  # never corrupted
    record(
        "SIGKILL in a training step (prepare, validate_training, train, gate, promote x3), then `dvc repro`",
        len(KILLS),
        "the re-run completes; one version per candidate; champion alias = history tail; no lock left; killed runs marked FAILED",
    )


def test_two_dvc_repro_at_once(proj: Project, record) -> None:
    """Two runners on one project: one waits or fails naming the lock, nothing is corrupted."""
    proj.set_param("train.seed", 11)
    before = registry_state(proj)
    runs = [subprocess.Popen([sys.executable, "-m", "dvc", "repro"], cwd=proj.root, env=proj.env, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True) for _ in range(2)]
    outs = [(p.wait(timeout=900), p.stdout.read()) for p in runs]  # type: ignore[union-attr]
    codes = sorted(code for code, _ in outs)
    assert codes[0] == 0, outs
    if codes[1] != 0:  # the loser names the lock: DVC's own rwlock on the repository
        loser = next(out for code, out in outs if code != 0)
        assert "lock" in loser.lower(), loser[-1500:]
    yaml.safe_load((proj.root / "dvc.lock").read_text())
    state = registry_state(proj)
    assert_consistent(state)
    assert len(set(state["versions"]) - set(before["versions"])) == 1, "two runners registered the candidate twice"
    status = proj.run(sys.executable, "-m", "dvc", "status")
    assert "up to date" in status.stdout, status.stdout
    record(
        "two `dvc repro` at once on one project",
        1,
        "one runs; the other "
        + ("fails naming DVC's lock" if codes[1] else "waits, then finds it up to date")
        + "; dvc.lock valid; one new version",
        "nothing",
    )
