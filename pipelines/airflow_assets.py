"""The Airflow Assets that connect the DAGs (data-aware scheduling). Light: safe at DAG parse."""

from airflow.sdk import Asset

# Emitted by the scoring DAG when a day's predictions are written; schedules monitoring.
PREDICTIONS = Asset(name="credit_default_predictions", uri="file:///pipelines/credit-default/predictions")
# Emitted by the monitoring DAG when drift calls for retraining; schedules training.
RETRAIN_REQUEST = Asset(name="credit_default_retrain_request", uri="file:///pipelines/credit-default/retrain-request")
