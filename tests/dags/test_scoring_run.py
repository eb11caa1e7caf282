"""The scoring DAG run by Airflow's own task runner (`airflow dags test`, no scheduler) for a day
with no batch: the run ends with its tasks skipped, one log line says why, nothing is landed or
scored and no asset event is emitted. (Unpausing the DAG starts such a run for today.)"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DAY = "2026-12-03"  # far past the simulated calendar of params.yaml (2026-01-01, 24 days)


def test_a_run_for_a_day_without_a_batch_is_skipped_with_its_reason(tmp_path: Path) -> None:
    project, home = tmp_path / "project", tmp_path / "airflow-home"
    project.mkdir()
    shutil.copy(REPO / "params.yaml", project / "params.yaml")
    shutil.copytree(REPO / "expectations", project / "expectations")
    bindir = str(Path(sys.executable).parent)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "PIPELINES_", "MLFLOW_"))},
        "PATH": f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}",
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "PYTHONPATH": str(REPO),
        "PIPELINES_ROOT": str(project),
        # a failure would alert here; nothing listens, and nothing may be sent
        "PIPELINES_ALERTMANAGER_URL": "http://127.0.0.1:9",
    }

    def airflow(*args: str) -> subprocess.CompletedProcess[str]:
        out = subprocess.run([f"{bindir}/airflow", *args], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
        return out

    airflow("db", "migrate")
    ran = airflow("dags", "test", "scoring", DAY)

    with sqlite3.connect(home / "airflow.db") as db:
        states = dict(db.execute("SELECT task_id, state FROM task_instance WHERE dag_id = 'scoring'").fetchall())
        runs = db.execute("SELECT state FROM dag_run WHERE dag_id = 'scoring'").fetchall()
        events = db.execute("SELECT count(*) FROM asset_event").fetchone()[0]
    assert states == {"land_batch": "skipped", "validate_batch": "skipped", "score": "skipped"}, ran.stdout[-3000:]
    assert runs == [("success",)] and events == 0
    why = [line for line in (ran.stdout + ran.stderr).splitlines() if "nothing to score" in line]
    assert len(why) == 1 and f"no batch for {DAY} in data/raw" in why[0], why
    assert not (project / "data").exists(), "a day was landed or scored"
