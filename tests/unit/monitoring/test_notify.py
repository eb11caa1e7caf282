"""The failed-task alert against a real Alertmanager (Debian's `prometheus-alertmanager`, on
loopback, started once for the module): only Airflow's callback context is hand-made, an object
with the attributes the callback reads (``ti.dag_id``, ``task_id``, ``try_number``, ``log_url``,
``dag_run.run_after``, ``logical_date``, ``exception``), as the task runner passes them. The
real-scheduler path is tests/integration/test_airflow_e2e.py's failed scoring run."""

from __future__ import annotations

import logging
import socket
import urllib.request
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest

from pipelines.config import project_root
from pipelines.errors import PipelineError
from pipelines.monitoring import notify
from pipelines.telemetry import PROJECT_ENV
from tests.support.alertmanager import alertmanager, alerts
from tests.support.system import free_port

LOG_URL = "http://127.0.0.1:8080/dags/scoring/runs/manual__2026-01-23T00%3A00%3A00%2B00%3A00/tasks/land_batch?try_number=2"


@pytest.fixture(scope="module")
def am_url(tmp_path_factory: pytest.TempPathFactory):
    with alertmanager(tmp_path_factory.mktemp("alertmanager")) as url:
        yield url


def context(task_id: str = "land_batch", logical: datetime | None = datetime(2026, 1, 23, tzinfo=UTC),
            exc: BaseException | None = None) -> dict[str, Any]:
    ti = SimpleNamespace(dag_id="scoring", task_id=task_id, try_number=2, log_url=LOG_URL)
    ctx: dict[str, Any] = {
        "ti": ti, "task_instance": ti, "dag_run": SimpleNamespace(run_after=datetime(2026, 1, 24, 3, 5, tzinfo=UTC)),
        "exception": exc or PipelineError("no batch for 2026-01-23 in data/raw\n  (the feed did not land)"),
    }
    if logical is not None:  # Airflow leaves the key out of a run without a logical date
        ctx["logical_date"] = logical
    return ctx


def test_a_failed_task_is_an_alert_in_alertmanager(am_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(notify.ALERTMANAGER_ENV, am_url)
    monkeypatch.delenv(PROJECT_ENV, raising=False)
    monkeypatch.delenv(notify.DOCS_ENV, raising=False)
    notify.task_failure_alert(context())

    [alert] = [a for a in alerts(am_url, notify.ALERTNAME) if a["labels"]["task_id"] == "land_batch"]
    assert alert["labels"] == {
        "alertname": "AirflowTaskFailed", "severity": "warning", "project": project_root().name,
        "dag_id": "scoring", "task_id": "land_batch", "logical_date": "2026-01-23T00:00:00+00:00",
    }
    assert alert["annotations"] == {
        "summary": "Airflow task scoring.land_batch failed for 2026-01-23T00:00:00+00:00 (try 2)",
        "description": "no batch for 2026-01-23 in data/raw",
        "log_url": LOG_URL,
        "runbook_url": "http://127.0.0.1:8001/operations/alerts/#airflowtaskfailed",
    }
    assert alert["generatorURL"] == LOG_URL and alert["status"]["state"] == "active"
    starts, ends = (datetime.fromisoformat(alert[k].replace("Z", "+00:00")) for k in ("startsAt", "endsAt"))
    assert ends - starts == notify.ALERT_LIFETIME  # Alertmanager resolves it by itself then


def test_a_run_without_a_logical_date_is_named_by_its_day(am_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(notify.ALERTMANAGER_ENV, am_url + "/")
    monkeypatch.setenv(PROJECT_ENV, "credit-eu")
    monkeypatch.setenv(notify.DOCS_ENV, "https://docs.example.org/pipelines/")
    notify.task_failure_alert(context("validate_batch", logical=None, exc=ValueError("x" * 1000)))

    [alert] = [a for a in alerts(am_url, notify.ALERTNAME) if a["labels"]["task_id"] == "validate_batch"]
    assert alert["labels"]["logical_date"] == "2026-01-24" and alert["labels"]["project"] == "credit-eu"
    assert alert["annotations"]["summary"] == "Airflow task scoring.validate_batch failed for 2026-01-24 (try 2)"
    assert len(alert["annotations"]["description"]) == notify.DESCRIPTION_CHARS
    assert alert["annotations"]["runbook_url"] == "https://docs.example.org/pipelines/operations/alerts/#airflowtaskfailed"


def test_unset_url_sends_nothing(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.delenv(notify.ALERTMANAGER_ENV, raising=False)

    def no_request(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("a request was made with no Alertmanager configured")

    monkeypatch.setattr(urllib.request, "urlopen", no_request)
    monkeypatch.setattr(socket, "create_connection", no_request)
    with caplog.at_level(logging.DEBUG, logger="pipelines"):
        notify.task_failure_alert(context())
    assert [r.levelno for r in caplog.records] in ([], [logging.DEBUG])


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


def test_an_unreachable_alertmanager_is_one_warning(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    monkeypatch.setenv(notify.ALERTMANAGER_ENV, url)
    with caplog.at_level(logging.DEBUG, logger="pipelines"):
        notify.task_failure_alert(context())  # no exception
    [line] = _warnings(caplog)
    assert line.startswith(f"could not send the AirflowTaskFailed alert to Alertmanager at {url}: ") and "refused" in line


def test_an_answer_that_is_not_2xx_is_one_warning(am_url: str, monkeypatch: pytest.MonkeyPatch,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    """The real Alertmanager, behind a wrong path prefix: it answers 404."""
    monkeypatch.setenv(notify.ALERTMANAGER_ENV, am_url + "/not-alertmanager")
    with caplog.at_level(logging.DEBUG, logger="pipelines"):
        notify.task_failure_alert(context())
    [line] = _warnings(caplog)
    assert "Alertmanager answered 404" in line, line


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://127.0.0.1/alerts", "127.0.0.1:9093"])
def test_a_url_that_is_not_http_is_one_warning(url: str, monkeypatch: pytest.MonkeyPatch,
                                               caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv(notify.ALERTMANAGER_ENV, url)
    with caplog.at_level(logging.DEBUG, logger="pipelines"):
        notify.task_failure_alert(context())
    [line] = _warnings(caplog)
    assert "must be an http:// or https:// URL" in line, line
