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
# pip prints a warning per package for index folders this machine's pip.conf lists but lacks
PIPFILTER := sed -u '/is ignored: it is neither a file nor a directory/d'

.DEFAULT_GOAL := help
.PHONY: help venv spark run demo test test-long test-unit serve mlflow-ui up down unpause clean-data lock
.PHONY: lint docs docs-serve reference

help: ## Show this help
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-18s\033[0m %s\n", $$1, $$2}'

venv: $(STAMP) ## Create .venv from the committed lock (requirements.lock); no-op when up to date

$(STAMP): requirements.lock
	@echo "==> creating $(VENV) from requirements.lock (first time: about 4 minutes)"
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install --quiet --disable-pip-version-check --no-input -r requirements.lock 2>&1 | $(PIPFILTER)
	@touch $(STAMP)

spark: $(SPARK_STAMP) ## Add pyspark to .venv (requirements-spark.lock, ~460 MB) for `drift --engine spark`; needs Java 17+

$(SPARK_STAMP): requirements-spark.lock $(STAMP)
	@echo "==> adding pyspark to $(VENV) from requirements-spark.lock (first time: about 1-2 minutes)"
	@$(PY) -m pip install --quiet --disable-pip-version-check --no-input -c requirements.lock -r requirements-spark.lock 2>&1 | $(PIPFILTER)
	@touch $(SPARK_STAMP)

run: venv ## Run the whole daily cycle once on simulated data (simulate, validate, dvc repro, score, drift)
	@PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(PY) -m pipelines run

demo: venv ## Replay the headline story (login_policy, 80 simulated days): replays/login_policy/timeline.html
	@PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(PY) -m pipelines replay --story login_policy

test: venv spark docs ## Run the whole test suite (unit + integration, real tools, Spark included) in two processes; TEST_WORKERS=0 for one
	@PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(PY) -m pytest -n $(TEST_WORKERS) --dist loadscope --no-loadscope-reorder

test-long: venv spark ## The long forms (an hour or more): every replayed story quick and at full length, a 60-day soak
	@PATH="$(CURDIR)/$(VENV)/bin:$$PATH" REPLAY_LONG=1 $(PY) -m pytest tests/integration/test_replay.py
	@PATH="$(CURDIR)/$(VENV)/bin:$$PATH" SOAK_DAYS=$${SOAK_DAYS:-60} $(PY) -m pytest -s tests/faults/test_soak.py

test-unit: venv ## Run only the fast unit tests
	@PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(PY) -m pytest tests/unit

serve: venv ## Serve the champion online on http://127.0.0.1:8000 (foreground; Ctrl-C stops; see "Serve online" in README)
	@PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(PY) -m pipelines serve

mlflow-ui: venv ## Open the MLflow UI on http://127.0.0.1:5000 (foreground; Ctrl-C to stop)
	@$(VENV)/bin/mlflow ui --backend-store-uri "$${MLFLOW_TRACKING_URI:-sqlite:///$(CURDIR)/mlflow.db}" --host 127.0.0.1 --port 5000

up: venv ## Start a local Airflow 3 (UI/API on :8080) and the MLflow UI (:5000) in the background
	@scripts/services.sh up

down: ## Stop exactly what `make up` started
	@scripts/services.sh down

unpause: venv ## Unpause the DAGs (training, scoring, monitoring, rollout) on the local Airflow
	@for d in training scoring monitoring rollout; do \
	  PATH="$(CURDIR)/$(VENV)/bin:$$PATH" PYTHONPATH="$(CURDIR)" AIRFLOW_HOME="$${AIRFLOW_HOME:-$(CURDIR)/airflow}" \
	  AIRFLOW__CORE__DAGS_FOLDER="$(CURDIR)/dags" AIRFLOW__CORE__LOAD_EXAMPLES=False airflow dags unpause $$d 2>/dev/null | tail -1; done

clean-data: ## Delete generated data, models and the local MLflow store (keeps .venv)
	rm -rf data models mlflow.db mlartifacts dvc-storage metrics/*.json dvc.lock

lock: ## Re-resolve the top-level requirements into requirements.lock (maintainers only)
	rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv
	.lock-venv/bin/pip install --quiet -r requirements.in 2>&1 | $(PIPFILTER)
	.lock-venv/bin/pip freeze --all --exclude pip --exclude setuptools > requirements.lock
	rm -rf .lock-venv

lint: venv ## Lint the code with ruff (rules and justified ignores in pyproject.toml); seconds, installs .venv when missing
	@$(VENV)/bin/ruff check pipelines dags tests bench scripts

reference: venv ## Regenerate the reference pages (CLI, params.yaml, HTTP API, metrics) from the code; seconds
	@$(PY) scripts/reference.py

docs: venv ## Build the documentation site into site/ (mkdocs --strict: a broken link or a stale reference page fails); about 10 s
	@$(PY) scripts/reference.py --check
	@NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --quiet
	@echo "==> documentation site in site/ (open site/index.html, or make docs-serve)"

docs-serve: venv ## Serve the documentation site on http://127.0.0.1:$${DOCS_PORT:-8001} with live reload (foreground; Ctrl-C stops)
	@NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs serve --dev-addr 127.0.0.1:$${DOCS_PORT:-8001}
