"""What the routes share: the server behind the app (resolved per request, so the app can be
built for its OpenAPI schema alone), the JSON reply with the champion's version header, and
the admin check (loopback and the bearer token), which raises ``HTTPException``."""

from __future__ import annotations

import hmac
import os
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request, Security
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from pipelines.config import Settings
from pipelines.serving.client import TOKEN_ENV
from pipelines.serving.engine import Server
from pipelines.serving.routing import VERSION_HEADER

LOOPBACK = {"127.0.0.1", "::1", "localhost"}
# documents the scheme in the OpenAPI schema; never refuses by itself (require_admin does)
BEARER = HTTPBearer(auto_error=False, description=f"the token in ${TOKEN_ENV} of the server")


# the dependencies are coroutines: FastAPI runs a plain function in a worker thread, one hand-over
# of the interpreter lock more on every request
async def get_server(request: Request) -> Server:
    """The server behind this app."""
    server = getattr(request.app.state, "server", None)
    if server is None:
        raise HTTPException(503, "no server behind this app (it was built for its OpenAPI schema only)")
    return server


async def get_settings(request: Request) -> Settings:
    """The settings the app was built with."""
    return request.app.state.settings


ServerDep = Annotated[Server, Depends(get_server)]
SettingsDep = Annotated[Settings, Depends(get_settings)]


def champion_version(server: Server | None) -> str:
    ch = server.store.state.champion if server is not None else None
    return ch.version if ch else "none"


def reply(server: Server | None, content: Any, status: int = 200, headers: dict[str, str] | None = None) -> JSONResponse:
    """A JSON answer naming the champion's version (unless ``headers`` name the one that answered)."""
    return JSONResponse(content, status_code=status, headers={VERSION_HEADER: champion_version(server), **(headers or {})})


async def require_admin(request: Request, settings: SettingsDep,
                        _: Annotated[HTTPAuthorizationCredentials | None, Security(BEARER)] = None) -> None:
    """Pass only a caller that may change the server's state: from loopback (unless
    serve.reload_any_host), with the bearer token of $PIPELINES_RELOAD_TOKEN. Refuses with 403
    (wrong host, no token configured) or 401 (missing or wrong token)."""
    if not settings.params.serve.reload_any_host and (request.client.host if request.client else "") not in LOOPBACK:
        raise HTTPException(403, "reload and rollout actions are accepted from loopback only (serve.reload_any_host)")
    token = os.environ.get("PIPELINES_RELOAD_TOKEN", "")
    if not token:
        raise HTTPException(403, f"reload and rollout actions are disabled: set {TOKEN_ENV} for the server")
    if not hmac.compare_digest(request.headers.get("authorization", "").encode(), f"Bearer {token}".encode()):
        raise HTTPException(401, f"missing or wrong bearer token (Authorization: Bearer ${TOKEN_ENV})")


AdminOnly = Depends(require_admin)
