"""Monitoring: is the champion still right for what it sees?

- ``drift``: the drift step: exact streamed PSI per feature and of the scores against the
  champion's frozen profile (of the day's batch, or of a day served only online from the
  prediction log), the day's summary and its MLflow run;
- ``decision``: the retrain decision and its brakes (pure);
- ``inflight``: the training-run marker (one training runner at a time; a brake of the decision);
- ``report``: the Evidently HTML report showing the exact PSI, and the Prometheus textfile;
- ``drift_spark``: the same counts in Spark SQL for batches larger than one machine;
- ``performance``: real ROC AUC once labels mature, as an MLflow time series;
- ``performance_spark``: its join of predictions and labels in Spark (the same metrics);
- ``notify``: a failed Airflow task as an Alertmanager alert (every DAG's ``on_failure_callback``).

The profile and the PSI arithmetic live with the model (pipelines/model/profile.py): they are
frozen into each model version at training time. Never imports ops or the CLI.
"""
