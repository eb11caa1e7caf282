"""The scoring routes: ``POST /invocations`` (MLflow's scoring protocol) and ``POST /predict``
(rows typed from the model's features). A bad body gets a 4xx naming the problem; the champion
failing on valid rows, a 500 in one line."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from pipelines.config import DataParams, Settings
from pipelines.errors import first_line
from pipelines.serving.api.deps import ServerDep, champion_version, reply
from pipelines.serving.engine import Server
from pipelines.serving.payload import BadRequest, invocation_rows, load_json
from pipelines.serving.routing import VARIANT_HEADER

log = logging.getLogger(__name__)
ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "The body is not JSON, or not in a known layout"},
    413: {"description": "More rows than serve.max_batch_rows"},
    422: {"description": "A row misses a feature, has an unknown one, or a value of the wrong type"},
    500: {"description": "The champion failed on valid rows"},
    503: {"description": "No verified champion loaded yet"},
}


def _count(server: Server, endpoint: str, variant: str, version: str, status: int, started: float) -> None:
    server.metrics.requests.labels(endpoint, variant, version, str(status)).inc()
    server.metrics.latency.labels(endpoint, variant, version).observe(time.perf_counter() - started)


async def handle(server: Server, request: Request, endpoint: str, to_rows: Callable[[Any], list[dict[str, Any]]]) -> JSONResponse:
    """Read the body, score its rows, count the request; the answer or the error, as JSON."""
    started = time.perf_counter()
    limit = server.settings.params.serve.max_batch_rows
    try:
        length = int(request.headers.get("content-length") or 0)
        if length > limit * 4096:
            raise BadRequest(f"body of {length} bytes is larger than a batch of serve.max_batch_rows ({limit}) rows", 413)
        rows = to_rows(load_json(await request.body(), limit))
        # the model scores in the scorer threads: the event loop keeps accepting meanwhile
        # (the tree traversal releases the GIL), so two cores serve two requests at once
        body, chosen, headers = await server.score_request(rows)
    except BadRequest as exc:
        _count(server, endpoint, "none", champion_version(server), exc.status, started)
        return reply(server, {"error": str(exc)}, exc.status)
    except Exception as exc:  # noqa: BLE001 - the champion itself failed on valid input: a server error, one line
        _count(server, endpoint, "champion", champion_version(server), 500, started)
        log.error("champion failed on a valid request: %s", first_line(exc))
        return reply(server, {"error": f"the model failed: {first_line(exc)}"}, 500)
    _count(server, endpoint, headers[VARIANT_HEADER], chosen.version, 200, started)
    return reply(server, body, 200, headers)


def predict_body_schema(settings: Settings) -> dict[str, Any]:
    """The JSON schema of ``POST /predict``'s body, from the features in params.yaml."""
    from pydantic import ConfigDict, Field, Strict, create_model

    d, limit = settings.params.data, settings.params.serve.max_batch_rows
    row_fields: dict[str, Any] = {d.id_col: (str | int | None, None)}
    row_fields.update({c: (Annotated[float | None, Strict()], ...) for c in d.numerical})
    row_fields.update({c: (Annotated[str | None, Strict()], ...) for c in d.categorical})
    row = create_model("Row", __config__=ConfigDict(extra="forbid"), **row_fields)
    body = create_model("PredictBody", rows=(list[row], Field(..., min_length=1, max_length=limit)))  # type: ignore[valid-type]
    return body.model_json_schema()


def predict_rows(payload: Any, d: DataParams) -> list[dict[str, Any]]:
    """The rows of a ``/predict`` body, refusing unknown keys and fields (the types are checked later)."""
    if not isinstance(payload, dict) or not isinstance(payload.get("rows"), list):
        raise BadRequest('body must be {"rows": [{feature: value, ...}, ...]}', 400)
    unknown = sorted(set(payload) - {"rows"})
    if unknown:
        raise BadRequest(f"unknown key {unknown[0]!r}: the body is {{\"rows\": [...]}}", 400)
    allowed = {d.id_col, *d.features}
    for i, row in enumerate(payload["rows"]):
        if not isinstance(row, dict):
            raise BadRequest(f"row {i} must be an object of feature names to values")
        extra = sorted(set(row) - allowed)
        if extra:
            raise BadRequest(f"row {i}: unknown field {extra[0]!r} (the model's features: {', '.join(d.features)})")
    return payload["rows"]


def router(settings: Settings) -> APIRouter:
    """The scoring routes; ``settings`` give ``/predict``'s documented body."""
    routes = APIRouter(tags=["scoring"])
    body = {"requestBody": {"required": True, "content": {"application/json": {"schema": predict_body_schema(settings)}}}}

    @routes.post("/invocations", summary="MLflow scoring protocol: dataframe_split, dataframe_records, inputs or instances",
                 responses=ERRORS)
    async def invocations(request: Request, server: ServerDep) -> JSONResponse:
        """Score rows sent as `mlflow models serve` takes them. The answer is `{"predictions": [...]}`, one
        probability per row; `X-Model-Version` and `X-Model-Variant` name the model that answered."""
        return await handle(server, request, "invocations", invocation_rows)

    @routes.post("/predict", summary="Rows typed from the model signature", openapi_extra=body, responses=ERRORS)
    async def predict(request: Request, server: ServerDep) -> JSONResponse:
        """Score `{"rows": [{feature: value, ...}, ...]}`; an unknown key or field is refused. The answer is
        `{"predictions": [...]}`; `X-Unseen-Categories` lists category values the model never saw."""
        return await handle(server, request, "predict", lambda p: predict_rows(p, server.settings.params.data))

    return routes
