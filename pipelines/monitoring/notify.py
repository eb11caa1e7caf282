"""A failed Airflow task, told to Alertmanager: ``task_failure_alert`` is every DAG's
``on_failure_callback`` (``DEFAULT_ARGS`` in dags/).

Airflow calls it once a task has failed for good (its retries spent), in the task's own process,
with the task's context. It posts one ``AirflowTaskFailed`` alert straight to Alertmanager's API
(``POST <PIPELINES_ALERTMANAGER_URL>/api/v2/alerts``), so a failure pages someone without a
Prometheus rule in between; what the alert names is built by ``failure_alert``.

``PIPELINES_ALERTMANAGER_URL`` unset: nothing is sent (one debug line). A post that fails (no
Alertmanager, a timeout, a refusal) is one warning line in the task log and never an exception:
the callback must not hide the task's own failure. Standard library only, nothing of Airflow:
the DAG files import this at parse time.
"""

from __future__ import annotations

import json
import logging
import os
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from pipelines.errors import first_line
from pipelines.telemetry import project_name

log = logging.getLogger(__name__)

ALERTMANAGER_ENV = "PIPELINES_ALERTMANAGER_URL"
DOCS_ENV = "PIPELINES_DOCS_URL"
DOCS_DEFAULT = "http://127.0.0.1:8001"  # `make docs-serve`
RUNBOOK_PATH = "/operations/alerts/#airflowtaskfailed"
ALERTNAME = "AirflowTaskFailed"
POST_TIMEOUT_S = 5.0
DESCRIPTION_CHARS = 300
# A failed task is an event, not a condition Prometheus re-evaluates and re-sends: the alert is
# posted once, so it carries its own end. Four hours: long enough to pass any grouping delay and
# be seen by whoever is on call that morning, short enough that Alertmanager resolves it by
# itself the same day instead of showing a failure that a rerun has long fixed.
ALERT_LIFETIME = timedelta(hours=4)


def task_failure_alert(context: Any) -> None:
    """Airflow's ``on_failure_callback``: post the failed task's alert to Alertmanager when
    ``PIPELINES_ALERTMANAGER_URL`` is set. Never raises."""
    url = os.environ.get(ALERTMANAGER_ENV, "").strip()
    if not url:
        log.debug("%s is not set: no alert for the failed task", ALERTMANAGER_ENV)
        return
    try:
        post_alerts(url, [failure_alert(context)])
    except Exception as exc:  # noqa: BLE001 - an alert that cannot be sent must not mask the task's own failure
        log.warning("could not send the %s alert to Alertmanager at %s: %s", ALERTNAME, url, first_line(exc, limit=200))


def failure_alert(context: Any, now: datetime | None = None) -> dict[str, Any]:
    """The Alertmanager alert for the failed task in Airflow's callback ``context`` (``ti``,
    ``dag_run``, ``logical_date``, ``exception``); ``now`` (default: the wall clock, on purpose)
    is when it starts."""
    ti = context["ti"]
    when = run_date(context)
    exc = context.get("exception")
    log_url = str(getattr(ti, "log_url", "") or "")
    docs = os.environ.get(DOCS_ENV, "").strip() or DOCS_DEFAULT
    start = now or datetime.now(UTC)
    alert: dict[str, Any] = {
        "labels": {
            "alertname": ALERTNAME,
            "severity": "warning",
            "project": project_name(),
            "dag_id": str(ti.dag_id),
            "task_id": str(ti.task_id),
            "logical_date": when,
        },
        "annotations": {
            "summary": f"Airflow task {ti.dag_id}.{ti.task_id} failed for {when or 'an unknown date'} "
                       f"(try {getattr(ti, 'try_number', '?')})",
            "description": first_line(exc, limit=DESCRIPTION_CHARS) if exc else "no exception was recorded",
            "log_url": log_url,
            "runbook_url": docs.rstrip("/") + RUNBOOK_PATH,
        },
        "startsAt": _iso(start),
        "endsAt": _iso(start + ALERT_LIFETIME),
    }
    if log_url:  # Alertmanager's "source" link; it must be a URL, so only when there is one
        alert["generatorURL"] = log_url
    return alert


def run_date(context: Any) -> str:
    """The run's logical date (ISO); a run without one (a manual trigger), its day (run_after)."""
    logical = context.get("logical_date")
    if logical is not None:
        return logical.isoformat()
    run_after = getattr(context.get("dag_run"), "run_after", None)
    return run_after.date().isoformat() if run_after is not None else ""


def post_alerts(url: str, alerts: list[dict[str, Any]], timeout_s: float = POST_TIMEOUT_S) -> None:
    """POST ``alerts`` to the Alertmanager at ``url``; raises on anything but a 2xx answer."""
    import urllib.error
    import urllib.request  # here, not at the top: the DAG files import this module when parsed

    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:  # urlopen would also open file: and ftp: URLs
        raise ValueError(f"{ALERTMANAGER_ENV} must be an http:// or https:// URL, got {url!r}")
    req = urllib.request.Request(  # noqa: S310 - http(s) only (checked above)
        url.rstrip("/") + "/api/v2/alerts", data=json.dumps(alerts).encode(), method="POST",
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout_s) as resp:  # noqa: S310 - http(s) only (checked above)
            if not 200 <= resp.status < 300:  # noqa: PLR2004 - the 2xx range
                raise OSError(f"Alertmanager answered {resp.status}")
    except urllib.error.HTTPError as exc:  # 4xx/5xx: Alertmanager's body says why
        raise OSError(f"Alertmanager answered {exc.code}: {first_line(exc.read().decode(errors='replace'), limit=200)}") from exc


def _iso(when: datetime) -> str:
    return when.astimezone(UTC).isoformat().replace("+00:00", "Z")
