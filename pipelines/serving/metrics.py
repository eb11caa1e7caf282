"""The server's Prometheus metrics: each one declared once here (name, type, help, labels), built
into a registry of the server's own (several servers can live in one process), and listed by
:func:`reference` for the documentation's metrics page."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)


@dataclass(frozen=True)
class Metric:
    """One exported metric: what a scrape shows (``name``, ``kind``, ``help``, ``labels``)."""

    name: str
    kind: str  # counter | gauge | histogram
    help: str
    labels: tuple[str, ...] = ()
    buckets: tuple[float, ...] | None = None

    def create(self, registry: Any) -> Any:
        """The collector of this metric in ``registry``."""
        from prometheus_client import Counter, Gauge, Histogram

        kind = {"counter": Counter, "gauge": Gauge, "histogram": Histogram}[self.kind]
        extra = {"buckets": self.buckets} if self.buckets is not None else {}
        return kind(self.name, self.help, list(self.labels), registry=registry, **extra)


REQUESTS = Metric("serving_requests_total", "counter", "Requests by endpoint, answering variant, model version and HTTP status",
                  ("endpoint", "variant", "version", "status"))
LATENCY = Metric("serving_request_latency_seconds", "histogram",
                 "Request latency inside the server, by endpoint, variant and version",
                 ("endpoint", "variant", "version"), LATENCY_BUCKETS)
MODEL_LATENCY = Metric("serving_model_latency_seconds", "histogram",
                       "predict time per call, by variant (shadow included) and version", ("variant", "version"), LATENCY_BUCKETS)
MODEL_ERRORS = Metric("serving_model_errors_total", "counter", "Model calls that raised, by variant and version",
                      ("variant", "version"))
SCORES = Metric("serving_prediction_score", "histogram", "Predicted probabilities, by variant and version",
                ("variant", "version"), tuple(i / 10 for i in range(1, 11)))
MODEL_INFO = Metric("serving_model_info", "gauge", "1 for each loaded model (alias, version, run id, artifact hash)",
                    ("alias", "version", "run_id", "sha256"))
CANARY = Metric("serving_canary_share", "gauge", "Percent of entities answered by the challenger")
ROLLOUT_STAGE = Metric("serving_rollout_stage", "gauge", "1 for the challenger's current rollout stage", ("version", "stage"))
SHADOW_DIFF = Metric("serving_shadow_abs_diff", "histogram", "|challenger - champion| score on the same rows",
                     buckets=(0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0))
SHADOW_FLIPS = Metric("serving_shadow_disagreements_total", "counter",
                      "Rows where champion and challenger decide differently at score.decision_threshold")
SHADOW_DROPPED = Metric("serving_shadow_dropped_total", "counter",
                        "Off-path scorings dropped: the queue was full, or no off-path process could start")
REGISTRY_UP = Metric("serving_registry_reachable", "gauge", "1 if the last registry check succeeded")
SWAPS = Metric("serving_model_swaps_total", "counter", "Model swaps by alias", ("alias",))
LOAD_FAILURES = Metric("serving_model_load_failures_total", "counter", "Failed loads (hash, warm-up, registry) by alias",
                       ("alias",))
READY = Metric("serving_ready", "gauge", "1 once a verified, warmed champion serves")
BATCH_REQUESTS = Metric("serving_batch_requests", "histogram",
                        "Requests scored together in one predict call on the response path", buckets=(1, 2, 4, 8, 16, 32, 64))

METRICS: tuple[Metric, ...] = (
    REQUESTS, LATENCY, MODEL_LATENCY, MODEL_ERRORS, SCORES, MODEL_INFO, CANARY, ROLLOUT_STAGE, SHADOW_DIFF,
    SHADOW_FLIPS, SHADOW_DROPPED, REGISTRY_UP, SWAPS, LOAD_FAILURES, READY, BATCH_REQUESTS,
)


def reference() -> list[tuple[str, str, str, tuple[str, ...]]]:
    """Every metric the server exports as (name, type, help, label names), in declaration order."""
    return [(m.name, m.kind, m.help, m.labels) for m in METRICS]


class Metrics:
    """The collectors of :data:`METRICS` in one server's own registry."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry

        self.registry = CollectorRegistry()
        made = self._made = {m: m.create(self.registry) for m in METRICS}
        self.requests = made[REQUESTS]
        self.latency = made[LATENCY]
        self.model_latency = made[MODEL_LATENCY]
        self.model_errors = made[MODEL_ERRORS]
        self.scores = made[SCORES]
        self.model_info = made[MODEL_INFO]
        self.canary = made[CANARY]
        self.rollout_stage = made[ROLLOUT_STAGE]
        self.shadow_diff = made[SHADOW_DIFF]
        self.shadow_flips = made[SHADOW_FLIPS]
        self.shadow_dropped = made[SHADOW_DROPPED]
        self.registry_up = made[REGISTRY_UP]
        self.swaps = made[SWAPS]
        self.load_failures = made[LOAD_FAILURES]
        self.ready = made[READY]
        self.batch_requests = made[BATCH_REQUESTS]

    def collectors(self) -> tuple[Any, ...]:
        """This server's collectors, in the order of :data:`METRICS`."""
        return tuple(self._made.values())
