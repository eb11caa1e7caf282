"""The Airflow Assets that connect the DAGs (data-aware scheduling). Light: safe at DAG parse.

Here, beside the DAGs, because they are wiring: the pipelines package knows no orchestrator.
Airflow puts the DAGs folder on sys.path, so the DAG files import this as ``pipeline_assets``; it holds
no DAG, so .airflowignore keeps the DAG processor from parsing it as one."""

from airflow.sdk import Asset

# Emitted by the scoring DAG when a day's predictions are written; schedules monitoring.
PREDICTIONS = Asset(name="credit_default_predictions", uri="file:///pipelines/credit-default/predictions")
# Emitted by the monitoring DAG when drift calls for retraining; schedules training.
RETRAIN_REQUEST = Asset(name="credit_default_retrain_request", uri="file:///pipelines/credit-default/retrain-request")
