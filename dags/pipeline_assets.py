"""The Airflow Assets that connect the DAGs (data-aware scheduling), and the arguments every
DAG's tasks share. Light: safe at DAG parse.

Here, beside the DAGs, because they are wiring: the pipelines package knows no orchestrator.
Airflow puts the DAGs folder on sys.path, so the DAG files import this as ``pipeline_assets``; it holds
no DAG, so .airflowignore keeps the DAG processor from parsing it as one."""

from datetime import timedelta

from airflow.sdk import Asset

from pipelines.monitoring.notify import task_failure_alert

# Every DAG's default_args. A task that has failed for good (retries spent) posts an alert to
# Alertmanager (PIPELINES_ALERTMANAGER_URL).
DEFAULT_ARGS = {
    "retries": 1, "retry_delay": timedelta(seconds=30), "owner": "ml-platform",
    "on_failure_callback": task_failure_alert,
}

# Emitted by the scoring DAG when a day's predictions are written; schedules monitoring.
PREDICTIONS = Asset(name="credit_default_predictions", uri="file:///pipelines/credit-default/predictions")
# Emitted by the monitoring DAG when drift calls for retraining; schedules training.
RETRAIN_REQUEST = Asset(name="credit_default_retrain_request", uri="file:///pipelines/credit-default/retrain-request")
