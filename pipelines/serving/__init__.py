"""Serving: the champion meets production rows, in batch and online.

Batch:

- ``score``: streamed batch scoring with the verified champion (and the challenger in shadow),
  written as atomic date partitions with the model's lineage on every row;
- ``score_spark``: the same scoring call in Spark tasks (``mapInPandas``), the same bits, the
  same writer (the engine setting, pipelines/engine.py, picks it).

The online server (``python -m pipelines serve``), one job per module:

- ``launch``: ``serve`` runs uvicorn (one process, or workers on one socket)
- ``api``: the HTTP API as FastAPI routers (scoring, health and metrics, admin), ``create_app``
  and ``openapi_schema``
- ``engine``: ``Server``, the parts put together and their life (background threads, shutdown)
- ``routing``: the request path: check rows, route (sticky canary), score, account for it
- ``batcher``: dynamic batching of the champion's requests in two lanes
- ``models``: the model store: check the aliases, load, verify, warm, swap in one assignment
- ``compare``: off-path scoring of the model that did not answer, compared with the served one
- ``control``: rollout control: follow the challenger, judge guardrails and outcomes, MLflow records
- ``rollout``: the rollout's stages and guardrails (shadow, canary stages, champion or rejected)
- ``sequential``: the always-valid sequential test on live outcomes
- ``outcomes``: paired outcome differences (one per entity and label) from the online log and matured labels
- ``offpath``: the child process that scores off the response path
- ``payload``: request bodies to checked rows, or a 4xx naming the field
- ``predlog``: the online prediction log (date partitions of part files: scores and model inputs)
- ``metrics``: every Prometheus metric the server exports, declared once
- ``client``: the server's admin calls (reload, rollout actions) for the CLI and Airflow tasks

Rows become model input through pipelines/model/features.py, the same path as training and
the gate. Never imports ops or the CLI (import-linter contracts in pyproject.toml).
"""
