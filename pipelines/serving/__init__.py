"""Serving: the champion meets production rows.

- ``score``: streamed batch scoring with the verified champion (and the challenger in shadow),
  written as atomic date partitions with the model's lineage on every row.

Rows become model input through pipelines/model/features.py, the same path as training and
the gate. Never imports ops or the CLI (import-linter contracts in pyproject.toml).
"""
