"""Rollout control on the server: follow the challenger alias into a rollout
(:mod:`pipelines.serving.rollout` holds the stages and guardrails), judge the guardrails and the
live outcomes on a schedule, publish the stage as metrics, and record every decision in MLflow."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from pipelines.config import Settings
from pipelines.serving.metrics import Metrics
from pipelines.serving.models import ModelStore, Variant
from pipelines.serving.predlog import PredictionLog
from pipelines.serving.rollout import ACTIVE, Rollout, decision_text

log = logging.getLogger(__name__)


class RolloutControl:
    """The decisions of one server's rollout and their records."""

    def __init__(self, settings: Settings, metrics: Metrics, store: ModelStore, rollout: Rollout, predlog: PredictionLog) -> None:
        self.settings, self.metrics, self.store, self.rollout, self.predlog = settings, metrics, store, rollout, predlog
        self._outcomes_at = 0.0
        self._outcomes_cache: dict[str, Any] = {}  # each day's joined outcome pairs (pipelines/serving/outcomes.py)
        self._check_lock = threading.Lock()

    def poll(self) -> dict[str, Any]:
        """Check the registry's aliases (the store loads what moved), then follow the challenger."""
        out = self.store.refresh()
        self.sync()
        return out

    def sync(self) -> None:
        """Start (or keep) the rollout of the challenger that is served now."""
        ch = self.store.state.challenger
        self.rollout.start(ch.version if ch else None, time.time())
        self.publish()

    def publish(self) -> None:
        """The rollout's share and stage as metrics."""
        self.metrics.canary.set(self.rollout.share)
        self.metrics.rollout_stage.clear()
        if self.rollout.version:
            self.metrics.rollout_stage.labels(self.rollout.version, self.rollout.stage).set(1)

    def check(self, outcomes_now: bool = False) -> None:
        """Judge the guardrails now; the live outcomes too once a poll interval has passed (or now)."""
        with self._check_lock:  # the checker thread and POST /rollout/check
            rec = self.rollout.check(time.time())
            self.publish()
            if rec is not None:
                self.record(rec)
        if outcomes_now or time.monotonic() - self._outcomes_at >= self.settings.params.serve.poll_seconds:
            self._outcomes_at = time.monotonic()
            self.check_outcomes()

    def check_outcomes(self) -> dict[str, Any] | None:
        """Judge the matured outcomes (:meth:`Rollout.judge`); promote (through the registry's
        lock, as a manual promotion), reject, stop or hold, and record it. Nothing happens while
        paused or without a rollout."""
        from pipelines.model.registry import promote_version
        from pipelines.serving.outcomes import paired_outcomes

        state = self.store.state
        ro = self.rollout
        if state.champion is None or state.challenger is None:
            return None
        if ro.stage not in ACTIVE or ro.paused or ro.version != state.challenger.version:
            return None
        self.predlog.flush()
        outcomes = paired_outcomes(self.settings, state.champion.version, state.challenger.version, self._outcomes_cache)
        if outcomes.nonfinite > ro.outcomes.get("nonfinite_dropped", 0):
            log.warning("rollout: %d paired requests with a non-finite score left out of the live outcomes", outcomes.nonfinite)
        rec = ro.judge(outcomes, time.time())
        if rec is None:
            return None
        rec["outcomes"]["champion_version"] = state.champion.version
        self.publish()
        if rec["action"] == "promote":
            by = "online rollout (sequential test on live outcomes)"
            promote_version(self.settings, state.challenger.version, rec["outcomes"]["text"], by=by)
        self.record(rec, state.challenger)
        self.poll()
        return rec

    def record(self, rec: dict[str, Any], challenger: Variant | None = None) -> None:
        """A rollout decision into MLflow: JSON and text on the challenger's run, and the
        ``rejected`` tag on the version when it was rejected."""
        import mlflow

        ch = challenger or self.store.state.challenger
        log.info("rollout: %s", rec["reason"])
        if ch is None or ch.version != rec["version"]:
            return
        name = self.settings.params.project.model_name
        client = mlflow.MlflowClient()
        stamp = f"{rec['at']:.3f}".replace(".", "_")
        client.log_dict(ch.run_id, rec, f"rollout/{stamp}-{rec['action']}.json")
        client.log_text(ch.run_id, decision_text(rec, name), f"rollout/{stamp}-{rec['action']}.txt")
        client.set_model_version_tag(name, ch.version, "rollout_stage", rec["stage"])
        if rec["action"] == "reject":
            client.set_model_version_tag(name, ch.version, "rejected", rec["reason"])
