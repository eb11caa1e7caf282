"""The failure stories, replayed end to end with the real tools (--quick calendar).

Each story runs through the real CLI (`python -m pipelines replay`) in its own temporary
project: real `dvc repro` stages, a real MLflow SQLite registry, Great Expectations and
Evidently. The tests check the story's guard fired in its window, that there was no retrain
loop, that nothing was lost (read back from the files and the registry, not from the replay's
own bookkeeping), and the headline live AUC numbers.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.integration


def run_story(out: Path, story: str, *extra: str) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "PIPELINES_", "AIRFLOW"))}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    proc = subprocess.run(
        [sys.executable, "-m", "pipelines", "replay", "--story", story, "--quick", "--out", str(out), *extra],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=1800,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    timeline = json.loads((out / "timeline.json").read_text())
    timeline["stdout"] = proc.stdout
    return timeline


def served(t: dict[str, Any]) -> list[dict[str, Any]]:
    return [r for r in t["days"] if r["phase"] == "served"]


def nothing_lost(t: dict[str, Any]) -> None:
    """From the files and the registry: every validated served day scored once, whole, by that
    day's champion; no quarantined or warm-up day scored; every version named is registered."""
    from mlflow import MlflowClient

    root = Path(t["project"])
    assert t["audit"]["ok"], t["audit"]["problems"]
    client = MlflowClient(tracking_uri=f"sqlite:///{root / 'mlflow.db'}")
    registered = {str(v.version) for v in client.search_model_versions("name='credit-default'")}
    for rec in t["days"]:
        pred = root / "data" / "predictions" / f"{rec['day']}.parquet"
        if rec["phase"] == "served" and rec["validated"]:
            p = pd.read_parquet(pred)
            v = pd.read_parquet(root / "data" / "validated" / f"{rec['day']}.parquet")
            assert p["customer_id"].tolist() == v["customer_id"].tolist()
            assert set(p["model_version"]) == {rec["champion"]} and rec["champion"] in registered
            assert set(p["scoring_date"]) == {rec["day"]}
        else:
            assert not pred.exists(), rec["day"]
        if not rec["validated"]:
            assert (root / "data" / "quarantine" / rec["day"] / "validation_result.json").is_file()
            assert not (root / "data" / "validated" / f"{rec['day']}.parquet").exists()
    # one scoring run per scored day in MLflow
    exp = client.get_experiment_by_name("credit-default")
    days = [r.data.tags["day"] for r in client.search_runs([exp.experiment_id], "tags.step = 'score'", max_results=10000)]
    assert sorted(days) == sorted(r["day"] for r in served(t) if r["validated"])


def day_of(t: dict[str, Any], offset: int) -> str:
    return (date.fromisoformat(t["launch"]) + timedelta(days=offset)).isoformat()


@pytest.fixture(scope="module")
def login(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return run_story(tmp_path_factory.mktemp("replay") / "login_policy", "login_policy")


def test_login_policy_drift_fires_brakes_hold_then_one_retrain_recovers(login: dict[str, Any]) -> None:
    t = login
    start = t["failure"]["start"]
    assert start == day_of(t, 3)
    days = {r["day"]: r for r in served(t)}
    # drift fires on the first shifted day, not before
    drifted = [d for d, r in days.items() if (r.get("drift") or {}).get("drifted")]
    assert drifted and drifted[0] == start and "logins_30d" in days[start]["drift"]["drifted"]
    assert all(d >= start for d in drifted)
    # the brakes hold until 7 drifted days have labels (delay 3): requested on served day 3 + 3 + 6
    requested = [tr for tr in t["trainings"] if tr["trigger"].startswith("retrain requested")]
    assert [tr["day"] for tr in requested] == [day_of(t, 12)], t["trainings"]
    held = [d for d in drifted if d < requested[0]["day"]]
    assert len(held) == 9 and all(days[d]["drift"]["brakes"] for d in held)
    assert "waiting for labels" in " ".join(days[held[-1]]["drift"]["brakes"])
    # the gate promotes the retrained model; it trained on the shifted days only
    tr = requested[0]
    assert tr["passed"] and tr["role"] == "champion" and (tr["champion_before"], tr["champion_after"]) == ("1", "2")
    assert tr["train_days"][0] >= start
    # no retrain loop: one retrain, and the new champion sees no drift
    assert t["retrains"] == 1
    after = [r for d, r in days.items() if d > tr["day"]]
    assert after and all(not r["drift"]["drifted"] for r in after)
    assert all(r["champion"] == "2" for r in after)


def test_login_policy_headline_numbers(login: dict[str, Any]) -> None:
    h = login["headline"]
    assert h["before"] >= 0.78, h
    assert h["worst"] <= h["before"] - 0.04, h
    assert h["after"] >= h["worst"] + 0.04 and h["after_version"] == "2", h
    assert h["matured_days"]["recovered"] >= 2


def test_login_policy_nothing_lost_and_a_readable_timeline(login: dict[str, Any]) -> None:
    nothing_lost(login)
    out = Path(login["project"]).parent
    html = (out / "timeline.html").read_text()
    assert "Guard &rarr; day it fired" in html and "plotly" in html.lower() and "retrain requested" in html
    assert (out / "timeline.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    guards = {g["guard"] for g in login["guards"]}
    assert {"drift", "brakes", "retrain", "gate"} <= guards
    lines = [ln for ln in login["stdout"].splitlines() if ln.startswith("20")]
    assert len(lines) == len(served(login)) and "live AUC" in lines[-1] and "top PSI" in lines[-1]
    # the user's project is untouched: the replay lives in its own folder
    assert str(REPO) not in login["project"]


def test_replay_rejects_an_unknown_story(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "pipelines", "replay", "--story", "nope", "--out", str(tmp_path)],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 1 and "unknown story 'nope'" in proc.stderr
    assert not (tmp_path / "project").exists()

