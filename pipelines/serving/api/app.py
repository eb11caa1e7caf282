"""The FastAPI app of one server: the routers, the error shape (``{"error": ...}`` with the
champion's version header, for every HTTP error), and the server's life inside the app's."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from pipelines.config import Settings
from pipelines.serving.api.admin import router as admin_routes
from pipelines.serving.api.deps import reply
from pipelines.serving.api.health import router as health_routes
from pipelines.serving.api.predict import router as predict_routes
from pipelines.serving.engine import Server


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    server: Server | None = app.state.server
    if server is None:
        yield
        return
    async with server.running():
        yield


async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    """Every HTTP error (an unknown path, a refused admin call, a wrong action) as ``{"error": ...}``."""
    return reply(getattr(request.app.state, "server", None), {"error": str(exc.detail)}, exc.status_code)


def build_app(settings: Settings, server: Server | None = None) -> FastAPI:
    """The app with its routes; ``server`` answers them (None: an app for its OpenAPI schema only)."""
    app = FastAPI(title=f"{settings.params.project.model_name} online scoring", lifespan=_lifespan,
                  description="The registry's champion, with shadow and canary rollout of a challenger (pipelines/serving/).")
    app.state.settings = settings
    app.state.server = server
    app.include_router(predict_routes(settings))
    app.include_router(health_routes)
    app.include_router(admin_routes)
    app.add_exception_handler(StarletteHTTPException, http_error)
    return app


def create_app(settings: Settings) -> FastAPI:
    """The FastAPI app of one server (its own metrics registry, models and threads)."""
    return build_app(settings, Server(settings))


def openapi_schema(settings: Settings | None = None) -> dict[str, Any]:
    """The OpenAPI schema of the server's HTTP API (params.yaml's by default), without loading a
    model or starting a server."""
    from pipelines.config import load_settings

    return build_app(settings or load_settings()).openapi()
