# One image for every Python service of docker-compose.yml: the Airflow components, the MLflow
# server and the pipelines CLI. Dependencies come only from the committed lock.
#   docker compose build        (or: docker build -t credit-default-pipelines .)
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    AIRFLOW_HOME=/opt/airflow \
    PROJECT_SOURCE=/opt/pipelines-src \
    PIPELINES_ROOT=/opt/project \
    PYTHONPATH=/opt/project

# git: lineage (the commit every model version records) and DVC's repository; curl: health checks
RUN apt-get update \
 && apt-get install -y --no-install-recommends git curl tini \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --create-home --uid 50000 --gid 0 airflow

COPY requirements.lock /tmp/requirements.lock
RUN python -m venv /opt/venv \
 && pip install --no-input -r /tmp/requirements.lock \
 && pip check

# The code as committed (with .git, for lineage); deploy/airflow-init.sh copies it into the
# shared workspace volume (PIPELINES_ROOT) on every `docker compose up`.
COPY --chown=airflow:0 . /opt/pipelines-src
RUN git config --system --add safe.directory '*' \
 && mkdir -p /opt/project /opt/airflow/logs /opt/airflow/auth \
 && chown -R airflow:0 /opt/project /opt/airflow \
 && cd /opt/pipelines-src && python -m pipelines --help >/dev/null

USER airflow
WORKDIR /opt/project
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["python", "-m", "pipelines", "--help"]
