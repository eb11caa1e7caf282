#!/usr/bin/env bash
# The Airflow init job (the `airflow-init` service of docker-compose.yml; also run by
# tests/integration/test_postgres_topology.py against a real PostgreSQL):
#   1. refresh the shared project workspace (PIPELINES_ROOT) from the code baked into the image
#      (PROJECT_SOURCE), keeping its state: data/, dvc.lock, metrics/, the DVC cache;
#   2. point the workspace's DVC remote at the object store (DVC_REMOTE_URL, optional);
#   3. `airflow db migrate` on AIRFLOW__DATABASE__SQL_ALCHEMY_CONN;
#   4. create the admin user: the SimpleAuthManager reads users from
#      AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS and their passwords from the file
#      AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE, written here from .env;
#   5. with MLFLOW_PIPELINE_USERNAME set: the MLflow user the pipelines and the server run as,
#      created with the admin's credentials (MLFLOW_ADMIN_USERNAME/PASSWORD, given to this job
#      only), with EDIT on the project's experiment and registered model, both created here by
#      the admin: EDIT logs runs, registers versions and moves aliases, but cannot delete a
#      model or change permissions (MANAGE, which only the admin holds).
set -euo pipefail
ROOT="${PIPELINES_ROOT:?PIPELINES_ROOT is not set (the project workspace)}"
: "${AIRFLOW__DATABASE__SQL_ALCHEMY_CONN:?AIRFLOW__DATABASE__SQL_ALCHEMY_CONN is not set}"
: "${AIRFLOW_ADMIN_USERNAME:?AIRFLOW_ADMIN_USERNAME is not set (see .env.example)}"
: "${AIRFLOW_ADMIN_PASSWORD:?AIRFLOW_ADMIN_PASSWORD is not set (see .env.example)}"
: "${AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE:?AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE is not set}"

if [[ -n "${PROJECT_SOURCE:-}" && "$(cd "$PROJECT_SOURCE" && pwd)" != "$(mkdir -p "$ROOT" && cd "$ROOT" && pwd)" ]]; then
  echo "==> refreshing the workspace $ROOT from $PROJECT_SOURCE (data/, dvc.lock and the DVC cache are kept)"
  for item in "$PROJECT_SOURCE"/* "$PROJECT_SOURCE"/.[!.]*; do
    name="$(basename "$item")"
    case "$name" in data | metrics | .dvc) continue ;; esac
    rm -rf "${ROOT:?}/$name"
  done
  cp -a "$PROJECT_SOURCE/." "$ROOT/"
fi

if [[ -n "${DVC_REMOTE_URL:-}" ]]; then
  echo "==> DVC remote 'storage' -> $DVC_REMOTE_URL (default for dvc push/pull in the workspace)"
  (
    cd "$ROOT"
    dvc remote add --local --force --default storage "$DVC_REMOTE_URL"
    if [[ -n "${DVC_REMOTE_ENDPOINT_URL:-}" ]]; then
      dvc remote modify --local storage endpointurl "$DVC_REMOTE_ENDPOINT_URL"
    fi
  )
fi

echo "==> airflow db migrate"
airflow db migrate

echo "==> admin user '$AIRFLOW_ADMIN_USERNAME' (password from AIRFLOW_ADMIN_PASSWORD)"
python - <<'PY'
import json, os, pathlib

path = pathlib.Path(os.environ["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"])
path.parent.mkdir(parents=True, exist_ok=True)
passwords = json.loads(path.read_text() or "{}") if path.is_file() else {}
passwords[os.environ["AIRFLOW_ADMIN_USERNAME"]] = os.environ["AIRFLOW_ADMIN_PASSWORD"]
tmp = path.with_name(path.name + ".tmp")
tmp.write_text(json.dumps(passwords) + "\n")
tmp.chmod(0o600)
tmp.replace(path)
PY
if [[ -n "${MLFLOW_PIPELINE_USERNAME:-}" ]]; then
  : "${MLFLOW_PIPELINE_PASSWORD:?MLFLOW_PIPELINE_PASSWORD is not set}"
  : "${MLFLOW_ADMIN_USERNAME:?MLFLOW_ADMIN_USERNAME is not set (the init job creates the pipeline user as admin)}"
  : "${MLFLOW_ADMIN_PASSWORD:?MLFLOW_ADMIN_PASSWORD is not set}"
  echo "==> MLflow user '$MLFLOW_PIPELINE_USERNAME' with EDIT on the project's experiment and model"
  python - <<'PY'
import os

import yaml
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from mlflow.server.auth.client import AuthServiceClient

uri = os.environ["MLFLOW_TRACKING_URI"]
os.environ["MLFLOW_TRACKING_USERNAME"] = os.environ["MLFLOW_ADMIN_USERNAME"]  # this process only
os.environ["MLFLOW_TRACKING_PASSWORD"] = os.environ["MLFLOW_ADMIN_PASSWORD"]
user, password = os.environ["MLFLOW_PIPELINE_USERNAME"], os.environ["MLFLOW_PIPELINE_PASSWORD"]
project = yaml.safe_load(open(os.path.join(os.environ["PIPELINES_ROOT"], "params.yaml")))["project"]
auth, client = AuthServiceClient(uri), MlflowClient(uri)
try:
    auth.create_user(user, password)
except MlflowException:  # already there (a re-run of the job): keep its password in step with .env
    auth.update_user_password(user, password)
exp = client.get_experiment_by_name(project["experiment"])
exp_id = exp.experiment_id if exp else client.create_experiment(project["experiment"])
try:
    client.create_registered_model(project["model_name"])
except MlflowException as exc:
    if exc.error_code != "RESOURCE_ALREADY_EXISTS":
        raise
for kind, resource in (("experiment", exp_id), ("registered_model", project["model_name"])):
    auth.grant_user_permission(user, kind, resource, "EDIT")
print(f"    {user}: EDIT on experiment {project['experiment']} ({exp_id}) and model {project['model_name']}")
PY
fi
echo "==> airflow-init done"
