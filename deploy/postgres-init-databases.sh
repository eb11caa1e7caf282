#!/usr/bin/env bash
# Roles and databases of the topology, created once on an empty PostgreSQL:
#   airflow      Airflow's metadata database (owner: role airflow)
#   mlflow       the MLflow backend store: runs, metrics, registry (owner: role mlflow)
#   mlflow_auth  MLflow's basic-auth users and permissions (owner: role mlflow)
# Run by the postgres image from /docker-entrypoint-initdb.d (docker-compose.yml) and by
# tests/integration/test_postgres_topology.py; psql connects as POSTGRES_USER to POSTGRES_DB and
# honours PGHOST/PGPORT/PGPASSWORD.
set -euo pipefail
: "${AIRFLOW_DB_PASSWORD:?AIRFLOW_DB_PASSWORD is not set (see .env.example)}"
: "${MLFLOW_DB_PASSWORD:?MLFLOW_DB_PASSWORD is not set (see .env.example)}"

psql -v ON_ERROR_STOP=1 --no-psqlrc --username "${POSTGRES_USER:-postgres}" --dbname "${POSTGRES_DB:-postgres}" \
  -v airflow_password="$AIRFLOW_DB_PASSWORD" -v mlflow_password="$MLFLOW_DB_PASSWORD" <<'SQL'
CREATE ROLE airflow LOGIN PASSWORD :'airflow_password';
CREATE ROLE mlflow LOGIN PASSWORD :'mlflow_password';
CREATE DATABASE airflow OWNER airflow;
CREATE DATABASE mlflow OWNER mlflow;
CREATE DATABASE mlflow_auth OWNER mlflow;
-- each service sees only its own databases
REVOKE ALL ON DATABASE airflow FROM PUBLIC;
REVOKE ALL ON DATABASE mlflow FROM PUBLIC;
REVOKE ALL ON DATABASE mlflow_auth FROM PUBLIC;
SQL
echo "created databases airflow, mlflow, mlflow_auth"
