#!/usr/bin/env bash
# Backfill a DAG over past days on the Airflow that `make up` starts (`airflow backfill create`):
#
#   scripts/backfill.sh DAG FROM TO [CONF]      e.g. scripts/backfill.sh scoring 2026-01-10 2026-01-20
#
# FROM and TO are days (YYYY-MM-DD, both included); CONF is the runs' conf as JSON (the trigger
# form's params, e.g. '{"scenario": "feature_drift"}'). MAX_ACTIVE_RUNS (default 1) runs that many
# days at once. The DAG must be unpaused for the runs to start.
#
# Refused on a SQLite metadata database (the default): Airflow's backfill creation and its
# pause/unpause fail there with "database is locked" (HTTP 503/500) while the scheduler runs.
# Run Airflow on PostgreSQL (AIRFLOW__DATABASE__SQL_ALCHEMY_CONN) to backfill.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
VENV="${VENV:-$ROOT/.venv}"
DOCS="docs/operations/airflow.md#backfills"
if [[ $# -lt 3 || $# -gt 4 || -z "$1" || -z "$2" || -z "$3" ]]; then
  echo "usage: $0 DAG FROM TO [CONF], or make backfill DAG=... FROM=... TO=... [CONF=...] (days as YYYY-MM-DD, CONF as JSON)" >&2
  exit 2
fi
export AIRFLOW_HOME="${AIRFLOW_HOME:-$ROOT/airflow}"
export PATH="$VENV/bin:$PATH"
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
export AIRFLOW__CORE__DAGS_FOLDER="$ROOT/dags"
export AIRFLOW__CORE__LOAD_EXAMPLES=False

if ! conn="$(airflow config get-value database sql_alchemy_conn 2>/dev/null)"; then
  echo "backfill: cannot read Airflow's configuration (AIRFLOW_HOME=$AIRFLOW_HOME): is $VENV installed (make venv)?" >&2
  exit 1
fi
if [[ "$conn" == sqlite* ]]; then
  echo "backfill refused: Airflow's metadata database is SQLite, where backfills fail with 'database is locked' while the scheduler runs; run Airflow on PostgreSQL to backfill: see $DOCS" >&2
  exit 2
fi
args=(--dag-id "$1" --from-date "$2" --to-date "$3" --max-active-runs "${MAX_ACTIVE_RUNS:-1}")
if [[ $# -eq 4 ]]; then args+=(--dag-run-conf "$4"); fi
exec airflow backfill create "${args[@]}"
