#!/usr/bin/env bash
# Proof loop for the pyarrow exit abort (see pipelines/cli/__init__.py): run a Parquet-reading
# command N times and count exit codes. 134 = SIGABRT ("terminate called without an active
# exception"). Needs data from `make run` first.
#   bench/exit_abort_loop.sh [N]
set -uo pipefail
cd "$(dirname "$0")/.."
N="${1:-60}"
PY=.venv/bin/python
FILES=$(ls data/validated/*.parquet | head -20 | tr '\n' ' ')
count() {  # name, command...
  local name="$1"; shift
  local ok=0 abort=0 other=0
  for _ in $(seq 1 "$N"); do
    "$@" >/dev/null 2>&1; rc=$?
    case $rc in 0) ok=$((ok+1));; 134) abort=$((abort+1));; *) other=$((other+1));; esac
  done
  printf "| %s | %d | %d | %d | %d |\n" "$name" "$N" "$ok" "$abort" "$other"
}
echo "| command | runs | exit 0 | exit 134 (abort) | other |"
echo "| --- | --- | --- | --- | --- |"
count "baseline: pd.read_parquet (threads) of 20 partitions, normal interpreter exit" \
  $PY -c "import sys, pandas as pd; [pd.read_parquet(f) for f in sys.argv[1:]]" $FILES
count "pd.read_parquet(use_threads=False) of the same 20 partitions, normal interpreter exit" \
  $PY -c "import sys, pandas as pd; [pd.read_parquet(f, use_threads=False) for f in sys.argv[1:]]" $FILES
count "python -m pipelines prepare (reads 20+ partitions, exits via os._exit)" \
  $PY -m pipelines prepare
