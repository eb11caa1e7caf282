"""A throw-away Airflow for the tests that start one (`scripts/services.sh up`): the environment it
needs and a client of its REST API (the calls the UI makes)."""

from __future__ import annotations

import json
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from tests.support.system import free_port


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


def stop_services(root: Path, env: dict[str, str], base: Path, home: Path) -> None:
    """`scripts/services.sh down` (as `make down`), the tail of Airflow's log on the test's output,
    and no process of ``home`` left running."""
    import subprocess

    down = subprocess.run([str(root / "scripts/services.sh"), "down"], env=env, capture_output=True, text=True, timeout=120)
    log = base / "run" / "airflow.log"
    if log.exists():
        print("---- airflow.log (tail) ----\n" + "\n".join(log.read_text(errors="replace").splitlines()[-40:]))
    assert down.returncode == 0, down.stderr
    pids = subprocess.run(["pgrep", "-f", str(home)], capture_output=True, text=True).stdout.split()
    assert not pids, f"processes left running: {pids}"
