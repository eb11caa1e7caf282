"""Off-path scoring in its own process: the shadow (and a canary's champion) is scored without
taking the GIL that the response path needs.

A challenger in shadow scores every request the champion answers. In the server's process
that scoring (the frame, the ColumnTransformer, the ensemble) holds the interpreter lock for
milliseconds per call, and the request threads wait for it: measured, shadow mode added 243 ms
to the champion's p99 at 45 req/s (BENCHMARKS.md). Here it runs in a child process of its own,
at a lower CPU priority (``nice``), through the same feature path as everything else
(``model_input`` then ``predict_scores``: the same bits as batch scoring). The server's side
only pickles the rows and reads the scores back (and pickles a model once per load).

The server's off-path thread sends a batch of queued requests (their checked rows) and waits for
the answer; the child scores the batch in one call, and when that call raises, each request
alone, so an error is counted against the request that caused it. A model is sent (pickled)
the first time it is used by a child. If the child dies on a batch (a challenger that crashes
the interpreter, the OOM killer), a new one scores each request alone, so the death is blamed
on the request that caused it; a single request that kills it or runs past ``timeout_s`` is
that model's error. A child that cannot start at all (:class:`OffpathUnavailable`) is nobody's
model's fault: those requests are dropped from the comparison, counted. The server process is
never at risk, and a child never outlives it (Linux: the parent-death signal).
"""
from __future__ import annotations

import logging
import os
import pickle
import signal
import time
from typing import Any

import numpy as np

from pipelines.config import DataParams
from pipelines.errors import first_line

log = logging.getLogger(__name__)
NICE = 5  # the child yields the CPU to the response path when both want it
START_RETRY_S = 30.0  # a child that could not start is tried again after this long
KEPT_MODELS = 4  # the child keeps this many models (champion, challenger, a previous pair)

# one answer per request of a batch: (scores, milliseconds of the call that computed them,
# error, how many requests that call scored)
Result = tuple[np.ndarray | None, float, str | None, int]


class OffpathUnavailable(Exception):
    """No child to score with (it cannot start): not the model's fault, nothing is blamed on it."""


def score_jobs(model: Any, jobs: list[list[dict[str, Any]]], data: DataParams, chunk_rows: int) -> list[Result]:
    """Checked rows of several requests scored in one call (pure given the model); when that
    call raises, each request alone, so each error belongs to the request that caused it."""
    from pipelines.model.features import score_frame
    from pipelines.serving.payload import frame_of

    t0 = time.perf_counter()
    n = sum(len(rows) for rows in jobs)
    try:
        scores = score_frame(model, frame_of([r for rows in jobs for r in rows], data), data, chunk_rows)
        if len(scores) != n:
            raise ValueError(f"the model returned {len(scores)} scores for {n} rows")
    except Exception as exc:  # noqa: BLE001 - returned to the request(s) it belongs to
        if len(jobs) == 1:
            return [(None, (time.perf_counter() - t0) * 1000, first_line(exc) or type(exc).__name__, 1)]
        return [r for rows in jobs for r in score_jobs(model, [rows], data, chunk_rows)]
    ms = (time.perf_counter() - t0) * 1000
    out: list[Result] = []
    at = 0
    for rows in jobs:
        out.append((scores[at : at + len(rows)], ms, None, len(jobs)))
        at += len(rows)
    return out


def _die_with_parent() -> None:
    """Linux: the kernel kills this process when the server's thread that started it ends (the
    server exits with os._exit, so nothing else would end a child that is busy or hung)."""
    import ctypes
    import ctypes.util

    try:
        ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError) as exc:  # not Linux: the pipe's end still ends an idle child
        log.debug("off-path scorer: no parent-death signal: %s", exc)


def _child(conn: Any, data: DataParams, chunk_rows: int, threads: int) -> None:
    """The child's loop: ("model", key, pickled model) and ("score", key, jobs) messages until
    the server closes the pipe (or dies: the pipe closes with it)."""
    _die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C in a terminal is for the server, which ends this child
    try:
        os.nice(NICE)
    except OSError as exc:  # not allowed here: run at the same priority
        log.debug("off-path scorer keeps its priority: %s", exc)
    models: dict[str, Any] = {}
    try:
        while True:
            msg = conn.recv()
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
                model = models.get(msg[1])
                conn.send(("missing",) if model is None else ("scores", score_jobs(model, msg[2], data, chunk_rows)))
            else:
                break
    except (EOFError, OSError):  # the server closed the pipe, or is gone
        pass
    os._exit(0)  # as every command of this package (pipelines/cli/__init__.py): no interpreter teardown


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

        self.close()  # a child that died between batches: its pipe too
        ctx = multiprocessing.get_context("spawn")  # never fork a process that runs threads
        mine, theirs = ctx.Pipe()
        args = (theirs, self.data, self.chunk_rows, self.threads)
        proc = ctx.Process(target=_child, args=args, name="offpath-scorer", daemon=True)
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

    def _ensure_started(self) -> None:
        if self.proc is not None and self.proc.is_alive():
            return
        if time.monotonic() < self.start_failed[0]:  # it could not start a moment ago: not again yet
            raise OffpathUnavailable(self.start_failed[1])
        try:
            self._start()
        except Exception as exc:
            why = f"cannot start the off-path scorer process: {first_line(exc) or type(exc).__name__}"
            log.error("%s (next try in %g s)", why, START_RETRY_S)
            self.close()
            self.start_failed = (time.monotonic() + START_RETRY_S, why)
            raise OffpathUnavailable(why) from exc

    def _call(self, msg: tuple[Any, ...]) -> Any:
        self.conn.send(msg)
        if not self.conn.poll(self.timeout_s):
            raise TimeoutError(f"no answer in {self.timeout_s:g} s")
        return self.conn.recv()

    def _send_model(self, key: str, model: Any) -> str | None:
        """The model to the child (once per key); why it cannot go, or None."""
        import cloudpickle  # as MLflow logs models: a class defined by value travels too

        try:
            blob = cloudpickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as exc:  # noqa: BLE001 - any pickling failure: this model cannot go off path
            answer = ("refused", first_line(exc) or type(exc).__name__)
        else:
            answer = self._call(("model", key, blob))
        if answer[0] == "refused":
            self.refused[key] = f"the off-path scorer cannot load this model: {answer[1]}"
            log.error("%s", self.refused[key])
            return self.refused[key]
        self.sent = [*self.sent, key][-KEPT_MODELS:]
        return None

    def score(self, key: str, model: Any, jobs: list[list[dict[str, Any]]]) -> list[Result]:
        """Each request's off-path scores by ``model`` (known to the child as ``key``). Raises
        :class:`OffpathUnavailable` when there is no child to score with. A child that dies on
        a batch of several requests is replaced and each request is scored alone, so the death
        is blamed on the request that caused it; one that dies (or hangs past ``timeout_s``) on
        a single request is that request's error."""
        if key in self.refused:
            return [(None, 0.0, self.refused[key], 1)] * len(jobs)
        self._ensure_started()
        t0 = time.perf_counter()
        try:
            for _ in range(2):  # a second time if the child had evicted the model
                if key not in self.sent:
                    refused = self._send_model(key, model)
                    if refused is not None:
                        return [(None, 0.0, refused, 1)] * len(jobs)
                answer = self._call(("score", key, jobs))
                if answer[0] == "scores":
                    return answer[1]
                self.sent = [k for k in self.sent if k != key]
            raise OSError("the child lost the model twice")
        except (EOFError, OSError, TimeoutError) as exc:
            why = f"the off-path scorer process failed: {first_line(exc) or type(exc).__name__}"
            log.warning("%s; a new one starts with the next call", why)
            self.close()
            if len(jobs) > 1 and not isinstance(exc, TimeoutError):
                return [r for rows in jobs for r in self.score(key, model, [rows])]
            return [(None, (time.perf_counter() - t0) * 1000, why, 1)] * len(jobs)

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
