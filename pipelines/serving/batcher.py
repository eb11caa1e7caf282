"""The response path's dynamic batcher: the champion's requests that arrive while the model is
busy are scored together in one predict call, the same bits as one by one. The server runs two
lanes of it, one scorer thread each: one for requests of up to ``BULK_ROWS`` rows, one for
larger ones."""

from __future__ import annotations

import os
import queue
import threading
import time
from concurrent.futures import Future
from typing import Any

import numpy as np

from pipelines.model.features import score_frame
from pipelines.serving.metrics import Metrics
from pipelines.serving.payload import columns_of, frame_of

# a request's scores, the milliseconds of the call, how many requests it scored, and its inputs:
# the columns scored (payload.columns_of) and where its rows start in them (the prediction log
# slices them when it flushes)
Scored = tuple[np.ndarray, float, int, tuple[dict[str, Any], int]]
BULK_ROWS = 64  # a champion request of more rows is batched in a lane of its own (one scorer thread each),
                # so a 1000-row request never holds up the single-row ones queued behind it


def limit_threads(threads: int) -> None:
    """Cap the calling thread's OpenMP/BLAS pools at ``threads`` (serve.threads; 0: no cap)."""
    if threads > 0:
        from threadpoolctl import threadpool_limits

        threadpool_limits(limits=min(threads, os.cpu_count() or threads))


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

    def predict(self, model: Any, rows: list[dict[str, Any]]) -> tuple[np.ndarray, float, dict[str, Any]]:
        """Checked rows through the one feature path; the scores, the call's milliseconds and
        the columns the frame was built from (the prediction log keeps the request's inputs)."""
        t0 = time.perf_counter()
        columns = columns_of(rows, self.data)
        scores = score_frame(model, frame_of(rows, self.data, columns), self.data, self.chunk_rows)
        if len(scores) != len(rows):  # a model error, not a request to log cut short
            raise ValueError(f"the model returned {len(scores)} scores for {len(rows)} rows")
        return scores, (time.perf_counter() - t0) * 1000, columns

    def alone(self, model: Any, rows: list[dict[str, Any]]) -> Scored:
        """:meth:`predict` as a call of this one request: what :meth:`score` returns."""
        scores, ms, columns = self.predict(model, rows)
        return scores, ms, 1, (columns, 0)

    def score(self, model: Any, rows: list[dict[str, Any]]) -> Scored:
        """The scores of checked ``rows`` by ``model``, the milliseconds of the call that
        computed them (not the wait before it), how many requests that call scored and the
        request's inputs in the columns it scored (:data:`predlog.Inputs`); raises what the model
        raised. Never waits on scorers that are gone: once the server stops, a request still
        waiting is scored here."""
        if not self.running:  # no scorer threads (a server not started, or stopping): score here
            return self.alone(model, rows)
        from concurrent.futures import TimeoutError as Pending

        done = self.submit(model, rows)
        while True:
            try:
                return done.result(timeout=1.0)
            except Pending:
                if self.stop.is_set():
                    return self.alone(model, rows)

    def submit(self, model: Any, rows: list[dict[str, Any]]) -> Future[Scored]:
        """Queue checked rows for the scorer threads; the future of what :meth:`score` returns.
        The event loop awaits it (``asyncio.wrap_future``) with no request thread in between."""
        done: Future[Scored] = Future()
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
            scores, ms, columns = self.predict(group[0][0], group[0][1] if len(group) == 1 else [r for j in group for r in j[1]])
        except BaseException as exc:  # noqa: BLE001 - handed to the request(s) it belongs to, which answer for it
            if len(group) == 1:
                err = exc if isinstance(exc, Exception) else RuntimeError(f"the model raised {type(exc).__name__}: {exc}")
                group[0][2].set_exception(err)
            else:
                for job in group:
                    self._run([job])
            return
        self.metrics.batch_requests.observe(len(group))
        at = 0
        for _, x, done in group:
            done.set_result((scores[at : at + len(x)], ms, len(group), (columns, at)))
            at += len(x)
