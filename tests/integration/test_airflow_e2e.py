"""End to end on a real Airflow 3 (`airflow standalone`: scheduler, API server, dag-processor,
triggerer; SQLite; LocalExecutor), started by the test in a temporary AIRFLOW_HOME on a free port.

Trigger training through the REST API (the call the UI's Trigger button makes), wait for it,
find the champion in the MLflow registry; then land a drifted batch through the scoring DAG and
watch monitoring emit the retrain asset and a training run start by itself. Airflow runs with
PIPELINES_ALERTMANAGER_URL pointing at a real Alertmanager: a task that fails for good is an
alert there. Every process the test started is stopped at the end.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from pipelines.monitoring.notify import ALERTMANAGER_ENV, ALERTNAME
from tests.support.airflow_api import Api, services_env, stop_services
from tests.support.alertmanager import alertmanager, alerts
from tests.support.project import build_project
from tests.support.system import free_port

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def am_url(tmp_path_factory: pytest.TempPathFactory):
    """A real Alertmanager for the module's Airflow (its failed-task alerts)."""
    with alertmanager(tmp_path_factory.mktemp("alertmanager")) as url:
        yield url


@pytest.fixture(scope="module")
def airflow_project(tmp_path_factory: pytest.TempPathFactory, am_url: str):
    base = tmp_path_factory.mktemp("airflow-e2e")
    root = base / "repo"
    proj = build_project(root, days=20, code=True)
    # The training DAG's gate times predictions while Airflow's scheduler, API server and
    # dag-processor share the 2 cores; latency is test_gate's subject, not this test's.
    proj.set_params("latency_single_row_p99_ms: 200", "latency_single_row_p99_ms: 5000")
    proj.set_params("latency_batch_p99_ms: 2000", "latency_batch_p99_ms: 60000")
    # Two drifted days must start a retrain through the assets: this calendar's drifted days have
    # no matured labels, so the shipped labels brake (10 days since the shift) would hold it; the
    # replayed stories judge the shipped brakes, this test the DAGs' chain.
    proj.set_params("min_labelled_drifted_days: 10", "min_labelled_drifted_days: 0")
    proj.run("git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qam", "test bounds")

    port = free_port()
    home = base / "airflow-home"
    env = {**services_env(proj.env, base, home, port), ALERTMANAGER_ENV: am_url}
    up = subprocess.run([str(root / "scripts/services.sh"), "up"], env=env, capture_output=True, text=True, timeout=400)
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        assert f"http://127.0.0.1:{port}" in up.stdout and "password:" in up.stdout
        yield proj, Api(f"http://127.0.0.1:{port}", home), base
    finally:
        stop_services(root, env, base, home)
        with socket.socket() as s:
            assert s.connect_ex(("127.0.0.1", port)) != 0, "the API port is still open"


def test_manual_training_then_drift_triggers_retraining(airflow_project) -> None:
    proj, api, _ = airflow_project
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        dags = {d["dag_id"] for d in api.get("/api/v2/dags")["dags"]}
        if dags >= {"training", "scoring", "monitoring"}:
            break
        time.sleep(3)
    assert api.get("/api/v2/importErrors")["total_entries"] == 0
    api.patch("/api/v2/dags/training", {"is_paused": False})

    # 1. manual trigger, as the UI's Trigger button does
    run = api.post("/api/v2/dags/training/dagRuns", {"logical_date": None, "conf": {"reason": "e2e test"}})
    done = api.wait_run("training", run["dag_run_id"], timeout=900)
    assert done["state"] == "success", done
    st = proj.status()
    assert st["champion"] is not None and st["champion"]["gate_passed"] is True

    # 2. a drifted batch lands; scoring -> monitoring (asset) -> training (asset), by themselves
    before = {r["dag_run_id"] for r in api.get("/api/v2/dags/training/dagRuns?limit=50")["dag_runs"]}
    api.patch("/api/v2/dags/monitoring", {"is_paused": False})
    api.patch("/api/v2/dags/scoring", {"is_paused": False})
    for day in ("2026-01-21", "2026-01-22"):  # two drifted days: drift.consecutive_windows = 2
        run = api.post(
            "/api/v2/dags/scoring/dagRuns",
            {"logical_date": None, "conf": {"day": day, "scenario": "feature_drift"}},
        )
        scored = api.wait_run("scoring", run["dag_run_id"], timeout=600)
        assert scored["state"] == "success", scored
        assert (proj.root / f"data/predictions/{day}.parquet").is_file()

    retrain = api.wait_new_run("training", "asset_triggered", before, timeout=600)
    finished = api.wait_run("training", retrain["dag_run_id"], timeout=900)
    assert finished["state"] == "success", finished
    first = json.loads((proj.root / "data/reports/drift/2026-01-21.json").read_text())
    assert first["retrain"] is False and "2 needed" in first["reason"]  # the brake held after one day
    drift = json.loads((proj.root / "data/reports/drift/2026-01-22.json").read_text())
    assert drift["retrain"] is True and "logins_30d" in drift["drifted_features"]
    assert not (proj.root / "data/reports/drift/.retrain_in_flight").exists()
    events = api.get("/api/v2/assets/events?limit=50")["asset_events"]
    reasons = [e["extra"].get("reason", "") for e in events if e.get("extra")]
    assert any("logins_30d" in r for r in reasons), reasons


def test_the_trigger_form_runs_training_with_its_defaults(airflow_project) -> None:
    """A person opens the training DAG in the Airflow UI, presses Trigger and, without typing
    anything, presses Trigger in the form: the run starts and succeeds. (A string Param that
    defaults to "" used to keep that button disabled.)"""
    from playwright.sync_api import sync_playwright

    from tests.support.browser import ARGS, ensure_chromium

    chromium = ensure_chromium()
    proj, api, base = airflow_project
    password = json.loads((base / "airflow-home" / "simple_auth_manager_passwords.json.generated").read_text())["admin"]
    before = {r["dag_run_id"] for r in api.get("/api/v2/dags/training/dagRuns?limit=50")["dag_runs"]}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(api.base + "/")
            page.locator("input[name=username]").fill("admin")
            page.locator("input[name=password]").fill(password)
            page.get_by_role("button", name="Sign in").click()
            page.wait_for_url(api.base + "/", timeout=30_000)
            page.goto(api.base + "/dags/training")
            page.get_by_role("button", name="Trigger Dag").click()
            form = page.get_by_role("dialog")
            assert form.locator("input[name=element_reason]").input_value() == "scheduled"
            assert form.locator("input[name=element_justification]").input_value() == ""
            submit = form.get_by_role("button", name="Trigger", exact=True)
            assert submit.is_enabled(), "the trigger form refuses its own defaults"
            submit.click()
            form.wait_for(state="hidden", timeout=30_000)
        finally:
            browser.close()
    run = api.wait_new_run("training", "manual", before, timeout=120)
    assert run["conf"].get("justification") is None and run["conf"].get("override_gate") is False
    done = api.wait_run("training", run["dag_run_id"], timeout=900)
    assert done["state"] == "success", done
    assert proj.status()["champion"] is not None


def test_make_run_and_the_training_dag_never_train_at_once(airflow_project) -> None:
    """Two runners on one project: `make run` started while a training DAG run is in flight
    fails at once with one line naming that run; a DAG run triggered while `make run` trains
    waits for it, then succeeds. Nothing is corrupted: dvc.lock parses, the registry is
    consistent (one version per candidate, alias = history tail, no lock, no run left running)."""
    import yaml

    from tests.support.fault_table import RESULTS, add
    from tests.support.invariants import assert_consistent, registry_state

    proj, api, _ = airflow_project
    marker = proj.root / "data/reports/drift/.retrain_in_flight"

    def new_candidate(seed: int) -> None:  # so the next runner really trains (not "up to date")
        proj.set_param("train.seed", seed)
        proj.run("git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qam", f"seed {seed}")

    # 1. the DAG trains; `make run` (what it runs: python -m pipelines run) is refused, naming it
    new_candidate(43)
    run = api.post("/api/v2/dags/training/dagRuns", {"logical_date": None, "conf": {"reason": "two runners"}})
    deadline = time.monotonic() + 300
    while not (marker.exists() and run["dag_run_id"] in marker.read_text()):
        assert time.monotonic() < deadline, "the training DAG run never marked itself in flight"
        time.sleep(1)
    refused = proj.cli("run", ok=False)
    assert refused.returncode == 1, refused.stdout[-1500:] + refused.stderr[-1500:]
    line = [ln for ln in refused.stderr.splitlines() if ln.startswith("error: ")][-1]
    assert f"another training run is in flight (training run {run['dag_run_id']} since" in line, line
    assert api.wait_run("training", run["dag_run_id"], timeout=900)["state"] == "success"
    assert not marker.exists()

    # 2. `make run` trains; a DAG run triggered meanwhile waits for it, then succeeds
    new_candidate(44)
    runner = subprocess.Popen([sys.executable, "-m", "pipelines", "run"], cwd=proj.root, env=proj.env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while not (marker.exists() and "make run" in marker.read_text()):
        assert runner.poll() is None and time.monotonic() < deadline, runner.communicate()
        time.sleep(0.5)
    run = api.post("/api/v2/dags/training/dagRuns", {"logical_date": None, "conf": {"reason": "while make run trains"}})
    # when `make run` lets go of the project (after training; it goes on scoring and checking drift)
    def holder() -> str:
        try:
            return marker.read_text()
        except FileNotFoundError:  # released, and not claimed by the DAG run yet
            return ""

    released = None
    while runner.poll() is None and time.monotonic() < deadline + 900:
        if released is None and "make run" not in holder():
            released = time.time()
        time.sleep(0.2)
    out, err = runner.communicate(timeout=900)
    assert runner.returncode == 0, out[-1500:] + err[-1500:]
    assert released is not None, "`make run` ended before it was seen letting go of the training marker"
    done = api.wait_run("training", run["dag_run_id"], timeout=900)
    assert done["state"] == "success", done
    tis = api.get(f"/api/v2/dags/training/dagRuns/{urllib.request.quote(run['dag_run_id'], safe='')}/taskInstances")[
        "task_instances"
    ]
    from datetime import datetime

    prepared = [datetime.fromisoformat(t["end_date"]).timestamp() for t in tis if t["task_id"] == "prepare"]
    assert prepared and prepared[0] >= released - 1, "the DAG run's prepare ended before `make run` released the project"

    yaml.safe_load((proj.root / "dvc.lock").read_text())
    assert_consistent(registry_state(proj))
    add(RESULTS, "`make run` while the training DAG runs, and the DAG triggered while `make run` trains (real Airflow)", 2,
        "`make run` fails at once: `another training run is in flight (training run <run id> since ...)`; "
        "the DAG run waits for `make run`, then succeeds; dvc.lock valid, registry consistent", "nothing")


def test_a_task_that_fails_for_good_is_an_alert_in_alertmanager(airflow_project, am_url: str) -> None:
    """A mistyped day in a scoring run's conf: land_batch fails, is retried once (the DAG's
    retry), fails again, and its on_failure_callback posts one AirflowTaskFailed alert naming
    the DAG, the task and the run's logical date, with the task's log URL. The first try, a
    retry, sends nothing."""
    proj, api, _ = airflow_project
    logical = "2026-01-23T00:00:00+00:00"
    run = api.post("/api/v2/dags/scoring/dagRuns", {"logical_date": logical, "conf": {"day": "2026-01-32"}})
    api.patch("/api/v2/dags/scoring", {"is_paused": False})  # after: this run goes before the scheduled one
    done = api.wait_run("scoring", run["dag_run_id"], timeout=600)
    assert done["state"] == "failed", done

    def ours() -> list[dict]:
        return [a for a in alerts(am_url, ALERTNAME)
                if a["labels"]["dag_id"] == "scoring" and a["labels"]["logical_date"] == logical]

    deadline = time.monotonic() + 60  # the callback runs after the task's state is reported
    while not ours() and time.monotonic() < deadline:
        time.sleep(1)
    [alert] = ours()
    assert alert["labels"]["task_id"] == "land_batch" and alert["labels"]["severity"] == "warning", alert
    assert alert["labels"]["project"] == proj.root.name, alert
    notes = alert["annotations"]
    assert notes["summary"] == f"Airflow task scoring.land_batch failed for {logical} (try 2)", notes
    assert notes["description"] == "not a date (expected YYYY-MM-DD): '2026-01-32'", notes
    run_path = f"/dags/scoring/runs/{urllib.request.quote(run['dag_run_id'], safe='')}/tasks/land_batch"
    assert notes["log_url"].startswith(api.base + run_path), notes
    assert notes["runbook_url"].endswith("/operations/alerts/#airflowtaskfailed"), notes
    assert alert["generatorURL"] == notes["log_url"] and alert["status"]["state"] == "active", alert


def test_unpausing_scoring_scores_no_day_without_a_batch(airflow_project, am_url: str) -> None:
    """Unpausing the scoring DAG (daily, catchup=False) makes the scheduler start a run for the
    latest interval, today, at once. Today has no batch in this project (its simulated calendar
    is January): the run's tasks end skipped, land_batch's log says why in one line, and nothing
    is landed or scored, no asset event is emitted and no alert is sent."""
    proj, api, _ = airflow_project
    api.patch("/api/v2/dags/scoring", {"is_paused": False})
    run = api.wait_new_run("scoring", "scheduled", set(), timeout=300)
    done = api.wait_run("scoring", run["dag_run_id"], timeout=300)
    day = done["logical_date"][:10]
    assert done["state"] == "success", done
    path = f"/api/v2/dags/scoring/dagRuns/{urllib.request.quote(run['dag_run_id'], safe='')}"
    states = {t["task_id"]: t["state"] for t in api.get(path + "/taskInstances")["task_instances"]}
    assert states == {"land_batch": "skipped", "validate_batch": "skipped", "score": "skipped"}, states
    log = json.dumps(api.get(path + "/taskInstances/land_batch/logs/1"))
    assert log.count("nothing to score") == 1 and f"no batch for {day} in data/raw" in log, log[-2000:]
    assert not list((proj.root / "data").glob(f"*/{day}.*")), "today was landed or scored"
    events = api.get(f"/api/v2/assets/events?source_dag_id=scoring&source_run_id={urllib.request.quote(run['dag_run_id'])}")
    assert events["asset_events"] == [], events
    assert not [a for a in alerts(am_url, ALERTNAME)
                if a["labels"]["dag_id"] == "scoring" and a["labels"]["logical_date"][:10] == day]
