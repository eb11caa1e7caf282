"""The request path: check a request's rows, route it to the variant the rollout picks (sticky
per entity), score it (the champion's requests through the batcher, a canary's alone), then
account for it: metrics, the prediction log, and the hand-over to the off-path comparison.
Every response names the model version that answered in the ``X-Model-Version`` header."""

from __future__ import annotations

import asyncio
import logging
import threading
import uuid
from typing import Any

from pipelines.config import Settings
from pipelines.errors import first_line
from pipelines.serving.batcher import BULK_ROWS, Batcher, Scored, limit_threads
from pipelines.serving.compare import Comparison
from pipelines.serving.metrics import Metrics
from pipelines.serving.models import ModelStore, Served, Variant
from pipelines.serving.payload import BadRequest, check_rows, ids_of, json_scores, unseen_categories
from pipelines.serving.predlog import PredictionLog
from pipelines.serving.rollout import ACTIVE, Rollout

log = logging.getLogger(__name__)
VERSION_HEADER = "X-Model-Version"
VARIANT_HEADER = "X-Model-Variant"
_THREAD = threading.local()
Answer = tuple[dict[str, Any], Variant, dict[str, str]]  # the body, the variant that answered, the headers


class RequestPath:
    """Route, score and account for one request at a time (any number concurrently)."""

    def __init__(self, settings: Settings, metrics: Metrics, store: ModelStore, rollout: Rollout, predlog: PredictionLog,
                 comparison: Comparison, lanes: tuple[Batcher, Batcher]) -> None:
        self.settings, self.metrics, self.store, self.rollout = settings, metrics, store, rollout
        self.predlog, self.comparison, self.lanes = predlog, comparison, lanes

    def lane(self, rows: list[dict[str, Any]]) -> Batcher:
        """The batcher of a request: single rows and small batches in one, bulk requests in the other."""
        return self.lanes[0] if len(rows) <= BULK_ROWS else self.lanes[1]

    def route(self, rows: list[dict[str, Any]]) -> tuple[Served, Variant, list[str]]:
        """Check a request's rows and pick the variant the rollout routes it to (cheap: no model)."""
        d, sp = self.settings.params.data, self.settings.params.serve
        state = self.store.state  # read once: a concurrent swap cannot mix two versions in one request
        if state.champion is None:
            raise BadRequest("not ready: no verified champion loaded yet (GET /health/ready)", 503)
        check_rows(rows, d, sp.max_batch_rows)
        ids = ids_of(rows, d)
        chosen = state.champion
        if state.challenger is not None and ids and self.rollout.routes_to_challenger(ids[0]):
            chosen = state.challenger
        return state, chosen, ids

    def failed(self, chosen: Variant) -> None:
        self.metrics.model_errors.labels(chosen.alias, chosen.version).inc()
        self.rollout.observe(chosen.alias, chosen.version, False, 0.0)

    async def score(self, rows: list[dict[str, Any]]) -> Answer:
        """Score checked rows with the variant the rollout routes to (the other one, if any,
        scores them off the response path). A champion request goes to the batcher and the
        loop awaits its future directly: no request thread hands the scores on, which under load
        cost a wait for the interpreter lock on each hand-over (BENCHMARKS.md). A canary's
        request is scored alone in a thread."""
        state, chosen, ids = self.route(rows)
        lane = self.lane(rows)
        if chosen is not state.champion or not lane.running:
            return await asyncio.to_thread(self._score_in_thread, state, chosen, ids, rows)
        try:
            scored = await asyncio.wrap_future(lane.submit(chosen.model, rows))
        except Exception:
            self.failed(chosen)
            raise
        return self.finish(state, chosen, rows, ids, scored)

    def _score_in_thread(self, state: Served, chosen: Variant, ids: list[str], rows: list[dict[str, Any]]) -> Answer:
        if not getattr(_THREAD, "limited", False):  # OpenMP threads are set per calling thread
            limit_threads(self.settings.params.serve.threads)
            _THREAD.limited = True
        lane = self.lane(rows)
        try:
            # the champion's requests are batched; a canary's are scored alone, so a slow or
            # failing challenger never holds up or fails a champion request
            scored = lane.score(chosen.model, rows) if chosen is state.champion else lane.alone(chosen.model, rows)
        except Exception as exc:
            self.failed(chosen)
            if chosen is state.champion:
                raise
            log.debug("challenger v%s failed, the champion answers: %s", chosen.version, first_line(exc))
            chosen = state.champion  # the client never sees the canary's failure
            scored = lane.score(chosen.model, rows)
        return self.finish(state, chosen, rows, ids, scored)

    def finish(self, state: Served, chosen: Variant, rows: list[dict[str, Any]], ids: list[str], scored: Scored) -> Answer:
        """Metrics, the prediction log (with the request's inputs) and the off-path hand-over of
        a scored request; its body and headers."""
        scores, ms, shared, inputs = scored
        variant = "canary" if chosen.alias == "challenger" else "champion"
        self.metrics.model_latency.labels(variant, chosen.version).observe(ms / 1000)
        for s in scores:
            self.metrics.scores.labels(variant, chosen.version).observe(float(s))
        # the guardrail compares the canary's p99 with the champion's on calls of one request each
        self.rollout.observe(chosen.alias, chosen.version, True, ms if shared == 1 else None)
        request_id = uuid.uuid4().hex
        name = self.settings.params.project.model_name
        self.predlog.append(request_id, ids, variant, name, chosen.version, chosen.run_id, scores, ms, inputs)
        other = state.challenger if chosen is state.champion else state.champion
        if other is not None and self.rollout.stage in ACTIVE:
            self.comparison.put((other, rows, scores, chosen.alias, chosen.version, request_id, ids))
        headers = {VERSION_HEADER: chosen.version, VARIANT_HEADER: variant}
        unseen = unseen_categories(rows, chosen.categories) if chosen.categories else {}
        if unseen:
            headers["X-Unseen-Categories"] = "; ".join(f"{c}={','.join(v)}" for c, v in unseen.items())[:500]
        body: dict[str, Any] = {"predictions": json_scores(scores)}
        return body, chosen, headers
