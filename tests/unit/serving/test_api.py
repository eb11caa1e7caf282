"""The HTTP API without uvicorn or a model: the admin check refuses by raising HTTPException
(403 off loopback or with no token configured, 401 for a missing or wrong token), every error
keeps the `{"error": ...}` shape and the version header, the OpenAPI schema documents every
endpoint without a server, and every exported metric is declared with its help and labels.
The real server behind these routes is tests/integration/test_serving.py's."""

from __future__ import annotations

import asyncio
import time

import pytest
from fastapi import HTTPException
from fastapi.testclient import TestClient
from starlette.requests import Request

from pipelines.config import Settings
from pipelines.serving.api import build_app, openapi_schema
from pipelines.serving.api.deps import require_admin
from pipelines.serving.engine import Server
from pipelines.serving.metrics import METRICS, Metrics, reference

TOKEN = "unit-token"
LOCAL = ("127.0.0.1", 50000)


def request(host: str, authorization: str | None) -> Request:
    headers = [(b"authorization", authorization.encode())] if authorization is not None else []
    return Request({"type": "http", "method": "POST", "path": "/reload", "headers": headers, "client": (host, 50000)})


def refusal(settings, req: Request) -> int:
    with pytest.raises(HTTPException) as refused:
        asyncio.run(require_admin(req, settings))
    return refused.value.status_code


def test_the_admin_check_raises_403_or_401_and_passes_the_token(settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PIPELINES_RELOAD_TOKEN", raising=False)
    assert refusal(settings, request("127.0.0.1", f"Bearer {TOKEN}")) == 403  # no token configured: disabled
    monkeypatch.setenv("PIPELINES_RELOAD_TOKEN", TOKEN)
    assert refusal(settings, request("10.1.2.3", f"Bearer {TOKEN}")) == 403  # not loopback
    assert refusal(settings, request("127.0.0.1", None)) == 401
    assert refusal(settings, request("::1", "Bearer wrong")) == 401
    assert refusal(settings, request("127.0.0.1", TOKEN)) == 401  # the scheme is part of the header
    assert asyncio.run(require_admin(request("127.0.0.1", f"Bearer {TOKEN}"), settings)) is None
    serve = settings.params.serve.model_copy(update={"reload_any_host": True})
    remote = Settings(settings.params.model_copy(update={"serve": serve}), settings.root)
    assert asyncio.run(require_admin(request("10.1.2.3", f"Bearer {TOKEN}"), remote)) is None  # any host; the token still counts
    assert refusal(remote, request("10.1.2.3", "Bearer wrong")) == 401


def test_refusals_and_errors_keep_the_error_shape_and_the_version_header(settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIPELINES_RELOAD_TOKEN", TOKEN)
    app = build_app(settings)  # no server behind it: only the refusals before the server answer
    local, remote = TestClient(app, client=LOCAL), TestClient(app)
    r = local.post("/reload")
    assert r.status_code == 401 and "missing or wrong bearer token" in r.json()["error"]
    assert r.headers["x-model-version"] == "none"
    r = remote.post("/reload", headers={"Authorization": f"Bearer {TOKEN}"})
    assert r.status_code == 403 and "loopback only" in r.json()["error"]
    assert local.post("/rollout/pause", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert local.post("/reload", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 503  # passed, no server
    r = local.get("/nope")
    assert r.status_code == 404 and r.json() == {"error": "Not Found"} and r.headers["x-model-version"] == "none"


def test_the_routes_of_a_server_that_serves_nothing_yet(settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """A server not started (no model, no threads): the routes answer as the real one does before its champion loads."""
    monkeypatch.setenv("PIPELINES_RELOAD_TOKEN", TOKEN)
    server = Server(settings)
    client = TestClient(build_app(settings, server), client=LOCAL)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    assert client.get("/health/live").json() == {"live": True}
    ready = client.get("/health/ready")
    assert ready.status_code == 503 and ready.json()["reason"].startswith("no verified, warmed champion yet")
    r = client.post("/invocations", json={"dataframe_records": [{"age": 1}]})
    assert r.status_code == 503 and "not ready" in r.json()["error"] and r.headers["x-model-version"] == "none"
    assert client.post("/predict", content=b"{rows:").status_code == 400
    r = client.post("/rollout/pause", headers=auth)
    assert r.status_code == 409 and r.json()["error"].startswith("no rollout in progress")
    server.rollout.start("2", time.time())
    assert client.post("/rollout/bogus", headers=auth).status_code == 400
    r = client.post("/rollout/pause?reason=unit%20test", headers=auth)
    assert r.status_code == 200 and r.json()["action"] == "pause" and r.json()["reason"] == "unit test"
    assert client.get("/rollout").json()["paused"] is True
    metrics = client.get("/metrics")
    assert metrics.status_code == 200 and 'serving_rollout_stage{stage="shadow",version="2"} 1.0' in metrics.text
    assert 'serving_requests_total{endpoint="invocations",status="503",variant="none",version="none"} 1.0' in metrics.text


def test_the_openapi_schema_documents_every_endpoint_without_a_server(settings) -> None:
    spec = openapi_schema(settings)
    ops = {(m.upper(), p): op for p, item in spec["paths"].items() for m, op in item.items()}
    assert set(ops) == {("POST", "/invocations"), ("POST", "/predict"), ("GET", "/health/live"), ("GET", "/health/ready"),
                        ("GET", "/version"), ("GET", "/metrics"), ("POST", "/reload"), ("GET", "/rollout"),
                        ("POST", "/rollout/{action}")}
    for key, op in ops.items():
        assert op.get("summary") and op.get("description"), key
        assert all(p.get("description") for p in op.get("parameters", [])), key
    assert {"401", "403"} <= set(ops[("POST", "/reload")]["responses"]) and ops[("POST", "/reload")]["security"]
    body = ops[("POST", "/predict")]["requestBody"]["content"]["application/json"]["schema"]
    assert set(body["$defs"]["Row"]["properties"]) == {settings.params.data.id_col, *settings.params.data.features}


def test_every_exported_metric_is_declared_with_help_and_labels() -> None:
    exported = {m.name: m for m in Metrics().registry.collect()}
    declared = {name.removesuffix("_total") if kind == "counter" else name: (kind, text, labels)
                for name, kind, text, labels in reference()}
    assert set(exported) == set(declared) and len(METRICS) == len(declared)
    for name, family in exported.items():
        kind, text, _ = declared[name]
        assert family.type == kind and family.documentation == text and text.strip(), name
    collectors = Metrics().collectors()
    assert [c._labelnames for c in collectors] == [m.labels for m in METRICS]
    assert [c._documentation for c in collectors] == [m.help for m in METRICS]
