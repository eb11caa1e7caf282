"""End to end on a real Airflow 3 (`airflow standalone`: scheduler, API server, dag-processor,
triggerer; SQLite; LocalExecutor), started by the test in a temporary AIRFLOW_HOME on a free port.

Trigger training through the REST API (the call the UI's Trigger button makes), wait for it,
find the champion in the MLflow registry; then land a drifted batch through the scoring DAG and
watch monitoring emit the retrain asset and a training run start by itself. Every process the
test started is stopped at the end.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.integration.test_cycle import make_project
from tests.system import free_port

pytestmark = pytest.mark.integration


class Api:
    def __init__(self, base: str, home: Path) -> None:
        self.base = base
        password = json.loads((home / "simple_auth_manager_passwords.json.generated").read_text())["admin"]
        token = self._call("POST", "/auth/token", {"username": "admin", "password": password}, auth=False)
        self.token = token["access_token"]

    def _call(self, method: str, path: str, body: Any = None, auth: bool = True) -> Any:
        req = urllib.request.Request(self.base + path, method=method)
        req.add_header("Content-Type", "application/json")
        if auth:
            req.add_header("Authorization", f"Bearer {self.token}")
        data = json.dumps(body).encode() if body is not None else None
        with urllib.request.urlopen(req, data=data, timeout=30) as resp:
            return json.loads(resp.read() or b"{}")

    def get(self, path: str) -> Any:
        return self._call("GET", path)

    def patch(self, path: str, body: Any) -> Any:
        return self._call("PATCH", path, body)

    def post(self, path: str, body: Any) -> Any:
        return self._call("POST", path, body)

    def wait_run(self, dag_id: str, run_id: str, timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            run = self.get(f"/api/v2/dags/{dag_id}/dagRuns/{urllib.request.quote(run_id, safe='')}")
            if run["state"] in ("success", "failed"):
                return run
            time.sleep(1)  # one small API call: a finished run is seen within a second
        raise AssertionError(f"{dag_id} run {run_id} did not finish within {timeout}s")

    def wait_new_run(self, dag_id: str, run_type: str, after: set[str], timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            runs = self.get(f"/api/v2/dags/{dag_id}/dagRuns?order_by=-run_after&limit=20")["dag_runs"]
            fresh = [r for r in runs if r["run_type"] == run_type and r["dag_run_id"] not in after]
            if fresh:
                return fresh[0]
            time.sleep(1)  # one small API call: a finished run is seen within a second
        raise AssertionError(f"no new {run_type} run of {dag_id} within {timeout}s")


def services_env(env: dict[str, str], base: Path, home: Path, port: int) -> dict[str, str]:
    """``env`` plus what `scripts/services.sh up` needs for a throw-away Airflow: this venv,
    AIRFLOW_HOME, its run folder under ``base``, the API port, no MLflow UI, free log ports."""
    return {
        **env,
        "VENV": str(Path(sys.executable).parent.parent),
        "AIRFLOW_HOME": str(home),
        "RUN_DIR": str(base / "run"),
        "AIRFLOW_PORT": str(port),
        "MLFLOW_UI_PORT": "0",
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
    }


@pytest.fixture(scope="module")
def airflow_project(tmp_path_factory: pytest.TempPathFactory):
    base = tmp_path_factory.mktemp("airflow-e2e")
    root = base / "repo"
    proj = make_project(root)
    # The training DAG's gate times predictions while Airflow's scheduler, API server and
    # dag-processor share the 2 cores; latency is test_gate's subject, not this test's.
    proj.set_params("latency_single_row_p99_ms: 200", "latency_single_row_p99_ms: 5000")
    proj.set_params("latency_batch_p99_ms: 2000", "latency_batch_p99_ms: 60000")
    proj.run("git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qam", "test bounds")

    port = free_port()
    home = base / "airflow-home"
    env = services_env(proj.env, base, home, port)
    up = subprocess.run([str(root / "scripts/services.sh"), "up"], env=env, capture_output=True, text=True, timeout=400)
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        assert f"http://127.0.0.1:{port}" in up.stdout and "password:" in up.stdout
        yield proj, Api(f"http://127.0.0.1:{port}", home), base
    finally:
        down = subprocess.run([str(root / "scripts/services.sh"), "down"], env=env, capture_output=True, text=True, timeout=120)
        log = base / "run" / "airflow.log"
        if log.exists():
            print("---- airflow.log (tail) ----\n" + "\n".join(log.read_text(errors="replace").splitlines()[-40:]))
        assert down.returncode == 0, down.stderr
        pids = subprocess.run(["pgrep", "-f", str(home)], capture_output=True, text=True).stdout.split()
        assert not pids, f"processes left running: {pids}"
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

    from tests.integration.browser import ARGS, ensure_chromium

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

    from tests.faults.conftest import assert_consistent, registry_state
    from tests.faults.table import RESULTS, add

    proj, api, _ = airflow_project
    marker = proj.root / "data/reports/drift/.retrain_in_flight"

    def new_candidate(seed: int) -> None:  # so the next runner really trains (not "up to date")
        from tests.faults.test_kill_training import set_param

        set_param(proj, "train.seed", seed)
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
    tis = api.get(f"/api/v2/dags/training/dagRuns/{urllib.request.quote(run['dag_run_id'], safe='')}/taskInstances")["task_instances"]
    from datetime import datetime

    prepared = [datetime.fromisoformat(t["end_date"]).timestamp() for t in tis if t["task_id"] == "prepare"]
    assert prepared and prepared[0] >= released - 1, "the DAG run's prepare ended before `make run` released the project"

    yaml.safe_load((proj.root / "dvc.lock").read_text())
    assert_consistent(registry_state(proj))
    add(RESULTS, "`make run` while the training DAG runs, and the DAG triggered while `make run` trains (real Airflow)", 2,
        "`make run` fails at once: `another training run is in flight (training run <run id> since ...)`; "
        "the DAG run waits for `make run`, then succeeds; dvc.lock valid, registry consistent", "nothing")
