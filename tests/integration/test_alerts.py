"""Alerts reach a person, proven on the real stack (tests/support/alert_stack.py): the pipeline's
own steps push their metrics to Debian's Pushgateway, Prometheus evaluates the shipped rules, the
shipped Alertmanager config routes them to a local Slack-compatible receiver.

One project, one stack, in order: stable days raise nothing; a drifted day is alerted naming
`logins_30d`; a quarantined day is alerted naming the day; a challenger that fails online is
rejected and alerted naming its version; afterwards every expression of both Grafana dashboards
finds its metrics on that Prometheus.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from pipelines.telemetry import PROJECT_ENV, PUSHGATEWAY_ENV
from tests.support.alert_stack import DOCS_URL, AlertStack, alert_stack
from tests.support.project import REPO, START
from tests.support.prometheus import alerts, dashboard_expressions, metric_names
from tests.support.serving import TOKEN, ServerProcess, crafted_version, rows_of, serving_project, set_alias
from tests.support.system import free_port, wait_for

PROJECT = "alerts-test"
FIRST = date.fromisoformat(START) + timedelta(days=12)  # the first day after the 12 training days
SENT: list[tuple[str, ...]] = []  # each failure made below: its alert and the names its message must carry


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, AlertStack, ServerProcess]]:
    root = tmp_path_factory.mktemp("alerts")
    settings = serving_project(root / "project", days=12, rows=1500)
    port = free_port()
    with alert_stack(root / "stack", scrape=[f"127.0.0.1:{port}"]) as stack:
        os.environ[PUSHGATEWAY_ENV], os.environ[PROJECT_ENV] = stack.pushgateway, PROJECT
        server = None
        try:
            first_champion(settings)
            server = ServerProcess(settings, root / "server.log", port=port)
            server.wait_ready()
            yield settings, stack, server
        finally:
            os.environ.pop(PUSHGATEWAY_ENV, None)
            os.environ.pop(PROJECT_ENV, None)
            if server is not None:
                server.stop()


def first_champion(settings: Any) -> None:
    """Train, gate and promote as the training DAG does (each pushes its metrics)."""
    from pipelines.model.gate import gate
    from pipelines.model.train import train
    from pipelines.ops.promote import promote

    train(settings)
    assert gate(settings)["passed"]
    assert promote(settings)["role"] == "champion"


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
    others = [r["metric"] for r in stack.query("pipelines_drift_psi") if r["metric"].get("project") != PROJECT]
    assert not others, others
    time.sleep(5)  # five evaluations of every rule (for: 0m: a breach would already show)
    assert stack.alerts() == [], stack.alerts()
    assert stack.notifications() == []


def test_a_drifted_day_is_alerted_naming_the_feature(world: tuple[Any, AlertStack, ServerProcess]) -> None:
    settings, stack, _ = world
    run_day(settings, FIRST + timedelta(days=3), "feature_drift")
    stack.wait_firing("PipelinesDriftDetected", feature="logins_30d", day=(FIRST + timedelta(days=3)).isoformat())
    SENT.append(("PipelinesDriftDetected", "logins_30d", (FIRST + timedelta(days=3)).isoformat()))
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
    stack.wait_firing("PipelinesDayQuarantined", day=day.isoformat())
    SENT.append(("PipelinesDayQuarantined", day.isoformat()))


def test_a_rejected_canary_is_alerted_naming_the_version(world: tuple[Any, AlertStack, ServerProcess]) -> None:
    from pipelines.io import read_frame

    settings, stack, server = world
    version = crafted_version(settings, "raise")
    set_alias(settings, "challenger", version)
    httpx.post(server.url + "/reload", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60)
    frame = read_frame(settings.validated_dir / f"{FIRST.isoformat()}.parquet")
    rows = rows_of(frame.head(200), settings.params.data)
    with httpx.Client(timeout=30) as c:
        for i in range(3000):
            r = c.post(server.url + "/invocations", json={"dataframe_records": [rows[i % len(rows)]]})
            assert r.status_code == 200, r.text
            if i % 20 == 0 and c.get(server.url + "/rollout").json()["stage"] == "rejected":
                break
    assert httpx.get(server.url + "/rollout").json()["stage"] == "rejected"
    stack.wait_firing("ServingCanaryRejected", version=version)
    SENT.append(("ServingCanaryRejected", f"v{version}"))


def test_a_worse_retrain_is_blocked_and_told_as_info(world: tuple[Any, AlertStack, ServerProcess]) -> None:
    from pipelines.config import Settings
    from pipelines.model.gate import gate
    from pipelines.model.train import train

    settings, stack, _ = world
    p = settings.params
    weak = Settings(p.model_copy(update={"train": p.train.model_copy(update={"max_iter": 2})}), settings.root)
    train(weak)
    decision = gate(weak)
    assert not decision["passed"]
    first = next(c["check"] for c in decision["checks"] if not c["passed"])
    stack.wait_firing("PipelinesRetrainBlocked", reason_class=first)
    SENT.append(("PipelinesRetrainBlocked", first))
    delta = stack.query("pipelines_gate_auc_delta")
    assert len(delta) == 1 and float(delta[0]["value"][1]) < 0


def test_each_failure_reached_the_receiver_naming_what_failed_with_its_runbook(
    world: tuple[Any, AlertStack, ServerProcess],
) -> None:
    """Alertmanager (the shipped routes and templates; group_wait 30 s) told the receiver of every
    failure above, each message naming what failed and linking its runbook section."""
    _, stack, _ = world
    assert len(SENT) == 4, SENT
    for alertname, *names in SENT:
        text = stack.wait_notified(alertname, *names)
        assert f"{DOCS_URL}/operations/alerts/#{alertname.lower()}" in text, text
    told = {name for name in alerts() if any(name in t for t in stack.notifications())}
    assert told == {s[0] for s in SENT}, told  # nothing else was told to anyone: no false alert


def test_every_dashboard_expression_finds_its_metrics(world: tuple[Any, AlertStack, ServerProcess]) -> None:
    """Run after the others: every metric a panel of either dashboard queries exists on this
    Prometheus (a panel of a rare event, e.g. 5xx rates, may rightly return nothing)."""
    _, stack, _ = world
    exprs = dashboard_expressions()
    assert len(exprs) >= 10, exprs
    missing = {}
    for expr in exprs:
        names = metric_names(expr)
        absent = [n for n in names if not stack.query(f"count({{__name__=~\"{n}.*\"}})")]
        if absent:
            missing[expr] = absent
    assert not missing, missing
    answered = [e for e in exprs if stack.query(_instant(e))]
    assert len(answered) >= len(exprs) * 0.7, sorted(set(exprs) - set(answered))


def _instant(expr: str) -> str:
    """Grafana's range variables replaced by a fixed window, for an instant query."""
    return expr.replace("$__rate_interval", "1m").replace("$__interval", "1m").replace("$__range", "5m")


def test_the_stack_was_started_from_the_shipped_files(world: tuple[Any, AlertStack, ServerProcess]) -> None:
    _, stack, _ = world
    rules = httpx.get(stack.prometheus + "/api/v1/rules", timeout=10).json()["data"]["groups"]
    files = {Path(g["file"]).name for g in rules}
    assert files == {p.name for p in (REPO / "deploy" / "prometheus" / "rules").glob("*.yml")}, files
    wait_for(lambda: httpx.get(stack.alertmanager + "/api/v2/status", timeout=5).json()["config"]["original"], 10, "no config")
