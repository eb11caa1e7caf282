"""Credit-default MLOps pipeline: every step is a plain function here, called by the CLI
(`python -m pipelines`), by DVC stages (dvc.yaml) and by Airflow tasks (dags/)."""

__version__ = "0.1.0"
