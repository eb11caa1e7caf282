"""The server engine: one server's parts put together (models, batcher lanes, request path,
off-path comparison, rollout control, prediction log) and their life: start the background
work (registry poller, rollout checker, log flusher, off-path worker, scorer threads), stop it
without stranding a request.

The aliases are polled every ``serve.poll_seconds``; ``POST /reload`` checks them at once. If the
registry cannot be reached, the server keeps serving what it has and says so in
``/health/ready`` and in the ``serving_registry_reachable`` gauge.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from pipelines.config import Settings
from pipelines.errors import first_line
from pipelines.serving.batcher import Batcher, limit_threads
from pipelines.serving.compare import Comparison
from pipelines.serving.control import RolloutControl
from pipelines.serving.metrics import Metrics
from pipelines.serving.models import ModelStore, Variant
from pipelines.serving.predlog import PredictionLog
from pipelines.serving.rollout import Rollout
from pipelines.serving.routing import Answer, RequestPath

log = logging.getLogger(__name__)
REQUEST_THREADS = 32  # threads for a canary's requests (scored alone) and the server's blocking calls


def point_mlflow(settings: Settings) -> str:
    """Point MLflow at the configured store (the same URIs as pipelines.tracking.setup_mlflow,
    without creating the experiment, which needs the registry up)."""
    import mlflow

    from pipelines.tracking import tracking_uri

    uri = tracking_uri(settings)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(os.environ.get("MLFLOW_REGISTRY_URI") or uri)
    return uri


class Server:
    """One server: the request path and its background work."""

    def __init__(self, settings: Settings) -> None:
        sp, d = settings.params.serve, settings.params.data
        self.settings = settings
        self.metrics = Metrics()
        self.store = ModelStore(settings, self.metrics)
        self.rollout = Rollout(sp)
        self.predlog = PredictionLog(settings.online_predictions_dir, d)
        self.stop = threading.Event()
        self.threads: list[threading.Thread] = []
        # two lanes, one scorer thread each: one thread batches more rows per call than two that
        # split the queue and contend for the interpreter lock (BENCHMARKS.md, "One scorer per lane")
        self.batcher, self.bulk = (Batcher(d, settings.params.score.chunk_rows, sp.max_batch_rows, self.metrics, self.stop)
                                   for _ in range(2))
        self.comparison = Comparison(settings, self.metrics, self.rollout, self.predlog, self.stop)
        self.control = RolloutControl(settings, self.metrics, self.store, self.rollout, self.predlog)
        self.requests = RequestPath(settings, self.metrics, self.store, self.rollout, self.predlog, self.comparison,
                                    (self.batcher, self.bulk))

    # -- what the HTTP API calls -------------------------------------------------------------
    async def score_request(self, rows: list[dict[str, Any]]) -> Answer:
        """Score a request's rows (:meth:`RequestPath.score`): body, answering variant, headers."""
        return await self.requests.score(rows)

    def poll(self) -> dict[str, Any]:
        """Check the registry's aliases now; what serves afterwards (``ModelStore.describe``)."""
        return self.control.poll()

    def check_rollout(self, outcomes_now: bool = False) -> None:
        """Judge the rollout's guardrails (and the live outcomes when due, or ``outcomes_now``)."""
        self.control.check(outcomes_now)

    def publish_rollout(self) -> None:
        """Show the rollout's current share and stage in the metrics (after an operator's action)."""
        self.control.publish()

    def record(self, rec: dict[str, Any], challenger: Variant | None = None) -> None:
        """Record a rollout decision in MLflow."""
        self.control.record(rec, challenger)

    # -- lifecycle -----------------------------------------------------------------------------
    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """The server's life inside the app's: champion loaded before the first request, the
        background work started, then stopped when the app stops."""
        point_mlflow(self.settings)
        # load the champion before accepting requests (a restarted worker must not answer 503);
        # refresh never raises, so an unreachable registry only leaves the server not ready
        await asyncio.to_thread(self.poll)
        # the libraries and models loaded so far stay for the server's life: out of the cyclic
        # collector's sight, or its first full pass over them stalls requests (about 350 ms, in
        # the first seconds of shadow traffic: BENCHMARKS.md)
        import gc

        gc.collect()
        gc.freeze()
        from concurrent.futures import ThreadPoolExecutor

        # a canary's requests are scored in these threads (the champion's are awaited from the batcher)
        asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(REQUEST_THREADS, thread_name_prefix="request"))
        self.start()
        yield
        await asyncio.to_thread(self.shutdown)

    def start(self) -> None:
        sp = self.settings.params.serve
        # the event loop and the scorer threads hand the interpreter lock to each other on every
        # request; at Python's default 5 ms a thread that became ready can wait that long for it
        sys.setswitchinterval(sp.switch_interval_ms / 1000)
        limit_threads(sp.threads)
        self._every(sp.poll_seconds, self.poll, "registry-poller")
        self._every(sp.check_seconds, self.check_rollout, "rollout-checker")
        self._every(sp.log_flush_seconds, self.predlog.flush, "prediction-log")
        self._thread(self.comparison.run, "offpath-scorer")
        self.start_scorers()

    def start_scorers(self) -> None:
        """One scorer thread per lane (:meth:`start` calls it)."""
        for name, lane in (("scorer", self.batcher), ("bulk-scorer", self.bulk)):
            self._thread(lambda lane=lane: self._scorer(lane), name)
            lane.running, lane.closed = True, False

    def shutdown(self) -> None:
        self.batcher.close()
        self.bulk.close()
        self.stop.set()
        for t in self.threads:
            t.join(timeout=10)
        self.batcher.drain()
        self.bulk.drain()
        self.predlog.flush()

    def _scorer(self, lane: Batcher) -> None:
        limit_threads(self.settings.params.serve.threads)
        lane.loop()

    def _thread(self, target: Callable[[], None], name: str) -> None:
        t = threading.Thread(target=target, name=name, daemon=True)
        t.start()
        self.threads.append(t)

    def _every(self, seconds: float, fn: Callable[[], Any], name: str) -> None:
        def loop() -> None:
            while not self.stop.is_set():
                try:
                    fn()
                except Exception as exc:  # noqa: BLE001 - a background step failed: log it, try again next time
                    log.error("%s failed: %s", name, first_line(exc))
                self.stop.wait(seconds)

        self._thread(loop, name)
