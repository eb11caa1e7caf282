"""Off-path comparison: the model that did not answer a request (the shadow, or a canary's
champion) scores it off the response path, in a child process (:mod:`pipelines.serving.offpath`),
so it never holds the server's GIL; its scores are compared with the served ones (metrics, the
rollout's guardrails and pairs, the prediction log)."""

from __future__ import annotations

import logging
import queue
import threading
import time
from typing import Any

import numpy as np

from pipelines.config import Settings
from pipelines.errors import first_line
from pipelines.serving.metrics import Metrics
from pipelines.serving.offpath import OffpathScorer, OffpathUnavailable
from pipelines.serving.predlog import PredictionLog
from pipelines.serving.rollout import ACTIVE, Rollout

log = logging.getLogger(__name__)
OFFPATH_BATCH = 64  # off-path requests scored in one call...
OFFPATH_LINGER_S = 0.05  # ...gathered for at most this long after the first (shadow scores are not awaited)


class Comparison:
    """The queue of requests to score off path, and the worker that scores and compares them.
    A job is (the other variant, rows, the served scores, the served alias and version, the
    request id, the entity ids)."""

    def __init__(self, settings: Settings, metrics: Metrics, rollout: Rollout, predlog: PredictionLog,
                 stop: threading.Event) -> None:
        self.settings, self.metrics, self.rollout, self.predlog, self.stop = settings, metrics, rollout, predlog, stop
        self.jobs: queue.Queue[tuple[Any, ...]] = queue.Queue(maxsize=settings.params.serve.shadow_queue)
        self.scorer = OffpathScorer(settings.params.data, settings.params.score.chunk_rows, settings.params.serve.threads)

    def put(self, job: tuple[Any, ...]) -> None:
        """Hand a served request over (never blocks: a full queue drops it and counts the drop)."""
        try:
            self.jobs.put_nowait(job)
        except queue.Full:
            self.metrics.shadow_dropped.inc()

    def run(self) -> None:
        """The worker, until the server stops: the requests queued meanwhile are scored in one
        call per model (a tree ensemble scores 50 rows in about the time of one), and the
        scoring never holds this process's GIL, so shadow mode costs the response path next
        to nothing."""
        try:
            while not self.stop.is_set():
                jobs = self._gather()
                groups: dict[int, list[tuple[Any, ...]]] = {}
                for job in jobs:
                    groups.setdefault(id(job[0]), []).append(job)
                for group in groups.values():
                    try:
                        self.score(group)
                    except Exception as exc:  # noqa: BLE001 - a bug in the bookkeeping must not end shadow scoring for good
                        log.error("off-path scoring of %d request(s) failed: %s", len(group), first_line(exc))
        finally:
            self.scorer.close()

    def _gather(self) -> list[tuple[Any, ...]]:
        try:
            jobs = [self.jobs.get(timeout=0.2)]
        except queue.Empty:
            return []
        until = time.monotonic() + OFFPATH_LINGER_S  # not latency-bound: gather a batch, fewer calls
        while len(jobs) < OFFPATH_BATCH and (wait := until - time.monotonic()) > 0:
            try:
                jobs.append(self.jobs.get(timeout=wait))
            except queue.Empty:
                break
        return jobs

    def score(self, jobs: list[tuple[Any, ...]]) -> None:
        """Score queued requests with the model that did not answer them; compare the scores."""
        variant, served_alias, served_version = jobs[0][0], jobs[0][3], jobs[0][4]
        challenger_version = variant.version if variant.alias == "challenger" else served_version
        if self.rollout.stage not in ACTIVE or self.rollout.version != challenger_version:
            return  # queued for a rollout that has ended since
        key = f"v{variant.version}-{variant.sha256[:12]}-{variant.loaded_at}"
        try:
            results = self.scorer.score(key, variant.model, [j[1] for j in jobs])
        except OffpathUnavailable as exc:  # no child to score with: nobody's model's fault, not compared
            self.metrics.shadow_dropped.inc(len(jobs))
            log.debug("off-path scoring unavailable: %s", exc)
            return
        role = "shadow" if variant.alias == "challenger" else "champion_offpath"
        left_in_call = 0  # a call's requests come together in the results, the first says how many
        for (_, _, served, _, _, request_id, ids), (other, ms, error, shared) in zip(jobs, results, strict=True):
            if other is None:  # the off-path model failed on these rows (a call of its own): counted against it
                self.metrics.model_errors.labels("shadow", variant.version).inc()
                self.rollout.observe(variant.alias, variant.version, False, 0.0)
                log.debug("off-path v%s failed: %s", variant.version, error)
                continue
            # one latency sample per call: a shadow that is too slow is rejected before it answers
            # anyone; a batch call of a healthy model stays far under the SLO (about 10 ms for 64 rows here)
            first_of_call = left_in_call == 0
            left_in_call = (shared if first_of_call else left_in_call) - 1
            if first_of_call:
                self.metrics.model_latency.labels(role, variant.version).observe(ms / 1000)
            self.rollout.observe(variant.alias, variant.version, True, ms if first_of_call else None)
            champ, chal = (served, other) if served_alias == "champion" else (other, served)
            self._compare(challenger_version, champ, chal)
            name = self.settings.params.project.model_name
            self.predlog.append(request_id, ids, role, name, variant.version, variant.run_id, other, ms)

    def _compare(self, challenger_version: str, champ: np.ndarray, chal: np.ndarray) -> None:
        thr = self.settings.params.score.decision_threshold
        for x in np.abs(chal - champ):
            self.metrics.shadow_diff.observe(float(x))
        self.metrics.shadow_flips.inc(int(((chal >= thr) != (champ >= thr)).sum()))
        self.rollout.observe_pair(challenger_version, champ, chal)
