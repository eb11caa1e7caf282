"""Alerts reach a person, proven on the real stack (tests/support/alert_stack.py): the pipeline's
own steps push their metrics to Debian's Pushgateway, Prometheus evaluates the shipped rules, the
shipped Alertmanager config routes them to a local Slack-compatible receiver.

One project, one stack, in order: stable days raise nothing; a drifted day is alerted naming
`logins_30d`; a quarantined day is alerted naming the day; a challenger that fails online is
rejected and alerted naming its version; afterwards every expression of both Grafana dashboards
finds its metrics on that Prometheus.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from pipelines.telemetry import PROJECT_ENV, PUSHGATEWAY_ENV
from tests.support.alert_stack import DOCS_URL, AlertStack, alert_stack, wait
from tests.support.project import REPO, START
from tests.support.serving import TOKEN, ServerProcess, crafted_version, rows_of, serving_project, set_alias, train_version

PROJECT = "alerts-test"
FIRST = date.fromisoformat(START) + timedelta(days=12)  # the first day after the 12 training days


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, AlertStack, ServerProcess]]:
    root = tmp_path_factory.mktemp("alerts")
    settings = serving_project(root / "project", days=12, rows=1500)
    set_alias(settings, "champion", train_version(settings))
    server = ServerProcess(settings, root / "server.log")
    try:
        server.wait_ready()
        with alert_stack(root / "stack", scrape=[server.url.removeprefix("http://")]) as stack:
            os.environ[PUSHGATEWAY_ENV], os.environ[PROJECT_ENV] = stack.pushgateway, PROJECT
            try:
                yield settings, stack, server
            finally:
                os.environ.pop(PUSHGATEWAY_ENV, None)
                os.environ.pop(PROJECT_ENV, None)
    finally:
        server.stop()


def run_day(settings: Any, day: date, scenario: str = "stable") -> None:
    """A daily cycle through the pipeline's functions: land, validate, score, drift."""
    from pipelines.data.simulate import simulate
    from pipelines.data.validate import validate_batch
    from pipelines.monitoring.drift import drift
    from pipelines.serving.score import score

    simulate(settings, day.isoformat(), 1, scenario, day.isoformat(), 1500)  # type: ignore[arg-type]
    validate_batch(settings, day)
    score(settings, day, progress=False)
    drift(settings, day)


def test_stable_days_raise_nothing(world: tuple[Any, AlertStack, ServerProcess]) -> None:
    from pipelines.monitoring.performance import measure_matured_days
    from pipelines.serving.score import score

    settings, stack, _ = world
    for k in range(3):
        run_day(settings, FIRST + timedelta(days=k))
    score(settings, date.fromisoformat(START), progress=False)  # a day whose labels have matured
    assert measure_matured_days(settings), "no matured day measured"
    for metric in ("pipelines_drift_psi", "pipelines_validation_quarantined", "pipelines_live_auc",
                   "pipelines_champion_version", "pipelines_step_last_success_timestamp_seconds"):
        stack.wait_scraped(metric)
    assert {r["metric"]["project"] for r in stack.query("pipelines_drift_psi")} == {PROJECT}
    time.sleep(5)  # five evaluations of every rule (for: 0m: a breach would already show)
    assert stack.alerts() == [], stack.alerts()
    assert stack.notifications() == []


def test_a_drifted_day_is_alerted_naming_the_feature(world: tuple[Any, AlertStack, ServerProcess]) -> None:
    settings, stack, _ = world
    run_day(settings, FIRST + timedelta(days=3), "feature_drift")
    text = stack.wait_notified("PipelinesDriftDetected", "logins_30d")
    assert f"{DOCS_URL}/operations/alerts/#" in text and (FIRST + timedelta(days=3)).isoformat() in text
    drifted = {a["labels"].get("feature") for a in stack.alerts() if a["labels"]["alertname"] == "PipelinesDriftDetected"}
    assert drifted == {"logins_30d"}, drifted


def test_a_quarantined_day_is_alerted_naming_the_day(world: tuple[Any, AlertStack, ServerProcess]) -> None:
    from pipelines.data.simulate import simulate
    from pipelines.data.validate import validate_batch
    from pipelines.errors import ValidationFailed

    settings, stack, _ = world
    day = FIRST + timedelta(days=4)
    simulate(settings, day.isoformat(), 1, "data_quality", day.isoformat(), 1500)
    with pytest.raises(ValidationFailed):
        validate_batch(settings, day)
    stack.wait_notified("PipelinesDayQuarantined", day.isoformat())


def test_a_rejected_canary_is_alerted_naming_the_version(world: tuple[Any, AlertStack, ServerProcess]) -> None:
    from pipelines.io import read_frame
    from pipelines.model.features import model_input

    settings, stack, server = world
    version = crafted_version(settings, "raise")
    set_alias(settings, "challenger", version)
    httpx.post(server.url + "/reload", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60)
    frame = read_frame(settings.validated_dir / f"{FIRST.isoformat()}.parquet")
    rows = rows_of(model_input(frame, settings.params.data).head(200), settings.params.data)
    with httpx.Client(timeout=30) as c:
        for i in range(3000):
            r = c.post(server.url + "/invocations", json={"dataframe_records": [rows[i % len(rows)]]})
            assert r.status_code == 200, r.text
            if i % 20 == 0 and c.get(server.url + "/rollout").json()["stage"] == "rejected":
                break
    assert httpx.get(server.url + "/rollout").json()["stage"] == "rejected"
    stack.wait_notified("ServingCanaryRejected", f"v{version}")


def test_every_dashboard_expression_finds_its_metrics(world: tuple[Any, AlertStack, ServerProcess]) -> None:
    """Run after the others: every metric a panel of either dashboard queries exists on this
    Prometheus (a panel of a rare event, e.g. 5xx rates, may rightly return nothing)."""
    _, stack, _ = world
    exprs = dashboard_expressions()
    assert len(exprs) >= 10, exprs
    missing = {}
    for expr in exprs:
        names = set(re.findall(r"\b((?:pipelines|serving|ALERTS)\w*)", expr))
        absent = [n for n in names if not stack.query(f"count({{__name__=~\"{n}.*\"}})")]
        if absent:
            missing[expr] = absent
    assert not missing, missing
    answered = [e for e in exprs if stack.query(_instant(e))]
    assert len(answered) >= len(exprs) * 0.7, sorted(set(exprs) - set(answered))


def dashboard_expressions() -> list[str]:
    out = []
    for path in sorted((REPO / "deploy" / "grafana" / "dashboards").glob("*.json")):
        for panel in json.loads(path.read_text()).get("panels", []):
            out += [t["expr"] for t in panel.get("targets", []) if t.get("expr")]
    return out


def _instant(expr: str) -> str:
    """Grafana's range variables replaced by a fixed window, for an instant query."""
    return expr.replace("$__rate_interval", "1m").replace("$__interval", "1m").replace("$__range", "5m")


def test_the_stack_was_started_from_the_shipped_files(world: tuple[Any, AlertStack, ServerProcess]) -> None:
    _, stack, _ = world
    rules = httpx.get(stack.prometheus + "/api/v1/rules", timeout=10).json()["data"]["groups"]
    files = {Path(g["file"]).name for g in rules}
    assert files == {p.name for p in (REPO / "deploy" / "prometheus" / "rules").glob("*.yml")}, files
    wait(lambda: httpx.get(stack.alertmanager + "/api/v2/status", timeout=5).json()["config"]["original"], 10, "no config")
