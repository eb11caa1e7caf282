"""Airflow reads AIRFLOW_HOME at import: point it at a throw-away folder before anything imports it."""

import os
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
os.environ["AIRFLOW_HOME"] = tempfile.mkdtemp(prefix="airflow-home-")
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(REPO / "dags")
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__UNIT_TEST_MODE"] = "True"

# Airflow's DAG processor and task runner put the DAG bundle's folder on sys.path (BundleDagBag);
# a bare DagBag does not, so the DAG files' `from pipeline_assets import ...` needs it here.
import sys  # noqa: E402

sys.path.insert(0, str(REPO / "dags"))
