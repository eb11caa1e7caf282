"""The online server: the registry's champion behind FastAPI on uvicorn (`python -m pipelines serve`).

One feature path: rows become model input through ``model_input`` and are scored with the
native scikit-learn Pipeline through ``predict_scores``, exactly as batch scoring does
(pipelines/model/features.py), so online and batch scores are the same bits.

- The champion (and a challenger) come from the champion store (pipelines/model/champion.py):
  loaded by alias, artifact hash verified, warmed on a probe row, then swapped in with one
  reference assignment. Requests read the served models once, so a swap never fails a request.
  The previous champion stays in memory: a rollback to it is a pointer swap, not a load.
- The aliases are polled every ``serve.poll_seconds``; ``POST /reload`` (bearer token from
  $PIPELINES_RELOAD_TOKEN, loopback only unless serve.reload_any_host) checks them at once.
  If the registry cannot be reached, the server keeps serving what it has and says so in
  ``/health/ready`` and in the ``serving_registry_reachable`` gauge.
- A challenger is rolled out by :mod:`pipelines.serving.rollout` (shadow, canary, guardrails).
- The model that does not answer a request (the shadow, or a canary's champion) scores it off the
  response path, in a child process (:mod:`pipelines.serving.offpath`), so it never holds this GIL.
- Every prediction is appended to the online prediction log (:mod:`pipelines.serving.predlog`).
- Every response names the model version that answered in the ``X-Model-Version`` header.
- The champion's requests are batched dynamically (:class:`Batcher`): those that arrive while
  the model is busy are scored together in one predict call, the same bits as one by one. The
  event loop awaits each request's future from the scorer threads directly: one for requests of
  up to ``BULK_ROWS`` rows, one for larger ones.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import os
import queue
import sys
import threading
import time
import uuid
from concurrent.futures import Future
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import numpy as np
from fastapi import Request  # at module level: FastAPI resolves the handlers' annotations here

from pipelines.config import Settings
from pipelines.errors import PipelineError, first_line
from pipelines.model.champion import current_alias, load_verified
from pipelines.model.features import score_frame
from pipelines.serving.offpath import OffpathScorer, OffpathUnavailable
from pipelines.serving.payload import (
    BadRequest,
    check_rows,
    frame_of,
    ids_of,
    invocation_rows,
    json_scores,
    load_json,
    unseen_categories,
)
from pipelines.serving.predlog import PredictionLog
from pipelines.serving.rollout import ACTIVE, Rollout, decision_text

log = logging.getLogger(__name__)
VERSION_HEADER = "X-Model-Version"
VARIANT_HEADER = "X-Model-Variant"
TOKEN_ENV = "PIPELINES_RELOAD_TOKEN"  # noqa: S105 - the name of the variable holding the token, not a token
LOOPBACK = {"127.0.0.1", "::1", "localhost"}
_THREAD = threading.local()
OFFPATH_BATCH = 64  # off-path requests scored in one call...
OFFPATH_LINGER_S = 0.05  # ...gathered for at most this long after the first (shadow scores are not awaited)
BULK_ROWS = 64  # a champion request of more rows is batched in a lane of its own (one scorer thread each),
                # so a 1000-row request never holds up the single-row ones queued behind it
REQUEST_THREADS = 32  # threads for a canary's requests (scored alone) and the server's blocking calls
LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)


@dataclass(frozen=True)
class Variant:
    """One loaded, verified, warmed model version."""

    alias: str
    version: str
    run_id: str
    sha256: str
    model: Any
    categories: dict[str, list[str]]
    loaded_at: float

    def describe(self) -> dict[str, Any]:
        return {"alias": self.alias, "version": self.version, "run_id": self.run_id, "sha256": self.sha256,
                "loaded_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.loaded_at))}


@dataclass(frozen=True)
class Served:
    """What answers now. Replaced whole (one assignment), never changed in place."""

    champion: Variant | None = None
    challenger: Variant | None = None
    previous: Variant | None = None  # the last champion, kept for an instant rollback


class Metrics:
    """Prometheus metrics in the server's own registry (several servers can live in one process)."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        r = self.registry = CollectorRegistry()
        self.requests = Counter("serving_requests_total", "Requests by endpoint, answering variant, model version and HTTP status",
                                ["endpoint", "variant", "version", "status"], registry=r)
        self.latency = Histogram("serving_request_latency_seconds", "Request latency inside the server, by endpoint, variant and version",
                                 ["endpoint", "variant", "version"], buckets=LATENCY_BUCKETS, registry=r)
        self.model_latency = Histogram("serving_model_latency_seconds", "predict time per call, by variant (shadow included) and version",
                                       ["variant", "version"], buckets=LATENCY_BUCKETS, registry=r)
        self.model_errors = Counter("serving_model_errors_total", "Model calls that raised, by variant and version", ["variant", "version"], registry=r)
        self.scores = Histogram("serving_prediction_score", "Predicted probabilities, by variant and version", ["variant", "version"],
                                buckets=tuple(i / 10 for i in range(1, 11)), registry=r)
        self.model_info = Gauge("serving_model_info", "1 for each loaded model (alias, version, run id, artifact hash)",
                                ["alias", "version", "run_id", "sha256"], registry=r)
        self.canary = Gauge("serving_canary_share", "Percent of entities answered by the challenger", registry=r)
        self.rollout_stage = Gauge("serving_rollout_stage", "1 for the challenger's current rollout stage", ["version", "stage"], registry=r)
        self.shadow_diff = Histogram("serving_shadow_abs_diff", "|challenger - champion| score on the same rows",
                                     buckets=(0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0), registry=r)
        self.shadow_flips = Counter("serving_shadow_disagreements_total", "Rows where champion and challenger decide differently at score.decision_threshold", registry=r)
        self.shadow_dropped = Counter("serving_shadow_dropped_total", "Off-path scorings dropped: the queue was full, or no off-path process could start", registry=r)
        self.registry_up = Gauge("serving_registry_reachable", "1 if the last registry check succeeded", registry=r)
        self.swaps = Counter("serving_model_swaps_total", "Model swaps by alias", ["alias"], registry=r)
        self.load_failures = Counter("serving_model_load_failures_total", "Failed loads (hash, warm-up, registry) by alias", ["alias"], registry=r)
        self.ready = Gauge("serving_ready", "1 once a verified, warmed champion serves", registry=r)
        self.batch_requests = Histogram("serving_batch_requests", "Requests scored together in one predict call on the response path",
                                        buckets=(1, 2, 4, 8, 16, 32, 64), registry=r)


class Batcher:
    """Dynamic batching of the response path (as Triton's dynamic batcher or TorchServe's batch
    inference do, without a wait): a request hands its checked rows to the scorer threads and
    waits; a scorer takes every request queued by then (up to ``max_rows`` rows), builds one
    frame and one model input (``frame_of``, ``model_input``) and scores those of one model in
    one predict call. At low load a batch is the one request, so nothing waits; at saturation
    the per-call costs (the frame, the ColumnTransformer, the ensemble's set-up) are paid once
    for many requests. The scores are the same bits as scoring each request alone: each row's
    values and trees are its own. If a batch raises, its requests are scored one by one, so
    each failure goes to the request that caused it and to no other."""

    def __init__(self, data: Any, chunk_rows: int, max_rows: int, metrics: Metrics, stop: threading.Event) -> None:
        self.data, self.chunk_rows, self.max_rows, self.metrics, self.stop = data, chunk_rows, max_rows, metrics, stop
        self.jobs: queue.SimpleQueue[tuple[Any, Any, Any]] = queue.SimpleQueue()
        self.running = False
        self.closed = False  # the server stops: nothing is queued any more (see close)
        self._gate = threading.Lock()

    def predict(self, model: Any, rows: list[dict[str, Any]]) -> tuple[np.ndarray, float]:
        """Checked rows through the one feature path; the scores and the call's milliseconds."""
        t0 = time.perf_counter()
        scores = score_frame(model, frame_of(rows, self.data), self.data, self.chunk_rows)
        return scores, (time.perf_counter() - t0) * 1000

    def score(self, model: Any, rows: list[dict[str, Any]]) -> tuple[np.ndarray, float, int]:
        """The scores of checked ``rows`` by ``model``, the milliseconds of the call that
        computed them (not the wait before it) and how many requests that call scored; raises
        what the model raised. Never waits on scorers that are gone: once the server stops, a
        request still waiting is scored here."""
        if not self.running:  # no scorer threads (a server not started, or stopping): score here
            return (*self.predict(model, rows), 1)
        from concurrent.futures import TimeoutError as Pending

        done = self.submit(model, rows)
        while True:
            try:
                return done.result(timeout=1.0)
            except Pending:
                if self.stop.is_set():
                    return (*self.predict(model, rows), 1)

    def submit(self, model: Any, rows: list[dict[str, Any]]) -> Future[tuple[np.ndarray, float, int]]:
        """Queue checked rows for the scorer threads; the future of what :meth:`score` returns.
        The event loop awaits it (``asyncio.wrap_future``) with no request thread in between."""
        done: Future[tuple[np.ndarray, float, int]] = Future()
        with self._gate:  # queued only while close() has not run: drain() then sees the job
            if not self.closed:
                self.jobs.put((model, rows, done))
                return done
        self._run([(model, rows, done)])  # the server stops: scored here, by the caller
        return done

    def close(self) -> None:
        """Stop queueing (the server stops): a request submitted from now on is scored by its
        caller, and every one queued before is in the queue for :meth:`drain`. Without it, a
        request that found the lane running just before the shutdown and queued just after
        the drain would wait for ever."""
        with self._gate:
            self.running = False
            self.closed = True

    def drain(self) -> None:
        """Once the scorer threads are gone: score here whatever is still queued, so no request
        waits for ever on a server that stops."""
        while True:
            try:
                job = self.jobs.get_nowait()
            except queue.Empty:
                return
            if job[2].set_running_or_notify_cancel():  # not a request cancelled meanwhile
                self._run([job])  # a failure goes to its request, as in the scorers

    def loop(self) -> None:
        while not self.stop.is_set():
            try:
                batch = [self.jobs.get(timeout=0.2)]
            except queue.Empty:
                continue
            rows = len(batch[0][1])
            while rows < self.max_rows:
                try:
                    job = self.jobs.get_nowait()
                except queue.Empty:
                    break
                batch.append(job)
                rows += len(job[1])
            groups: dict[int, list[tuple[Any, Any, Any]]] = {}
            for job in batch:
                # a request cancelled while queued (its awaiting task was) is left out; the others
                # can no longer be cancelled, so their results always land
                if job[2].set_running_or_notify_cancel():
                    groups.setdefault(id(job[0]), []).append(job)
            for group in groups.values():
                try:
                    self._run(group)
                except BaseException as exc:  # noqa: BLE001 - the scorer must live on: every waiting request gets its answer
                    err = exc if isinstance(exc, Exception) else RuntimeError(f"the scorer failed: {type(exc).__name__}: {exc}")
                    for _, _, done in group:
                        if not done.done():
                            done.set_exception(err)

    def _run(self, group: list[tuple[Any, Any, Any]]) -> None:
        try:
            scores, ms = self.predict(group[0][0], group[0][1] if len(group) == 1 else [r for j in group for r in j[1]])
        except BaseException as exc:  # noqa: BLE001 - handed to the request(s) it belongs to, which answer for it
            if len(group) == 1:
                group[0][2].set_exception(exc if isinstance(exc, Exception) else RuntimeError(f"the model raised {type(exc).__name__}: {exc}"))
            else:
                for job in group:
                    self._run([job])
            return
        self.metrics.batch_requests.observe(len(group))
        at = 0
        for _, x, done in group:
            done.set_result((scores[at : at + len(x)], ms, len(group)))
            at += len(x)


def known_categories(model: Any, categorical: list[str]) -> dict[str, list[str]]:
    """The categories the model's CategoryCoder learned (empty for another kind of model)."""
    steps = getattr(model, "named_steps", {})
    pre = steps.get("preprocess") if isinstance(steps, dict) or hasattr(steps, "get") else None
    coder = getattr(pre, "named_transformers_", {}).get("cat") if pre is not None else None
    cats = getattr(coder, "categories_", None)
    return {c: list(v) for c, v in zip(categorical, cats)} if cats is not None else {}


class ModelStore:
    """The served models and how they change: check the aliases, load, verify, warm, swap."""

    def __init__(self, settings: Settings, metrics: Metrics) -> None:
        self.settings = settings
        self.metrics = metrics
        self.state = Served()
        self.registry_ok: bool | None = None
        self.registry_error: str | None = None
        self.load_errors: dict[str, str] = {}
        self.checked_at: float | None = None
        self._lock = threading.Lock()  # one refresh at a time (the poller and /reload)

    def warm(self, model: Any) -> None:
        """Score probe rows once, so the first request pays no lazy initialisation, and a model
        that cannot score at all is refused before it serves."""
        import pandas as pd

        d = self.settings.params.data
        frame = pd.DataFrame({**{c: [np.nan, 0.0] for c in d.numerical}, **{c: [None, None] for c in d.categorical}})
        scores = score_frame(model, frame, d, self.settings.params.score.chunk_rows)
        if len(scores) != 2:
            raise PipelineError(f"warm-up returned {len(scores)} scores for 2 rows")

    def _load(self, alias: str) -> Variant | None:
        model, mv, signature = load_verified(self.settings, alias)
        if model is None:
            return None
        d = self.settings.params.data
        if signature is not None and sorted(signature.inputs.input_names()) != sorted(d.features):
            raise PipelineError(f"v{mv.version} ({alias}) expects inputs {signature.inputs.input_names()}, params.yaml data features are {d.features}")
        self.warm(model)
        return Variant(alias, str(mv.version), mv.run_id or "", mv.tags.get("model_sha256", ""), model,
                       known_categories(model, d.categorical), time.time())

    def _resolve(self, alias: str, mv: Any, state: Served) -> Variant | None:
        current = state.champion if alias == "champion" else state.challenger
        if mv is None:
            if alias == "champion" and current is not None:
                log.warning("the registry has no champion alias any more; still serving v%s", current.version)
                return current
            return None
        version = str(mv.version)
        for kept in (state.champion, state.challenger, state.previous):
            if kept is not None and kept.version == version:
                return kept if kept.alias == alias else Variant(alias, kept.version, kept.run_id, kept.sha256, kept.model, kept.categories, kept.loaded_at)
        try:
            loaded = self._load(alias)
        except Exception as exc:  # a bad artifact (hash, unpickling, warm-up): keep what serves, say why
            self.load_errors[alias] = f"v{version}: {first_line(exc)}"
            self.metrics.load_failures.labels(alias).inc()
            log.error("not serving %s v%s: %s", alias, version, first_line(exc))
            return current
        self.load_errors.pop(alias, None)
        self.metrics.swaps.labels(alias).inc()
        log.info("loaded %s v%s (hash verified, warmed)", alias, version)
        return loaded

    def refresh(self) -> dict[str, Any]:
        """Check both aliases; load what moved; swap atomically. Never raises."""
        with self._lock:
            self.checked_at = time.time()
            try:
                champ_mv = current_alias(self.settings, "champion")
                chal_mv = current_alias(self.settings, "challenger")
            except Exception as exc:  # registry down (network, database, server error): keep serving
                self.registry_ok, self.registry_error = False, first_line(exc)
                self.metrics.registry_up.set(0)
                log.warning("registry unreachable, still serving what is loaded: %s", self.registry_error)
                return self.describe()
            self.registry_ok, self.registry_error = True, None
            self.metrics.registry_up.set(1)
            state = self.state
            champion = self._resolve("champion", champ_mv, state)
            challenger = self._resolve("challenger", chal_mv, state)
            if challenger is not None and champion is not None and challenger.version == champion.version:
                challenger = None
            previous = state.previous
            if state.champion is not None and champion is not None and champion.version != state.champion.version:
                previous = state.champion
            self.state = Served(champion, challenger, previous)  # the swap: one assignment
            self._publish()
            return self.describe()

    def _publish(self) -> None:
        s = self.state
        self.metrics.model_info.clear()
        for v in (s.champion, s.challenger, s.previous):
            if v is not None:
                alias = v.alias if v is not s.previous else "previous"
                self.metrics.model_info.labels(alias, v.version, v.run_id, v.sha256[:12]).set(1)
        self.metrics.ready.set(1 if s.champion is not None else 0)

    def describe(self) -> dict[str, Any]:
        s = self.state
        return {
            "champion": s.champion.describe() if s.champion else None,
            "challenger": s.challenger.describe() if s.challenger else None,
            "previous": s.previous.describe() if s.previous else None,
            "registry_reachable": self.registry_ok,
            "registry_error": self.registry_error,
            "load_errors": dict(self.load_errors),
        }


class Server:
    """The request path and its background work (poller, rollout checks, off-path scoring, log)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.metrics = Metrics()
        self.store = ModelStore(settings, self.metrics)
        self.rollout = Rollout(settings.params.serve)
        self.predlog = PredictionLog(settings.online_predictions_dir, settings.params.data.id_col, settings.params.data.timestamp_col)
        self.offpath: queue.Queue[Any] = queue.Queue(maxsize=settings.params.serve.shadow_queue)
        self.stop = threading.Event()
        self.threads: list[threading.Thread] = []
        # two lanes, one scorer thread each: one thread batches more rows per call than two that
        # split the queue and contend for the interpreter lock (BENCHMARKS.md, "One scorer per lane")
        self.batcher, self.bulk = (Batcher(settings.params.data, settings.params.score.chunk_rows, settings.params.serve.max_batch_rows, self.metrics, self.stop)
                                   for _ in range(2))
        self.offpath_scorer = OffpathScorer(settings.params.data, settings.params.score.chunk_rows, settings.params.serve.threads)
        self._outcomes_at = 0.0
        self._outcomes_cache: dict[str, Any] = {}  # each day's joined outcome pairs (pipelines/serving/outcomes.py)
        self._check_lock = threading.Lock()

    # -- background work -------------------------------------------------------------------
    def _every(self, seconds: float, fn: Any, name: str) -> None:
        def loop() -> None:
            while not self.stop.is_set():
                try:
                    fn()
                except Exception as exc:  # a background step failed: log it, try again next time
                    log.error("%s failed: %s", name, first_line(exc))
                self.stop.wait(seconds)

        t = threading.Thread(target=loop, name=name, daemon=True)
        t.start()
        self.threads.append(t)

    def _sync_rollout(self) -> None:
        ch = self.store.state.challenger
        self.rollout.start(ch.version if ch else None, time.time())
        self._publish_rollout()

    def _publish_rollout(self) -> None:
        self.metrics.canary.set(self.rollout.share)
        self.metrics.rollout_stage.clear()
        if self.rollout.version:
            self.metrics.rollout_stage.labels(self.rollout.version, self.rollout.stage).set(1)

    def poll(self) -> dict[str, Any]:
        out = self.store.refresh()
        self._sync_rollout()
        return out

    def check_rollout(self, outcomes_now: bool = False) -> None:
        with self._check_lock:  # the checker thread and POST /rollout/check
            rec = self.rollout.check(time.time())
            self._publish_rollout()
            if rec is not None:
                self.record(rec)
        if outcomes_now or time.monotonic() - self._outcomes_at >= self.settings.params.serve.poll_seconds:
            self._outcomes_at = time.monotonic()
            self.check_outcomes()

    def check_outcomes(self) -> dict[str, Any] | None:
        """The sequential test on matured outcomes; promote (through the registry's lock, as
        a manual promotion) or reject. Nothing happens while paused or without a rollout."""
        from dataclasses import asdict

        from pipelines.model.registry import promote_version
        from pipelines.serving.outcomes import paired_outcomes
        from pipelines.serving.sequential import decide

        state, sp = self.store.state, self.settings.params.serve
        ro = self.rollout
        if state.champion is None or state.challenger is None or ro.stage not in ACTIVE or ro.paused or ro.version != state.challenger.version:
            return None
        self.predlog.flush()
        verdict = decide(paired_outcomes(self.settings, state.champion.version, state.challenger.version, self._outcomes_cache), sp.alpha, sp.min_outcomes, sp.planned_outcomes)
        if verdict.decision == "continue":
            return None
        detail = {**asdict(verdict), "text": verdict.text, "champion_version": state.champion.version}
        rec = ro.conclude(verdict.decision, f"sequential test on live outcomes: {verdict.text}", time.time(), detail)
        self._publish_rollout()
        if verdict.decision == "promote":
            promote_version(self.settings, state.challenger.version, verdict.text, by="online rollout (sequential test on live outcomes)")
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

    def _offpath_worker(self) -> None:
        """Off-path scoring, in batches, in its own process (:mod:`pipelines.serving.offpath`):
        the requests queued meanwhile are scored in one call per model (a tree ensemble scores
        50 rows in about the time of one), and the scoring never holds this process's GIL, so
        shadow mode costs the response path next to nothing."""
        try:
            while not self.stop.is_set():
                try:
                    jobs = [self.offpath.get(timeout=0.2)]
                except queue.Empty:
                    continue
                until = time.monotonic() + OFFPATH_LINGER_S  # not latency-bound: gather a batch, fewer calls
                while len(jobs) < OFFPATH_BATCH and (wait := until - time.monotonic()) > 0:
                    try:
                        jobs.append(self.offpath.get(timeout=wait))
                    except queue.Empty:
                        break
                groups: dict[int, list[tuple[Any, ...]]] = {}
                for job in jobs:
                    groups.setdefault(id(job[0]), []).append(job)
                for group in groups.values():
                    try:
                        self._score_offpath(group)
                    except Exception as exc:  # a bug in the bookkeeping must not end shadow scoring for good
                        log.error("off-path scoring of %d request(s) failed: %s", len(group), first_line(exc))
        finally:
            self.offpath_scorer.close()

    def _score_offpath(self, jobs: list[tuple[Any, ...]]) -> None:
        """Score queued requests with the model that did not answer them; compare the scores."""
        variant, served_alias, served_version = jobs[0][0], jobs[0][3], jobs[0][4]
        challenger_version = variant.version if variant.alias == "challenger" else served_version
        if self.rollout.stage not in ACTIVE or self.rollout.version != challenger_version:
            return  # queued for a rollout that has ended since
        key = f"v{variant.version}-{variant.sha256[:12]}-{variant.loaded_at}"
        try:
            results = self.offpath_scorer.score(key, variant.model, [j[1] for j in jobs])
        except OffpathUnavailable as exc:  # no child to score with: nobody's model's fault, not compared
            self.metrics.shadow_dropped.inc(len(jobs))
            log.debug("off-path scoring unavailable: %s", exc)
            return
        role = "shadow" if variant.alias == "challenger" else "champion_offpath"
        thr = self.settings.params.score.decision_threshold
        left_in_call = 0  # a call's requests come together in the results, the first says how many
        for (_, rows, served, _, _, request_id, ids), (other, ms, error, shared) in zip(jobs, results, strict=True):
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
            for x in np.abs(chal - champ):
                self.metrics.shadow_diff.observe(float(x))
            self.metrics.shadow_flips.inc(int(((chal >= thr) != (champ >= thr)).sum()))
            self.rollout.observe_pair(challenger_version, champ, chal)
            self.predlog.append(request_id, ids, role, self.settings.params.project.model_name, variant.version, variant.run_id, other, ms)

    def _limit_threads(self) -> None:
        threads = self.settings.params.serve.threads
        if threads > 0:
            from threadpoolctl import threadpool_limits

            threadpool_limits(limits=min(threads, os.cpu_count() or threads))  # this thread's OpenMP/BLAS pools

    def start(self) -> None:
        sp = self.settings.params.serve
        # the event loop and the scorer threads hand the interpreter lock to each other on every
        # request; at Python's default 5 ms a thread that became ready can wait that long for it
        sys.setswitchinterval(sp.switch_interval_ms / 1000)
        self._limit_threads()
        self._every(sp.poll_seconds, self.poll, "registry-poller")
        self._every(sp.check_seconds, self.check_rollout, "rollout-checker")
        self._every(sp.log_flush_seconds, self.predlog.flush, "prediction-log")
        t = threading.Thread(target=self._offpath_worker, name="offpath-scorer", daemon=True)
        t.start()
        self.threads.append(t)
        self.start_scorers()

    def start_scorers(self) -> None:
        """One scorer thread per lane (:meth:`start` calls it)."""
        for name, lane in (("scorer", self.batcher), ("bulk-scorer", self.bulk)):
            t = threading.Thread(target=self._scorer, args=(lane,), name=name, daemon=True)
            t.start()
            self.threads.append(t)
            lane.running, lane.closed = True, False

    def _scorer(self, lane: Batcher) -> None:
        self._limit_threads()
        lane.loop()

    def _lane(self, rows: list[dict[str, Any]]) -> Batcher:
        return self.batcher if len(rows) <= BULK_ROWS else self.bulk

    def shutdown(self) -> None:
        self.batcher.close()
        self.bulk.close()
        self.stop.set()
        for t in self.threads:
            t.join(timeout=10)
        self.batcher.drain()
        self.bulk.drain()
        self.predlog.flush()

    # -- the request path ------------------------------------------------------------------
    def _route(self, rows: list[dict[str, Any]]) -> tuple[Served, Variant, list[str]]:
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

    def _failed(self, chosen: Variant) -> None:
        self.metrics.model_errors.labels(chosen.alias, chosen.version).inc()
        self.rollout.observe(chosen.alias, chosen.version, False, 0.0)

    async def score_request(self, rows: list[dict[str, Any]]) -> tuple[dict[str, Any], Variant, dict[str, str]]:
        """Score checked rows with the variant the rollout routes to (the other one, if any,
        scores them off the response path). A champion request goes to the batcher and the
        loop awaits its future directly: no request thread hands the scores on, which under load
        cost a wait for the interpreter lock on each hand-over (BENCHMARKS.md). A canary's
        request is scored alone in a thread, as before."""
        state, chosen, ids = self._route(rows)
        lane = self._lane(rows)
        if chosen is not state.champion or not lane.running:
            return await asyncio.to_thread(self._score_routed, state, chosen, ids, rows)
        try:
            scores, ms, shared = await asyncio.wrap_future(lane.submit(chosen.model, rows))
        except Exception:
            self._failed(chosen)
            raise
        return self._finish(state, chosen, rows, ids, scores, ms, shared)

    def _score_routed(self, state: Served, chosen: Variant, ids: list[str], rows: list[dict[str, Any]]) -> tuple[dict[str, Any], Variant, dict[str, str]]:
        if not getattr(_THREAD, "limited", False):  # OpenMP threads are set per calling thread
            self._limit_threads()
            _THREAD.limited = True
        try:
            # the champion's requests are batched; a canary's are scored alone, so a slow or
            # failing challenger never holds up or fails a champion request
            lane = self._lane(rows)
            scores, ms, shared = lane.score(chosen.model, rows) if chosen is state.champion else (*lane.predict(chosen.model, rows), 1)
        except Exception as exc:
            self._failed(chosen)
            if chosen is state.champion:
                raise
            log.debug("challenger v%s failed, the champion answers: %s", chosen.version, first_line(exc))
            chosen = state.champion  # the client never sees the canary's failure
            scores, ms, shared = lane.score(chosen.model, rows)
        return self._finish(state, chosen, rows, ids, scores, ms, shared)

    def _finish(self, state: Served, chosen: Variant, rows: list[dict[str, Any]], ids: list[str], scores: np.ndarray,
                ms: float, shared: int) -> tuple[dict[str, Any], Variant, dict[str, str]]:
        """Metrics, the prediction log and the off-path hand-over of a scored request; its body and headers."""
        variant = "canary" if chosen.alias == "challenger" else "champion"
        self.metrics.model_latency.labels(variant, chosen.version).observe(ms / 1000)
        for s in scores:
            self.metrics.scores.labels(variant, chosen.version).observe(float(s))
        # the guardrail compares the canary's p99 with the champion's on calls of one request each
        self.rollout.observe(chosen.alias, chosen.version, True, ms if shared == 1 else None)
        request_id = uuid.uuid4().hex
        self.predlog.append(request_id, ids, variant, self.settings.params.project.model_name, chosen.version, chosen.run_id, scores, ms)
        other = state.challenger if chosen is state.champion else state.champion
        if other is not None and self.rollout.stage in ACTIVE:
            try:
                self.offpath.put_nowait((other, rows, scores, chosen.alias, chosen.version, request_id, ids))
            except queue.Full:
                self.metrics.shadow_dropped.inc()
        headers = {VERSION_HEADER: chosen.version, VARIANT_HEADER: variant}
        unseen = unseen_categories(rows, chosen.categories) if chosen.categories else {}
        if unseen:
            headers["X-Unseen-Categories"] = "; ".join(f"{c}={','.join(v)}" for c, v in unseen.items())[:500]
        body: dict[str, Any] = {"predictions": json_scores(scores)}
        return body, chosen, headers


def point_mlflow(settings: Settings) -> str:
    """Point MLflow at the configured store (the same URIs as pipelines.tracking.setup_mlflow,
    without creating the experiment, which needs the registry up)."""
    import mlflow

    from pipelines.tracking import tracking_uri

    uri = tracking_uri(settings)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(os.environ.get("MLFLOW_REGISTRY_URI") or uri)
    return uri


def _client_host(request: Any) -> str:
    return request.client.host if request.client else ""


def create_app(settings: Settings) -> Any:
    """The FastAPI app of one server (its own metrics registry, models and threads)."""
    from fastapi import FastAPI
    from fastapi.responses import JSONResponse, Response
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
    from pydantic import ConfigDict, Field, Strict, create_model
    from starlette.exceptions import HTTPException as StarletteHTTPException

    server = Server(settings)
    d, sp = settings.params.data, settings.params.serve

    @asynccontextmanager
    async def lifespan(app: Any) -> Any:
        point_mlflow(settings)
        # load the champion before accepting requests (a restarted worker must not answer 503);
        # refresh never raises, so an unreachable registry only leaves the server not ready
        await asyncio.to_thread(server.poll)
        # the libraries and models loaded so far stay for the server's life: out of the cyclic
        # collector's sight, or its first full pass over them stalls requests (about 350 ms, in
        # the first seconds of shadow traffic: BENCHMARKS.md)
        import gc

        gc.collect()
        gc.freeze()
        from concurrent.futures import ThreadPoolExecutor

        # a canary's requests are scored in these threads (the champion's are awaited from the batcher)
        asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(REQUEST_THREADS, thread_name_prefix="request"))
        server.start()
        yield
        await asyncio.to_thread(server.shutdown)

    app = FastAPI(title=f"{settings.params.project.model_name} online scoring", lifespan=lifespan,
                  description="The registry's champion, with shadow and canary rollout of a challenger (pipelines/serving/server.py).")
    app.state.server = server

    def champion_version() -> str:
        ch = server.store.state.champion
        return ch.version if ch else "none"

    def reply(content: Any, status: int = 200, headers: dict[str, str] | None = None) -> Any:
        h = {VERSION_HEADER: champion_version(), **(headers or {})}
        return JSONResponse(content, status_code=status, headers=h)

    def count(endpoint: str, variant: str, version: str, status: int, started: float) -> None:
        server.metrics.requests.labels(endpoint, variant, version, str(status)).inc()
        server.metrics.latency.labels(endpoint, variant, version).observe(time.perf_counter() - started)

    async def handle(request: Request, endpoint: str, to_rows: Any) -> Any:
        started = time.perf_counter()
        try:
            length = int(request.headers.get("content-length") or 0)
            if length > sp.max_batch_rows * 4096:
                raise BadRequest(f"body of {length} bytes is larger than a batch of serve.max_batch_rows ({sp.max_batch_rows}) rows", 413)
            rows = to_rows(load_json(await request.body(), sp.max_batch_rows))
            # the model scores in the scorer threads: the event loop keeps accepting meanwhile
            # (the tree traversal releases the GIL), so two cores serve two requests at once
            body, chosen, headers = await server.score_request(rows)
        except BadRequest as exc:
            count(endpoint, "none", champion_version(), exc.status, started)
            return reply({"error": str(exc)}, exc.status)
        except Exception as exc:  # the champion itself failed on valid input: a server error, one line
            count(endpoint, "champion", champion_version(), 500, started)
            log.error("champion failed on a valid request: %s", first_line(exc))
            return reply({"error": f"the model failed: {first_line(exc)}"}, 500)
        count(endpoint, headers[VARIANT_HEADER], chosen.version, 200, started)
        return reply(body, 200, headers)

    row_fields: dict[str, Any] = {d.id_col: (str | int | None, None)}
    row_fields.update({c: (Annotated[float | None, Strict()], ...) for c in d.numerical})
    row_fields.update({c: (Annotated[str | None, Strict()], ...) for c in d.categorical})
    Row = create_model("Row", __config__=ConfigDict(extra="forbid"), **row_fields)
    PredictBody = create_model("PredictBody", rows=(list[Row], Field(..., min_length=1, max_length=sp.max_batch_rows)))  # type: ignore[valid-type]

    def predict_rows(payload: Any) -> list[dict[str, Any]]:
        if not isinstance(payload, dict) or not isinstance(payload.get("rows"), list):
            raise BadRequest('body must be {"rows": [{feature: value, ...}, ...]}', 400)
        unknown = sorted(set(payload) - {"rows"})
        if unknown:
            raise BadRequest(f"unknown key {unknown[0]!r}: the body is {{\"rows\": [...]}}", 400)
        allowed = {d.id_col, *d.features}
        for i, row in enumerate(payload["rows"]):
            extra = sorted(set(row) - allowed) if isinstance(row, dict) else []
            if not isinstance(row, dict):
                raise BadRequest(f"row {i} must be an object of feature names to values")
            if extra:
                raise BadRequest(f"row {i}: unknown field {extra[0]!r} (the model's features: {', '.join(d.features)})")
        return payload["rows"]

    @app.post("/invocations", summary="MLflow scoring protocol: dataframe_split, dataframe_records, inputs or instances")
    async def invocations(request: Request) -> Any:
        return await handle(request, "invocations", invocation_rows)

    @app.post("/predict", summary="Rows typed from the model signature",
              openapi_extra={"requestBody": {"required": True, "content": {"application/json": {"schema": PredictBody.model_json_schema()}}}})
    async def predict(request: Request) -> Any:
        return await handle(request, "predict", predict_rows)

    @app.get("/health/live")
    async def live() -> Any:
        return reply({"live": True})

    @app.get("/health/ready")
    async def ready() -> Any:
        st = server.store
        import mlflow

        info = {"ready": st.state.champion is not None, "champion": champion_version(), "registry": mlflow.get_registry_uri(),
                "registry_reachable": st.registry_ok, "registry_error": st.registry_error, "load_errors": dict(st.load_errors)}
        if st.state.champion is None:
            why = st.registry_error or st.load_errors.get("champion")
            if why is None and st.registry_ok:
                why = f"the registry has no 'champion' alias for {settings.params.project.model_name} yet (make run trains and promotes one)"
            info["reason"] = "no verified, warmed champion yet" + (f": {why}" if why else "")
            return reply(info, 503)
        return reply(info)

    @app.get("/version")
    async def version() -> Any:
        return reply({"model_name": settings.params.project.model_name, **server.store.describe(), "rollout": server.rollout.describe()})

    @app.get("/metrics")
    async def metrics() -> Any:
        return Response(generate_latest(server.metrics.registry), media_type=CONTENT_TYPE_LATEST, headers={VERSION_HEADER: champion_version()})

    def authorised(request: Request) -> Any:
        """None when the caller may change the server's state, else the refusal."""
        if not sp.reload_any_host and _client_host(request) not in LOOPBACK:
            return reply({"error": "reload and rollout actions are accepted from loopback only (serve.reload_any_host)"}, 403)
        token = os.environ.get("PIPELINES_RELOAD_TOKEN", "")
        if not token:
            return reply({"error": f"reload and rollout actions are disabled: set {TOKEN_ENV} for the server"}, 403)
        if not hmac.compare_digest(request.headers.get("authorization", "").encode(), f"Bearer {token}".encode()):
            return reply({"error": f"missing or wrong bearer token (Authorization: Bearer ${TOKEN_ENV})"}, 401)
        return None

    @app.post("/reload", summary="Check the registry's aliases now (bearer token)")
    async def reload(request: Request) -> Any:
        refused = authorised(request)
        if refused is not None:
            return refused
        return reply(await asyncio.to_thread(server.poll))

    @app.get("/rollout")
    async def rollout_status() -> Any:
        return reply(server.rollout.describe())

    @app.post("/rollout/{action}", summary="check now, or pause, resume, advance or abort the challenger's rollout (bearer token)")
    async def rollout_action(action: str, request: Request) -> Any:
        refused = authorised(request)
        if refused is not None:
            return refused
        reason = request.query_params.get("reason", "")
        if action == "check":  # the rollout DAG's schedule: judge guardrails and outcomes now
            await asyncio.to_thread(server.check_rollout, True)
            return reply(server.rollout.describe())
        try:
            rec = server.rollout.act(action, time.time(), reason)
        except ValueError as exc:
            return reply({"error": str(exc)}, 409 if "no rollout" in str(exc) else 400)
        server._publish_rollout()
        await asyncio.to_thread(server.record, rec)
        return reply(rec)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Any:
        return reply({"error": str(exc.detail)}, exc.status_code)

    return app


WORKER_ENV = "PIPELINES_SERVE_WORKER"  # how uvicorn's worker processes find their settings (set by serve)


def worker_app() -> Any:
    """The app of one worker process: ``uvicorn --workers`` imports this factory in each."""
    import json

    from pipelines.config import load_settings
    from pipelines.log import setup

    setup()
    cfg = json.loads(os.environ[WORKER_ENV])
    return create_app(_with_remote_reload(load_settings(cfg["params"]), cfg["reload_any_host"]))


def _with_remote_reload(settings: Settings, reload_any_host: bool | None) -> Settings:
    if reload_any_host is None:
        return settings
    return Settings(settings.params.model_copy(update={"serve": settings.params.serve.model_copy(update={"reload_any_host": reload_any_host})}), settings.root)


def serve(settings: Settings, host: str | None = None, port: int | None = None, reload_any_host: bool | None = None,
          workers: int = 1, params_file: str | None = None) -> None:
    """Run the server in the foreground until interrupted (uvicorn). With ``workers`` > 1,
    uvicorn's supervisor runs that many processes on one socket and replaces one that dies;
    each worker has its own models, poller, rollout and metrics (a scrape sees one worker)."""
    import json

    import uvicorn

    settings = _with_remote_reload(settings, reload_any_host)  # a container's server is reached from other containers
    sp = settings.params.serve
    host, port = host or sp.host, port or sp.port
    if host not in LOOPBACK:
        log.warning("serving on %s: reachable from other machines (serve.host)", host)
    log.info("serving %s on http://%s:%s with %d worker(s) (docs at /docs, metrics at /metrics)", settings.params.project.model_name, host, port, workers)
    if workers <= 1:
        uvicorn.run(create_app(settings), host=host, port=port, log_level="warning", access_log=False)
        return
    params = str(Path(params_file).resolve()) if params_file else str(settings.root / "params.yaml")
    os.environ[WORKER_ENV] = json.dumps({"params": params, "reload_any_host": reload_any_host})
    uvicorn.run("pipelines.serving.server:worker_app", factory=True, host=host, port=port, workers=workers,
                log_level="warning", access_log=False)
