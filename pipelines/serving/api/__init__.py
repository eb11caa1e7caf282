"""The online server's HTTP API (FastAPI routers over :class:`pipelines.serving.engine.Server`).

- ``app``: the app (``create_app``), its error shape and lifespan; ``openapi_schema`` for the docs
- ``deps``: the server per request, the JSON reply with ``X-Model-Version``, the admin check
- ``predict``: ``POST /invocations`` and ``POST /predict``
- ``health``: ``/health/live``, ``/health/ready``, ``/version``, ``/metrics``
- ``admin``: ``POST /reload``, ``GET /rollout``, ``POST /rollout/{action}``
"""

from pipelines.serving.api.app import build_app, create_app, openapi_schema

__all__ = ["build_app", "create_app", "openapi_schema"]
