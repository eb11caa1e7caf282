"""Monitoring: is the champion still right for what it sees?

- ``drift``: exact streamed PSI per feature and of the scores against the champion's frozen
  profile, the retrain decision with its brakes, the Evidently HTML report;
- ``drift_spark``: the same counts in Spark SQL for batches larger than one machine;
- ``performance``: real ROC AUC once labels mature, as an MLflow time series.

The profile and the PSI arithmetic live with the model (pipelines/model/profile.py): they are
frozen into each model version at training time. Never imports ops or the CLI.
"""
