"""Off-path scoring in its own process: the shadow (and a canary's champion) never takes the GIL
that the response path needs.

A challenger in shadow scores every request the champion answers. In the server's process
that scoring (the frame, the ColumnTransformer, the ensemble) holds the interpreter lock for
milliseconds per call, and the request threads wait for it: measured, shadow mode tripled the
champion's p99 (BENCHMARKS.md). Here it runs in a child process of its own, on the other core,
at a lower CPU priority (``nice``), through the same feature path as everything else
(``model_input`` then ``predict_scores``: the same bits as batch scoring).

The server's off-path thread sends a batch of queued requests (their checked rows) and waits for
the answer; the child scores the batch in one call, and when that call raises, each request
alone, so an error is counted against the request that caused it. A model is sent (pickled)
once per loaded version. If the child dies (a challenger that crashes the interpreter, the OOM
killer) or does not answer within ``timeout_s``, that batch counts as failed calls of the model
that was scoring, and the next batch starts a new child: the server process is never at risk.
"""

from __future__ import annotations

import logging
import os
import pickle
import time
from typing import Any

import numpy as np

from pipelines.config import DataParams
from pipelines.errors import first_line

log = logging.getLogger(__name__)
NICE = 5  # the child yields the CPU to the response path when both want it
START_RETRY_S = 30.0  # a child that could not start is tried again after this long
KEPT_MODELS = 4  # the child keeps this many models (champion, challenger, a previous pair)

# one answer per request of a batch: (scores, milliseconds of the call that computed them, error)
Result = tuple[np.ndarray | None, float, str | None]


def score_jobs(model: Any, jobs: list[list[dict[str, Any]]], data: DataParams, chunk_rows: int) -> list[Result]:
    """Checked rows of several requests scored in one call (pure given the model); when that
    call raises, each request alone, so each error belongs to the request that caused it."""
    from pipelines.model.features import model_input, predict_scores
    from pipelines.serving.payload import frame_of

    t0 = time.perf_counter()
    try:
        scores = predict_scores(model, model_input(frame_of([r for rows in jobs for r in rows], data), data), chunk_rows)
    except Exception as exc:  # noqa: BLE001 - returned to the request(s) it belongs to
        if len(jobs) == 1:
            return [(None, (time.perf_counter() - t0) * 1000, first_line(exc) or type(exc).__name__)]
        return [r for rows in jobs for r in score_jobs(model, [rows], data, chunk_rows)]
    ms = (time.perf_counter() - t0) * 1000
    out: list[Result] = []
    at = 0
    for rows in jobs:
        out.append((scores[at : at + len(rows)], ms, None))
        at += len(rows)
    return out


def _child(conn: Any, data: DataParams, chunk_rows: int, threads: int) -> None:
    """The child's loop: ("model", key, pickled model) and ("score", key, jobs) messages until
    the server closes the pipe (or dies: the pipe closes with it)."""
    try:
        os.nice(NICE)
    except OSError as exc:  # not allowed here: run at the same priority
        log.debug("off-path scorer keeps its priority: %s", exc)
    models: dict[str, Any] = {}
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            break
        if msg[0] == "model":
            try:
                models[msg[1]] = pickle.loads(msg[2])  # noqa: S301 - from the server that loaded and hash-verified it
            except Exception as exc:  # noqa: BLE001 - told to the server, which fails this model's calls
                conn.send(("refused", first_line(exc) or type(exc).__name__))
                continue
            while len(models) > KEPT_MODELS:
                models.pop(next(iter(models)))
            if threads > 0:  # after the load: threadpoolctl limits the OpenMP/BLAS runtimes loaded so far
                from threadpoolctl import threadpool_limits

                threadpool_limits(limits=min(threads, os.cpu_count() or threads))
            conn.send(("ok", None))
        elif msg[0] == "score":
            conn.send(("scores", score_jobs(models[msg[1]], msg[2], data, chunk_rows)))
        else:
            break
    conn.close()
    os._exit(0)  # as every command of this package (pipelines/__main__.py): no interpreter teardown


class OffpathScorer:
    """The server's handle on the child: ``score`` starts it when needed, sends a model the
    first time it is used and returns one :data:`Result` per request. One caller at a time
    (the server's off-path thread)."""

    def __init__(self, data: DataParams, chunk_rows: int, threads: int, timeout_s: float = 60.0) -> None:
        self.data, self.chunk_rows, self.threads, self.timeout_s = data, chunk_rows, threads, timeout_s
        self.proc: Any = None
        self.conn: Any = None
        self.sent: list[str] = []
        self.refused: dict[str, str] = {}  # models that cannot go off path, and why
        self.starts = 0
        self.start_failed: tuple[float, str] = (0.0, "")  # (no new try before, why it failed)

    def _start(self) -> None:
        import multiprocessing

        ctx = multiprocessing.get_context("spawn")  # never fork a process that runs threads
        mine, theirs = ctx.Pipe()
        proc = ctx.Process(target=_child, args=(theirs, self.data, self.chunk_rows, self.threads), name="offpath-scorer", daemon=True)
        try:
            proc.start()
        except BaseException:
            mine.close()
            raise
        finally:
            theirs.close()
        self.proc, self.conn, self.sent = proc, mine, []
        self.starts += 1
        log.info("off-path scorer process started (pid %s)", self.proc.pid)

    def _call(self, msg: tuple[Any, ...]) -> Any:
        self.conn.send(msg)
        if not self.conn.poll(self.timeout_s):
            raise TimeoutError(f"no answer in {self.timeout_s:g} s")
        return self.conn.recv()

    def score(self, key: str, model: Any, jobs: list[list[dict[str, Any]]]) -> list[Result]:
        """Each request's off-path scores by ``model`` (known to the child as ``key``)."""
        import cloudpickle  # as MLflow logs models: a class defined by value travels too

        t0 = time.perf_counter()
        if key in self.refused:
            return [(None, 0.0, self.refused[key])] * len(jobs)
        if self.proc is None or not self.proc.is_alive():
            if time.monotonic() < self.start_failed[0]:  # it could not start a moment ago: not again yet
                return [(None, 0.0, self.start_failed[1])] * len(jobs)
            try:
                self._start()
            except Exception as exc:  # noqa: BLE001 - no child (e.g. a daemonic server process): these calls fail, counted
                why = f"cannot start the off-path scorer process: {first_line(exc) or type(exc).__name__}"
                log.error("%s (next try in %g s)", why, START_RETRY_S)
                self.close()
                self.start_failed = (time.monotonic() + START_RETRY_S, why)
                return [(None, 0.0, why)] * len(jobs)
        try:
            if key not in self.sent:
                try:
                    answer = self._call(("model", key, cloudpickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL)))
                except (pickle.PicklingError, TypeError, AttributeError) as exc:  # cannot be pickled: its calls fail, the child lives on
                    answer = ("refused", first_line(exc) or type(exc).__name__)
                if answer[0] == "refused":
                    self.refused[key] = f"the off-path scorer cannot load this model: {answer[1]}"
                    log.error("%s", self.refused[key])
                    return [(None, 0.0, self.refused[key])] * len(jobs)
                self.sent = [*self.sent, key][-KEPT_MODELS:]
            return self._call(("score", key, jobs))[1]
        except (EOFError, OSError, TimeoutError) as exc:
            why = f"the off-path scorer process failed: {first_line(exc) or type(exc).__name__}"
            log.warning("%s; a new one starts with the next batch", why)
            self.close()
            return [(None, (time.perf_counter() - t0) * 1000, why)] * len(jobs)

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
        if self.proc is not None:
            self.proc.join(timeout=2)  # it leaves at once when the pipe closes, unless busy or hung
            if self.proc.is_alive():
                self.proc.kill()
                self.proc.join(timeout=5)
        self.proc = self.conn = None
        self.sent = []
