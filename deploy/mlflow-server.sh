#!/usr/bin/env bash
# Start the MLflow tracking server with basic authentication (`--app-name basic-auth`):
# backend store on PostgreSQL, artifacts proxied by the server (`--serve-artifacts`) to
# MLFLOW_ARTIFACTS_DESTINATION (s3://... on MinIO in docker-compose.yml, a folder in the tests),
# so clients need only the tracking URI and their MLflow user, never object-store credentials.
# Used by the `mlflow` service of docker-compose.yml and by tests/integration/test_postgres_topology.py.
set -euo pipefail
: "${MLFLOW_BACKEND_STORE_URI:?MLFLOW_BACKEND_STORE_URI is not set (postgresql+psycopg2://user:password@host:port/mlflow)}"
: "${MLFLOW_AUTH_DATABASE_URI:?MLFLOW_AUTH_DATABASE_URI is not set (postgresql+psycopg2://user:password@host:port/mlflow_auth)}"
: "${MLFLOW_ARTIFACTS_DESTINATION:?MLFLOW_ARTIFACTS_DESTINATION is not set (s3://bucket/path or a folder)}"
: "${MLFLOW_AUTH_ADMIN_USERNAME:?MLFLOW_AUTH_ADMIN_USERNAME is not set}"
: "${MLFLOW_AUTH_ADMIN_PASSWORD:?MLFLOW_AUTH_ADMIN_PASSWORD is not set}"
: "${MLFLOW_FLASK_SERVER_SECRET_KEY:?MLFLOW_FLASK_SERVER_SECRET_KEY is not set (CSRF key of the auth app)}"

# The auth app reads its settings from an ini file; the admin user comes from the
# MLFLOW_AUTH_ADMIN_* variables (created on first start only). configparser treats % as
# interpolation, hence %% for URL-encoded passwords.
conf_dir="$(mktemp -d)"
trap 'rm -rf "$conf_dir"' EXIT
cat >"$conf_dir/basic_auth.ini" <<INI
[mlflow]
default_permission = ${MLFLOW_AUTH_DEFAULT_PERMISSION:-READ}
database_uri = ${MLFLOW_AUTH_DATABASE_URI//%/%%}
authorization_function = mlflow.server.auth:authenticate_request_basic_auth
# a verified password is cached per server worker for this long (PBKDF2 on every request is the
# server's main cost); a password change reaches the other workers within this window
auth_cache_ttl_seconds = ${MLFLOW_AUTH_CACHE_TTL_SECONDS:-60}
INI
export MLFLOW_AUTH_CONFIG_PATH="$conf_dir/basic_auth.ini"
# MLflow's job runner (huey consumers, about 250 MB each) serves GenAI features this project
# does not use; set MLFLOW_SERVER_ENABLE_JOB_EXECUTION=true to have it.
export MLFLOW_SERVER_ENABLE_JOB_EXECUTION="${MLFLOW_SERVER_ENABLE_JOB_EXECUTION:-false}"

mlflow server --app-name basic-auth \
  --backend-store-uri "$MLFLOW_BACKEND_STORE_URI" \
  --serve-artifacts --artifacts-destination "$MLFLOW_ARTIFACTS_DESTINATION" \
  --host "${MLFLOW_HOST:-0.0.0.0}" --port "${MLFLOW_PORT:-5000}" --workers "${MLFLOW_WORKERS:-2}" &
server=$!
trap 'kill -TERM "$server" 2>/dev/null; wait "$server"; rm -rf "$conf_dir"' TERM INT
wait "$server"
