"""Changing the server's state: ``POST /reload`` and the rollout's actions, for callers on
loopback with the bearer token (:func:`pipelines.serving.api.deps.require_admin`), and the
rollout's state (``GET /rollout``) for anyone."""

from __future__ import annotations

import asyncio
import time
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query
from fastapi.responses import JSONResponse

from pipelines.serving.api.deps import AdminOnly, ServerDep, reply

router = APIRouter(tags=["admin"])
REFUSED: dict[int | str, dict[str, Any]] = {
    401: {"description": "Missing or wrong bearer token"},
    403: {"description": "Not from loopback (serve.reload_any_host), or no token configured on the server"},
}


@router.post("/reload", summary="Check the registry's aliases now (bearer token)", dependencies=[AdminOnly], responses=REFUSED)
async def reload(server: ServerDep) -> JSONResponse:
    """Load what the `champion` and `challenger` aliases point to now (hash verified, warmed),
    swap it in, and answer what serves afterwards. Without this call the server sees alias moves
    at its next poll (serve.poll_seconds)."""
    return reply(server, await asyncio.to_thread(server.poll))


@router.get("/rollout", summary="The challenger's rollout: stage, canary share, guardrails, history")
async def rollout_status(server: ServerDep) -> JSONResponse:
    """The rollout of the current challenger (shadow, canary stages, champion or rejected) and its history."""
    return reply(server, server.rollout.describe())


@router.post("/rollout/{action}", summary="check now, or pause, resume, advance or abort the challenger's rollout (bearer token)",
             dependencies=[AdminOnly], responses={**REFUSED, 400: {"description": "Unknown action"},
                                                  409: {"description": "No rollout to act on"}})
async def rollout_action(action: Annotated[str, Path(description="check, pause, resume, advance or abort")],
                         server: ServerDep,
                         reason: Annotated[str, Query(description="why (recorded with the decision in MLflow)")] = "",
                         ) -> JSONResponse:
    """`check` judges the guardrails and the live outcomes now (the rollout DAG's schedule) and answers
    the rollout's state; `pause`, `resume`, `advance` and `abort` are an operator's, recorded with
    `reason` in MLflow, and answer the decision record."""
    if action == "check":
        await asyncio.to_thread(server.check_rollout, True)
        return reply(server, server.rollout.describe())
    try:
        rec = server.rollout.act(action, time.time(), reason)
    except ValueError as exc:
        raise HTTPException(409 if "no rollout" in str(exc) else 400, str(exc)) from exc
    server.publish_rollout()
    await asyncio.to_thread(server.record, rec)
    return reply(server, rec)
