#!/usr/bin/env bash
# Start/stop a real local Airflow 3 (`airflow standalone`: scheduler, API server + UI,
# dag-processor, triggerer; LocalExecutor; SQLite metadata unless AIRFLOW__DATABASE__SQL_ALCHEMY_CONN
# says otherwise) and the MLflow UI, in the background.
#
#   scripts/services.sh up | down | status
#
# Settings (environment): AIRFLOW_HOME (default ./airflow), AIRFLOW_PORT (8080),
# MLFLOW_UI_PORT (5000; 0 = do not start), MLFLOW_TRACKING_URI (default: the project's SQLite store).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
VENV="${VENV:-$ROOT/.venv}"
RUN="${RUN_DIR:-$ROOT/.run}"
export AIRFLOW_HOME="${AIRFLOW_HOME:-$ROOT/airflow}"
AIRFLOW_PORT="${AIRFLOW_PORT:-8080}"
MLFLOW_UI_PORT="${MLFLOW_UI_PORT:-5000}"
TRACKING="${MLFLOW_TRACKING_URI:-sqlite:///$ROOT/mlflow.db}"
# A tracking server (http[s]://) has its own UI: nothing to start here.
if [[ "$TRACKING" == http://* || "$TRACKING" == https://* ]]; then MLFLOW_UI_PORT=0; fi

export PATH="$VENV/bin:$PATH"           # standalone starts its children by the name `airflow`
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"   # DAG tasks import the pipelines package
export PIPELINES_ROOT="$ROOT"
export AIRFLOW__CORE__DAGS_FOLDER="$ROOT/dags"
export AIRFLOW__CORE__LOAD_EXAMPLES=False
export AIRFLOW__CORE__EXECUTOR=LocalExecutor
export AIRFLOW__API__PORT="$AIRFLOW_PORT"
export AIRFLOW__API__HOST=127.0.0.1
export AIRFLOW__API__BASE_URL="http://127.0.0.1:$AIRFLOW_PORT"
export AIRFLOW__CORE__EXECUTION_API_SERVER_URL="http://127.0.0.1:$AIRFLOW_PORT/execution/"
export AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS="admin:admin"
export AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL=30
export AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK=False
export MLFLOW_TRACKING_URI="$TRACKING"

alive() { [[ -f "$1" ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

up() {
  mkdir -p "$RUN" "$AIRFLOW_HOME"
  if alive "$RUN/airflow.pid"; then
    echo "Airflow already running (pid $(cat "$RUN/airflow.pid"))"
  else
    echo "==> starting Airflow (AIRFLOW_HOME=$AIRFLOW_HOME, log $RUN/airflow.log)"
    airflow db migrate >"$RUN/airflow-migrate.log" 2>&1
    setsid nohup airflow standalone >"$RUN/airflow.log" 2>&1 < /dev/null &
    echo $! >"$RUN/airflow.pid"
  fi
  if [[ "$MLFLOW_UI_PORT" != "0" ]]; then
    if alive "$RUN/mlflow.pid"; then
      echo "MLflow UI already running (pid $(cat "$RUN/mlflow.pid"))"
    else
      echo "==> starting the MLflow UI ($TRACKING)"
      setsid nohup mlflow ui --backend-store-uri "$TRACKING" --host 127.0.0.1 --port "$MLFLOW_UI_PORT" \
        >"$RUN/mlflow.log" 2>&1 < /dev/null &
      echo $! >"$RUN/mlflow.pid"
    fi
  fi
  echo -n "==> waiting for the Airflow API on port $AIRFLOW_PORT "
  for _ in $(seq 1 120); do
    if curl -fs "http://127.0.0.1:$AIRFLOW_PORT/api/v2/monitor/health" >/dev/null 2>&1; then break; fi
    if ! alive "$RUN/airflow.pid"; then echo; echo "Airflow exited; see $RUN/airflow.log" >&2; tail -20 "$RUN/airflow.log" >&2; exit 1; fi
    echo -n "."; sleep 2
  done
  echo
  curl -fs "http://127.0.0.1:$AIRFLOW_PORT/api/v2/monitor/health" >/dev/null || { echo "Airflow API did not come up; see $RUN/airflow.log" >&2; exit 1; }
  local pwfile="${AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE:-$AIRFLOW_HOME/simple_auth_manager_passwords.json.generated}"
  for _ in $(seq 1 30); do [[ -s "$pwfile" ]] && break; sleep 1; done
  cat <<MSG

Airflow UI:  http://127.0.0.1:$AIRFLOW_PORT   user: admin   password: $(python -c "import json,sys; print(json.load(open(sys.argv[1]))['admin'])" "$pwfile" 2>/dev/null || echo "see $pwfile")
MLflow UI:   $(if [[ "$MLFLOW_UI_PORT" != "0" ]]; then echo "http://127.0.0.1:$MLFLOW_UI_PORT"; elif [[ "$TRACKING" == http* ]]; then echo "$TRACKING (the tracking server)"; else echo "not started"; fi)
DAGs start paused: unpause training, scoring and monitoring in the UI (or: make unpause).
Stop everything with: make down
MSG
}

stop_one() {
  local name="$1" pidfile="$RUN/$1.pid"
  if ! alive "$pidfile"; then rm -f "$pidfile"; return 0; fi
  local pid; pid="$(cat "$pidfile")"
  echo "==> stopping $name (process group $pid)"
  kill -TERM -- "-$pid" 2>/dev/null || true
  for _ in $(seq 1 30); do kill -0 -- "-$pid" 2>/dev/null || break; sleep 1; done
  if kill -0 -- "-$pid" 2>/dev/null; then kill -KILL -- "-$pid" 2>/dev/null || true; fi
  rm -f "$pidfile"
}

down() { stop_one airflow; stop_one mlflow; }

status() {
  for n in airflow mlflow; do
    if alive "$RUN/$n.pid"; then echo "$n: running (pid $(cat "$RUN/$n.pid"))"; else echo "$n: stopped"; fi
  done
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) status ;;
  *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac
