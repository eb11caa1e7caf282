"""What the server is: ``/health/live``, ``/health/ready``, ``/version`` and ``/metrics``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse, PlainTextResponse

from pipelines.serving.api.deps import ServerDep, champion_version, reply
from pipelines.serving.engine import Server
from pipelines.serving.routing import VERSION_HEADER

router = APIRouter(tags=["health"])


@router.get("/health/live", summary="The process answers")
async def live(server: ServerDep) -> JSONResponse:
    """Always `{"live": true}` while the process runs (a liveness probe)."""
    return reply(server, {"live": True})


def _not_ready_reason(server: Server) -> str:
    st = server.store
    why = st.registry_error or st.load_errors.get("champion")
    if why is None and st.registry_ok:
        name = server.settings.params.project.model_name
        why = f"the registry has no 'champion' alias for {name} yet (make run trains and promotes one)"
    return "no verified, warmed champion yet" + (f": {why}" if why else "")


@router.get("/health/ready", summary="A verified, warmed champion serves",
            responses={503: {"description": "No champion yet; `reason` says why"}})
async def ready(server: ServerDep) -> JSONResponse:
    """200 once a verified, warmed champion serves, else 503 with the reason; both say whether the
    registry was reachable at the last check and why a load failed."""
    import mlflow

    st = server.store
    info: dict[str, Any] = {"ready": st.state.champion is not None, "champion": champion_version(server),
                            "registry": mlflow.get_registry_uri(), "registry_reachable": st.registry_ok,
                            "registry_error": st.registry_error, "load_errors": dict(st.load_errors)}
    if st.state.champion is None:
        info["reason"] = _not_ready_reason(server)
        return reply(server, info, 503)
    return reply(server, info)


@router.get("/version", summary="The served models and the rollout")
async def version(server: ServerDep) -> JSONResponse:
    """The champion, challenger and previous champion (version, run id, artifact hash, load time),
    the registry's state and the rollout's."""
    name = server.settings.params.project.model_name
    return reply(server, {"model_name": name, **server.store.describe(), "rollout": server.rollout.describe()})


@router.get("/metrics", summary="Prometheus metrics", response_class=PlainTextResponse)
async def metrics(server: ServerDep) -> Response:
    """This process's metrics in Prometheus' text format (the reference lists each one)."""
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    body = generate_latest(server.metrics.registry)
    return Response(body, media_type=CONTENT_TYPE_LATEST, headers={VERSION_HEADER: champion_version(server)})
