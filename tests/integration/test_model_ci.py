"""Model CI with the real tools: DVC experiments that show their gate verdicts, DVC plots of the
candidate and the champion across revisions, the pull request's Markdown report, and `make
model-ci` on a changed parameter, exiting non-zero exactly when the gate blocks.

One project for the whole file, built once: a clone-like copy whose `main` holds a trained
baseline (dvc.lock and metrics/ committed, champion v1 registered), then one experiment that
passes (`dvc exp run -n good`) and one that the gate blocks (`make model-ci` with a crippled
model in params.yaml, named `weak`). Real dvc, git, make and MLflow.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.params import SHARED_MACHINE_GATE
from tests.support.project import Project, build_project

pytestmark = pytest.mark.integration
GIT_ID = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}
DAYS, ROWS = 14, 500
WEAK = {"train.max_iter": 3, "train.max_depth": 1}  # holdout AUC far under the champion's: blocked
MARKER = "<!-- model-ci-report -->"


def dvc(proj: Project, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    return proj.run(sys.executable, "-m", "dvc", *args, ok=ok)


def make(proj: Project, *args: str) -> subprocess.CompletedProcess[str]:
    """`make` as a user runs it; the linked .venv counts as installed (no reinstall from the lock)."""
    return proj.run("make", "-o", ".venv/.installed-from-lock", *args, ok=False)


@pytest.fixture(scope="module")
def ci(tmp_path_factory: pytest.TempPathFactory) -> tuple[Project, subprocess.CompletedProcess[str]]:
    proj = build_project(tmp_path_factory.mktemp("modelci") / "repo", days=DAYS, rows=ROWS, code=True)
    proj.env.update(GIT_ID)
    for key, value in (("user.name", "t"), ("user.email", "t@t")):  # `dvc exp run` commits with the repository's identity
        proj.run("git", "config", key, value)
    (proj.root / ".venv").symlink_to(Path(sys.executable).parents[1])  # `make` finds it installed
    for key, value in {**SHARED_MACHINE_GATE, "simulate.days": DAYS, "simulate.rows_per_day": ROWS}.items():
        proj.set_param(key, value)
    dvc(proj, "repro")  # the baseline: trained, judged, registered as champion v1
    proj.run("git", "branch", "-M", "main")
    proj.run("git", "add", "-A")
    proj.run("git", "commit", "-qm", "baseline")
    dvc(proj, "exp", "run", "-n", "good", "-S", "train.max_iter=160")
    for key, value in WEAK.items():
        proj.set_param(key, value)
    blocked = make(proj, "model-ci", "EXP_ARGS=-n weak")
    return proj, blocked


def experiments(proj: Project) -> dict[str, dict]:
    """Each experiment's (and main's) metrics and params, from `dvc exp show --json`."""
    rows = {}
    for rev in json.loads(dvc(proj, "exp", "show", "--json").stdout):
        rows[rev.get("name") or rev["rev"]] = rev["data"]
        for exp in rev.get("experiments") or []:
            for run in exp.get("revs", []):
                rows[run.get("name") or exp.get("name")] = run["data"]
    return rows


def test_make_model_ci_prints_the_report_and_exits_non_zero_when_the_gate_blocks(ci) -> None:
    proj, blocked = ci
    assert blocked.returncode != 0, blocked.stdout[-3000:] + blocked.stderr[-3000:]
    assert MARKER in blocked.stdout and "BLOCKED" in blocked.stdout, blocked.stdout[-3000:]
    assert "the gate blocks this candidate: roc_auc_min: 0.6" in blocked.stderr, blocked.stderr[-2000:]
    report = (proj.root / "model-ci-report.md").read_text()
    assert report in blocked.stdout
    assert "| **FAIL** | `roc_auc_vs_champion` |" in report
    assert "paired bootstrap interval" in report and "### Slices" in report and "`region=north`" in report
    assert "### Metrics against `main` (`dvc metrics diff main`)" in report
    assert re.search(r"\| `metrics/gate.json` \| `candidate_roc_auc` \| 0\.\d{4} \| 0\.\d{4} \| -0\.\d{4} \|", report), report
    assert "DVC experiment `weak`" in report and "dvc_plots/index.html" in report
    assert (proj.root / "dvc_plots" / "index.html").is_file()
    # an experiment never moves the registry's aliases
    status = proj.status()
    assert status["champion"]["version"] == "1" and status["challenger"] is None


def test_dvc_exp_show_lists_each_experiments_verdict_and_metrics(ci) -> None:
    proj, _ = ci
    rows = experiments(proj)
    gate = {name: (data.get("metrics") or {}).get("metrics/gate.json", {}).get("data") for name, data in rows.items()}
    assert gate["good"]["passed"] is True and gate["good"]["verdict"] == "promote to champion"
    assert gate["weak"]["passed"] is False and gate["weak"]["verdict"] == "register as challenger only"
    assert gate["weak"]["auc_ci_low"] < -0.01 and gate["weak"]["champion_roc_auc"] is not None
    assert gate["main"]["passed"] is True and gate["main"]["candidate_roc_auc"] > 0.6  # main's committed metrics
    params = rows["weak"]["params"]["params.yaml"]["data"]["train"]
    assert (params["max_iter"], params["max_depth"]) == (3, 1)
    # the documented selection: the experiment, its verdict and key metrics, the changed params
    table = dvc(proj, "exp", "show", *TERMINAL_SELECTION).stdout
    header = next(line for line in table.splitlines() if "Experiment" in line).split()
    assert header[:4] == ["Experiment", "candidate_roc_auc", "passed", "auc_ci_low"], header
    assert set(header[4:]) == {"train.max_iter", "train.max_depth"}, header


def test_dvc_metrics_diff_compares_an_experiment_with_main(ci) -> None:
    proj, _ = ci
    diff = json.loads(dvc(proj, "metrics", "diff", "main", "weak", "--json").stdout)
    auc = diff["metrics/gate.json"]["candidate_roc_auc"]
    assert auc["new"] < auc["old"] and auc["diff"] < 0


def test_dvc_plots_show_and_diff_render_both_models_of_both_revisions(ci, tmp_path: Path) -> None:
    proj, _ = ci
    dvc(proj, "plots", "show", "-o", str(tmp_path / "show"))
    shown = (tmp_path / "show" / "index.html").read_text()
    for title in ("ROC", "Precision-recall", "Calibration", "Score distribution", "Per-slice ROC AUC"):
        assert f'id = "{title.replace(" ", "_")}__holdout_"' in shown, title
    dvc(proj, "plots", "diff", "main", "good", "-o", str(tmp_path / "diff"))
    page = (tmp_path / "diff" / "index.html").read_text()
    assert '"domain": ["main", "good"]' in page  # one colour per revision on each chart
    assert '"domain": ["roc_candidate.json", "roc_champion.json"]' in page  # one dash per model
    roc = json.loads((proj.root / "metrics" / "plots" / "roc_champion.json").read_text())
    assert roc and roc[0] == {"fpr": 0.0, "tpr": 0.0} and roc[-1] == {"fpr": 1.0, "tpr": 1.0}


def test_exp_apply_and_branch_give_the_experiments_model_and_a_passing_report(ci) -> None:
    proj, _ = ci
    dvc(proj, "exp", "branch", "weak", "try-weak")
    branch_params = proj.run("git", "show", "try-weak:params.yaml").stdout
    assert "max_iter: 3" in branch_params and "max_depth: 1" in branch_params
    assert json.loads(proj.run("git", "show", "try-weak:metrics/gate.json").stdout)["passed"] is False
    dvc(proj, "exp", "apply", "good")
    assert "max_iter: 160" in (proj.root / "params.yaml").read_text()
    out = make(proj, "model-ci-report")
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "## Model CI: the gate passes this change: promote to champion" in out.stdout
    assert "**FAIL**" not in out.stdout


# docs/guides/training.md shows this selection; the test above checks what it keeps
TERMINAL_SELECTION = (
    "--only-changed", "--drop", "Created|data/|models/|train_r|champion_|checks_|verdict|auc_diff|auc_ci_high",
)
