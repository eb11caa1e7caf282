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

from pipelines.ops.timeline import first_alerts

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.integration


LONG = pytest.mark.skipif(not os.environ.get("REPLAY_LONG"), reason="full-length story: make test-long (REPLAY_LONG=1)")
# A quick story the compressed year also replays (its quarantine, alert and brakes are checked
# there): on its own only in make test-long.
IN_THE_YEAR = pytest.mark.skipif(not os.environ.get("REPLAY_LONG"), reason="replayed within the year: make test-long")


def run_story(out: Path, story: str, *extra: str, quick: bool = True) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "PIPELINES_", "AIRFLOW"))}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pipelines",
            "replay",
            "--story",
            story,
            *(["--quick"] if quick else []),
            "--out",
            str(out),
            *extra,
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    timeline = json.loads((out / "timeline.json").read_text())
    timeline["stdout"] = proc.stdout
    # the story ran on the shipped settings of everything that decides
    assert timeline["product_overrides"] == [], timeline["params"]
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
    # the drift alert (the shipped rule, applied to the day's published metrics) on that same day
    assert first_alerts(t)["PipelinesDriftDetected"] == start
    assert next(g for g in t["guards"] if g["guard"] == "drift")["alerted"] == start
    # the brakes hold until 10 days since the shift have labels (delay 3): requested on served day 3 + 9 + 3
    requested = [tr for tr in t["trainings"] if tr["trigger"].startswith("retrain requested")]
    assert [tr["day"] for tr in requested] == [day_of(t, 15)], t["trainings"]
    held = [d for d in drifted if d < requested[0]["day"]]
    assert len(held) == 12 and all(days[d]["drift"]["brakes"] for d in held)
    assert "waiting for labels" in " ".join(days[held[-1]]["drift"]["brakes"])
    # the gate promotes the retrained model; its window followed the shift: the shifted days only
    tr = requested[0]
    assert tr["passed"] and tr["role"] == "champion" and (tr["champion_before"], tr["champion_after"]) == ("1", "2")
    assert tr["train_days"][0] == start
    # ... and the prediction-shift check, measured against the stale champion, was waived with its reason
    decision = json.loads((Path(t["project"]) / "data" / "reports" / "gate" / "decision.json").read_text())
    shift = next(c for c in decision["checks"] if c["check"] == "prediction_shift_psi")
    assert shift["value"] > 0.25 and shift["passed"] and f"shift that began on {start}" in shift["detail"]
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


def alert_days(t: dict[str, Any], alertname: str) -> list[str]:
    """The served days on which the shipped rules raised ``alertname``."""
    return [r["day"] for r in served(t) if any(a["alert"] == alertname for a in r.get("alerts", []))]


def failure_days(t: dict[str, Any]) -> list[str]:
    return [r["day"] for r in served(t) if r["failure"]]


@IN_THE_YEAR
def test_skew_every_skewed_day_is_blocked_and_nothing_is_scored_from_it(tmp_path: Path) -> None:
    t = run_story(tmp_path / "skew", "skew")
    bad = failure_days(t)
    assert len(bad) == 4
    for r in served(t):
        if r["failure"]:
            assert r["validated"] is False and "training-serving skew" in r["quarantine_reasons"][0]
        else:
            assert r["validated"] and r["scored_by"] == "1"
    assert t["retrains"] == 0 and t["guards"][0]["guard"] == "validation" and t["guards"][0]["day"] == bad[0]
    assert t["guards"][0]["alerted"] == bad[0] and alert_days(t, "PipelinesDayQuarantined") == bad
    nothing_lost(t)


@IN_THE_YEAR
def test_null_spike_is_quarantined_and_the_champion_keeps_serving_good_days(tmp_path: Path) -> None:
    t = run_story(tmp_path / "null_spike", "null_spike")
    bad = failure_days(t)
    assert len(bad) == 3
    for r in served(t):
        assert r["validated"] is (not r["failure"])
        if r["failure"]:
            assert any("income" in reason for reason in r["quarantine_reasons"])
    assert alert_days(t, "PipelinesDayQuarantined") == bad  # alerted on each bad day, on no other
    good_after = [r for r in served(t) if r["day"] > bad[-1]]
    assert good_after and all(r["scored_by"] == "1" for r in good_after)
    assert t["retrains"] == 0
    nothing_lost(t)


@IN_THE_YEAR
def test_bad_retrain_is_blocked_by_the_gate_and_the_champion_stays(tmp_path: Path) -> None:
    t = run_story(tmp_path / "bad_retrain", "bad_retrain")
    [run] = [tr for tr in t["trainings"] if tr["trigger"] == "scheduled training run"]
    assert run["day"] == day_of(t, 10)
    flipped = failure_days(t)
    assert run["train_days"][0] <= flipped[0] and run["train_days"][1] >= flipped[-1]  # it learned from the bad labels
    assert run["passed"] is False and run["role"] == "challenger" and run["champion_after"] == "1"
    assert any(r.startswith("roc_auc") for r in run["reasons"]), run["reasons"]
    assert next(g for g in t["guards"] if g["guard"] == "gate")["alerted"] == run["day"]
    assert all(r["champion"] == "1" for r in served(t)) and t["retrains"] == 1
    nothing_lost(t)


@IN_THE_YEAR
def test_flapping_drift_never_starts_a_retrain_loop(tmp_path: Path) -> None:
    t = run_story(tmp_path / "flapping", "flapping")
    drifted = [r for r in served(t) if (r.get("drift") or {}).get("drifted")]
    assert len(drifted) >= 3, [r.get("drift", {}).get("top_psi") for r in served(t)]
    for r in drifted:  # never two drifted days in a row: the k-in-a-row brake holds every time
        assert not r["drift"]["retrain"] and any("in a row" in b for b in r["drift"]["brakes"])
    assert t["retrains"] == 0
    # what flapping raises: the drift alert on each drifted day (it resolves on the quiet days between)
    assert alert_days(t, "PipelinesDriftDetected") == [r["day"] for r in drifted]
    nothing_lost(t)


@IN_THE_YEAR
def test_concept_shift_only_live_performance_sees_it_and_a_retrain_recovers(tmp_path: Path) -> None:
    t = run_story(tmp_path / "concept_shift", "concept_shift")
    days = served(t)
    assert not any(r["drift"]["drifted"] for r in days if r.get("drift")), "PSI must stay quiet: the inputs did not change"
    alarmed = [r for r in days if (r.get("drift") or {}).get("performance_alarm")]
    assert alarmed and alarmed[0]["day"] > t["failure"]["start"]
    # the live-AUC alert comes with the first matured day under the floor, before the alarm's k days
    assert t["failure"]["start"] < first_alerts(t)["PipelinesLiveAucUnderFloor"] <= alarmed[0]["day"]
    requested = [tr for tr in t["trainings"] if tr["trigger"].startswith("retrain requested")]
    assert len(requested) == 1 and "live performance" in requested[0]["trigger"], t["trainings"]
    # 10 matured days since the first day of low live AUC (the labels brake), and the window follows them
    assert requested[0]["day"] == day_of(t, 15) and requested[0]["train_days"][0] >= t["failure"]["start"]
    assert requested[0]["passed"] and requested[0]["champion_after"] == "2" and t["retrains"] == 1
    h = t["headline"]
    assert h["worst"] <= h["before"] - 0.15 and h["after"] >= h["worst"] + 0.15, h
    nothing_lost(t)


# The guard each full-length story must show in its table, and its retrain count.
FULL = {"login_policy": ("gate", 1), "concept_shift": ("performance", 1), "skew": ("validation", 0),
        "null_spike": ("validation", 0), "bad_retrain": ("gate", 1), "flapping": ("brakes", 0)}


@pytest.mark.long
@LONG
@pytest.mark.parametrize("name", sorted(FULL))
def test_full_length_story(tmp_path: Path, name: str) -> None:
    t = run_story(tmp_path / name, name, quick=False)
    guard, retrains = FULL[name]
    assert guard in {g["guard"] for g in t["guards"]} and t["retrains"] == retrains, t["guards"]
    if name in ("login_policy", "concept_shift"):
        h = t["headline"]
        assert h["worst"] <= h["before"] - 0.04 and h["after"] >= h["worst"] + 0.04, h
    nothing_lost(t)


def test_the_audit_catches_what_it_must(login: dict[str, Any]) -> None:
    """The audit behind "nothing lost" fails on a wrong champion, a skipped day and a scored
    quarantine (records altered in memory; the project's files and registry are the real ones)."""
    import copy

    from pipelines.config import load_settings
    from pipelines.ops.audit import audit
    from pipelines.ops.replay_project import project_env

    root = Path(login["project"])
    scored = [r for r in served(login) if r["validated"]]
    with project_env(root):
        settings = load_settings(root / "params.yaml")
        assert audit(settings, login)["ok"]
        wrong = copy.deepcopy(login)
        next(r for r in wrong["days"] if r["day"] == scored[0]["day"])["champion"] = "9"
        assert any("the champion of the day was v9" in p for p in audit(settings, wrong)["problems"])
        skipped = copy.deepcopy(login)
        next(r for r in skipped["days"] if r["day"] == scored[1]["day"])["scored_by"] = None
        assert any("validated on a served day but not scored" in p for p in audit(settings, skipped)["problems"])
        hidden = copy.deepcopy(login)
        rec = next(r for r in hidden["days"] if r["day"] == scored[2]["day"])
        rec["validated"], rec["scored_by"] = False, None
        problems = audit(settings, hidden)["problems"]
        assert any("quarantined day was scored" in p for p in problems) and any(
            "quarantined but a validated copy exists" in p for p in problems
        )


def year_invariants(t: dict[str, Any]) -> dict[str, Any]:
    """What a year unattended must show, read from its timeline (and, for the rows, the files)."""
    y = t["year"]
    assert t["product_overrides"] == [] and t["story"] == "year"
    assert y["interventions"] == [], y["interventions"]  # nobody had to step in
    assert y["rows_lost"] == [], y["rows_lost"]  # every landed row validated or quarantined, every validated row scored once
    late = [e for e in y["events"] if not e["alerted_on_time"]]
    assert not late, late  # each injected failure alerted on the first day it can be seen...
    assert y["stable_quarter_alerts"] == []  # ...and nothing alerted while the world was stable
    assert y["auc_days"] > 0 and len(t["hindsight"]) >= y["auc_days"]
    return y


def test_a_compressed_year_runs_unattended_on_the_shipped_settings(tmp_path: Path) -> None:
    t = run_story(tmp_path / "year", "year")
    y = year_invariants(t)
    # Compressed, the wait for a new world's labels after each lasting change (13 days of 76) weighs
    # far more than in a year; outside it, live AUC stays at the hindsight optimum (measured 91 %:
    # the concept shift's champion learned from 7 days, and its refresh met the inverted labels).
    assert y["auc_at_optimum_share_steady"] >= 0.85, (y["auc_at_optimum_share_steady"], y["auc_misses"])
    assert all(m["awaiting_retrain"] for m in y["auc_misses"] if m["live"] < m["hindsight"] - 0.05), y["auc_misses"]
    # the loop recovered by itself: the shifts were retrained on, the inverted labels were not promoted
    trainings = t["trainings"]
    assert any(tr["trigger"].startswith("retrain requested") and tr["role"] == "champion" for tr in trainings)
    requested = [tr["trigger"] for tr in trainings if tr["trigger"].startswith("retrain requested")]
    shifts = [r for r in requested if "the window grew" not in r]
    assert len(shifts) == 2, trainings  # the feature shift and the concept shift; flapping started no loop
    # each champion that learned a shift from its first days caught up as they grew (at most twice a shift)
    assert 1 <= len(requested) - len(shifts) <= 4, trainings
    bad = [tr for tr in trainings if tr["trigger"] == "scheduled training run"]
    assert bad and not bad[0]["passed"] and bad[0]["role"] == "challenger"
    out = Path(t["project"]).parent
    assert "hindsight optimum" in (out / "timeline.html").read_text()
    assert "year: interventions 0; rows lost 0" in t["stdout"]


@pytest.mark.long
@LONG
def test_a_full_year_runs_unattended_on_the_shipped_settings(tmp_path: Path) -> None:
    t = run_story(tmp_path / "year", "year", quick=False)
    y = year_invariants(t)
    # outside the two waits for a new world's labels (17 days each), live AUC stays at the optimum
    # (measured 99 %; over every matured day 89 %, docs/guides/stories.md)
    assert y["auc_at_optimum_share_steady"] >= 0.95, (y["auc_at_optimum_share_steady"], y["auc_misses"])
    assert y["auc_at_optimum_share"] >= 0.85, (y["auc_at_optimum_share"], y["auc_misses"])
    assert all(m["awaiting_retrain"] for m in y["auc_misses"] if m["live"] < m["hindsight"] - 0.05), y["auc_misses"]
