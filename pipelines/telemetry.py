"""Every guard is a metric: what the batch steps publish for Prometheus, and how it travels.

Each step publishes one group of gauges (a Prometheus "job"): validation, drift, live
performance, the gate, promotion, and the time of each step's last success (freshness). The
alert rules in deploy/prometheus/rules/ read exactly these names; the metrics reference page is
generated from ``JOBS``.

Transport:
- ``PIPELINES_PUSHGATEWAY_URL`` set: pushed to that Prometheus Pushgateway with prometheus-client's
  ``push_to_gateway``, grouped by job and project (``PIPELINES_PROJECT``, default the project
  folder's name), and by step for freshness. A push replaces its group: the latest day of each job.
- unset (the embedded default): written as ``<reports>/metrics/<job>.prom`` in Prometheus' text
  format, for node_exporter's textfile collector (written to a temporary file and renamed).

A publication that fails is one warning line and never fails the step: the step's own outputs
are the record, the metric only tells someone.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pipelines.errors import first_line

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry, Gauge

    from pipelines.config import Settings

log = logging.getLogger(__name__)

PUSHGATEWAY_ENV = "PIPELINES_PUSHGATEWAY_URL"
PROJECT_ENV = "PIPELINES_PROJECT"
PUSH_TIMEOUT_S = 5.0
# The steps whose last success is published (the stale-pipeline alert watches each).
STEPS = ("validate", "score", "drift", "performance", "train", "gate", "promote")


@dataclass(frozen=True)
class Metric:
    name: str
    help: str
    labels: tuple[str, ...] = ()


# One sample: metric name, its labels, its value.
Sample = tuple[str, dict[str, str], float]
DAY = ("day",)
JOBS: dict[str, tuple[Metric, ...]] = {
    "validate": (
        Metric("pipelines_validation_quarantined", "1 if the day's batch was quarantined, with its first failed expectation",
               ("day", "first_failed")),
        Metric("pipelines_validation_failed_expectations", "Failed expectations (and skew checks) of the day's batch", DAY),
        Metric("pipelines_validation_worst_null_rate", "The highest null rate of any feature column in the day's batch",
               ("day", "column")),
        Metric("pipelines_validation_rows", "Rows in the day's batch", DAY),
    ),
    "drift": (
        Metric("pipelines_drift_psi", "PSI of each feature against the champion's frozen profile",
               ("feature", "day", "champion_version")),
        Metric("pipelines_drift_score_psi", "PSI of the champion's scores (batch and online)", ("day", "champion_version")),
        Metric("pipelines_drift_retrain_due", "1 if the drift job asked for retraining", ("day", "champion_version")),
        Metric("pipelines_drift_psi_threshold", "drift.psi_threshold: a feature's PSI above it has drifted"),
    ),
    "performance": (
        Metric("pipelines_live_auc", "ROC AUC of the champion on the latest matured day's real outcomes",
               ("day", "champion_version")),
        Metric("pipelines_live_auc_floor", "The live AUC under which the champion has failed (drift.min_live_roc_auc, "
               "or its holdout AUC minus drift.max_live_auc_drop, whichever is higher; 0: the check is off)",
               ("champion_version",)),
        Metric("pipelines_holdout_auc", "The champion's ROC AUC on its own holdout, when it was judged", ("champion_version",)),
        Metric("pipelines_labels_overdue_days", "Predicted days whose labels should have matured by the latest predicted "
               "day (simulate.label_delay_days after their own) and have not", ("oldest",)),
    ),
    "gate": (
        Metric("pipelines_gate_passed", "1 if the last candidate passed the gate; reason_class is its first failed check",
               ("reason_class", "champion_version")),
        Metric("pipelines_gate_auc_delta", "Candidate minus champion ROC AUC on the same holdout", ("champion_version",)),
    ),
    "promote": (
        Metric("pipelines_champion_version", "The registry version the champion alias points at"),
    ),
    "freshness": (
        Metric("pipelines_step_last_success_timestamp_seconds", "Unix time of the step's last success", ("step",)),
    ),
}


def registry_for(job: str) -> tuple[CollectorRegistry, dict[str, Gauge]]:
    """A fresh registry holding the job's gauges (declared once, in ``JOBS``)."""
    from prometheus_client import CollectorRegistry, Gauge

    reg = CollectorRegistry()
    return reg, {m.name: Gauge(m.name, m.help, list(m.labels), registry=reg) for m in JOBS[job]}


def project_name(settings: Settings | None = None) -> str:
    """``PIPELINES_PROJECT``, else the name of the project's folder (``settings``' root; without
    settings, the root the Airflow tasks load: ``config.project_root()``)."""
    if env := os.environ.get(PROJECT_ENV):
        return env
    if settings is None:
        from pipelines.config import project_root

        return project_root().resolve().name
    return settings.root.resolve().name


def textfile_dir(settings: Settings) -> Path:
    return settings.reports_dir / "metrics"


def publish(settings: Settings, job: str, samples: list[Sample],
            grouping: dict[str, str] | None = None) -> str | None:
    """Publish ``samples`` (metric name, labels, value) of ``job``; where they went, or None
    when publishing failed (one warning, never an exception)."""
    try:
        reg, gauges = registry_for(job)
        for name, labels, value in samples:
            gauge = gauges[name]
            (gauge.labels(**labels) if labels else gauge).set(value)
        for name, gauge in gauges.items():  # a metric with no sample this time is not exported at all
            if not any(s[0] == name for s in samples):
                reg.unregister(gauge)
        return _send(settings, job, reg, grouping or {})
    except Exception as exc:  # noqa: BLE001 - a metric must never fail the step it describes
        log.warning("could not publish the %s metrics: %s", job, first_line(exc))
        return None


def _send(settings: Settings, job: str, reg: CollectorRegistry, grouping: dict[str, str]) -> str:
    url = os.environ.get(PUSHGATEWAY_ENV, "").strip()
    if url:
        from prometheus_client import push_to_gateway

        push_to_gateway(url, job=job, registry=reg, grouping_key={"project": project_name(settings), **grouping},
                        timeout=PUSH_TIMEOUT_S)
        return url
    from prometheus_client import write_to_textfile

    suffix = "".join(f"_{v}" for v in grouping.values())
    dest = textfile_dir(settings) / f"{job}{suffix}.prom"
    dest.parent.mkdir(parents=True, exist_ok=True)
    write_to_textfile(str(dest), reg)
    return str(dest)


def step_succeeded(settings: Settings, step: str) -> str | None:
    """Publish that ``step`` has just succeeded (freshness; wall-clock time on purpose)."""
    if step not in STEPS:
        raise ValueError(f"unknown step {step!r}: one of {', '.join(STEPS)}")
    return publish(settings, "freshness", [("pipelines_step_last_success_timestamp_seconds", {"step": step}, time.time())],
                   grouping={"step": step})

