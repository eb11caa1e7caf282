"""Model loads outside the serving process: a swap under load holds no request.

Loading a version (MLflow resolving the alias, the artifact download, the hash check, skops
rebuilding the Pipeline) holds the interpreter lock for a few hundred milliseconds, and in the
serving process every request waits for it: measured at 100 req/s, a swap and a rollback held
requests for seconds (p95 1.6 s, BENCHMARKS.md). After the first load (before the server
accepts requests, so in its own process) the server's loads go to a child process, which does
all of that through the same champion store (:func:`pipelines.model.champion.load_verified`:
nothing is served unless its hash matches) and sends the verified model back pickled; the
server only unpickles it (milliseconds) and warms it.

The child starts with the first load it is asked for, at a lower CPU priority, and lives as
long as the server (Linux: the parent-death signal). A child that fails or dies during a load
fails that load with one line (the server keeps serving what it has and says why, as for any
failed load); the next load starts a new child. Where no child can start (a daemonic server
process), loads run in the server's process, as before.
"""

from __future__ import annotations

import logging
import os
import pickle
import signal
import time
from dataclasses import dataclass
from typing import Any

from pipelines.config import Settings
from pipelines.errors import PipelineError, first_line

log = logging.getLogger(__name__)
NICE = 5  # the load yields the CPU to the response path when both want it
LOAD_TIMEOUT_S = 300.0  # a registry or artifact store this slow fails the load; the server keeps serving


@dataclass(frozen=True)
class Loaded:
    """A verified version: the model and what the server reports about it."""

    model: Any
    version: str
    run_id: str
    sha256: str
    input_names: list[str] | None  # the signature's inputs (None: no signature)


def load_here(settings: Settings, alias: str) -> Loaded | None:
    """The alias's version, loaded and hash-verified in this process; None if the alias is unset."""
    from pipelines.model.champion import load_verified

    model, mv, signature = load_verified(settings, alias)
    if model is None:
        return None
    names = list(signature.inputs.input_names()) if signature is not None else None
    return Loaded(model, str(mv.version), mv.run_id or "", mv.tags.get("model_sha256", ""), names)


def _child(conn: Any, settings: Settings) -> None:
    """The loader's loop: an alias in, ("loaded", pickled Loaded) / ("none",) / ("error", line) out."""
    import cloudpickle  # as MLflow logs models: a class defined by value travels too

    from pipelines.serving.offpath import _die_with_parent
    from pipelines.tracking import point_mlflow

    _die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the server, which ends this child
    try:
        os.nice(NICE)
    except OSError as exc:
        log.debug("model loader keeps its priority: %s", exc)
    point_mlflow(settings)
    try:
        while True:
            alias = conn.recv()
            loaded = None
            try:
                loaded = load_here(settings, alias)
                answer = ("none",) if loaded is None else ("loaded", cloudpickle.dumps(loaded, protocol=pickle.HIGHEST_PROTOCOL))
            except Exception as exc:  # noqa: BLE001 - the server's load fails with this line
                answer = ("error", first_line(exc) or type(exc).__name__)
            conn.send(answer)
            del loaded, answer  # an idle child holds no model
    except (EOFError, OSError):  # the server closed the pipe, or is gone
        pass
    os._exit(0)  # as every command of this package: no interpreter teardown


class ModelLoader:
    """The server's handle on its loader child. One load at a time (the store's refresh lock)."""

    def __init__(self, settings: Settings, timeout_s: float = LOAD_TIMEOUT_S) -> None:
        self.settings, self.timeout_s = settings, timeout_s
        self.proc: Any = None
        self.conn: Any = None
        self.in_process: str | None = None  # why loads run in the server's process (a daemonic server)
        self.starts = 0
        self.closed = False  # the server is stopping: no more loads, no new child

    def _start(self) -> None:
        import multiprocessing

        self.close()
        ctx = multiprocessing.get_context("spawn")  # never fork a process that runs threads
        mine, theirs = ctx.Pipe()
        proc = ctx.Process(target=_child, args=(theirs, self.settings), name="model-loader", daemon=True)
        try:
            proc.start()
        except BaseException:
            mine.close()
            raise
        finally:
            theirs.close()
        self.proc, self.conn = proc, mine
        self.starts += 1
        log.info("model loader process started (pid %s)", proc.pid)

    def load(self, alias: str) -> tuple[Loaded | None, str]:
        """(the alias's verified version or None, where it was loaded: "loader" or "server").
        Raises PipelineError, in one line, when the load fails."""
        if self.closed:
            raise PipelineError(f"not loading {alias}: the server is stopping")
        if self.in_process is None and (self.proc is None or not self.proc.is_alive()):
            try:
                self._start()
            except Exception as exc:  # noqa: BLE001 - a daemonic server process may not have children; or out of resources
                why = first_line(exc) or type(exc).__name__
                if "daemonic" not in why:  # perhaps passing (no memory, no file handles): a child next time
                    log.warning("loading %s in the serving process: cannot start a loader process: %s", alias, why)
                    return load_here(self.settings, alias), "server"
                self.in_process = why
                log.warning("model loads run in the serving process: cannot start a loader process: %s", why)
        if self.in_process is not None:
            return load_here(self.settings, alias), "server"
        t0 = time.monotonic()
        proc = self.proc
        try:
            self.conn.send(alias)
            if not self.conn.poll(self.timeout_s):
                raise TimeoutError(f"no answer in {self.timeout_s:g} s")
            answer = self.conn.recv()
        except (EOFError, OSError, TimeoutError, AttributeError) as exc:  # AttributeError: closed by a stopping server
            self.close()  # the next load starts a new child (close waits for this one to end)
            code = proc.exitcode if proc is not None else None
            how = f" (exit code {code})" if code is not None else ""
            raise PipelineError(f"the model loader process failed loading {alias}: {first_line(exc) or type(exc).__name__}{how}") from exc
        if answer[0] == "error":
            raise PipelineError(answer[1])
        if answer[0] == "none":
            return None, "loader"
        loaded: Loaded = pickle.loads(answer[1])  # noqa: S301 - from our own child, which hash-verified the artifact
        log.info("loaded %s v%s in the loader process (%.1f s)", alias, loaded.version, time.monotonic() - t0)
        return loaded, "loader"

    def shutdown(self) -> None:
        """The server stops: end the child, and refuse loads from now on."""
        self.closed = True
        self.close()

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
        if self.proc is not None:
            self.proc.join(timeout=2)  # it leaves at once when the pipe closes, unless busy
            if self.proc.is_alive():
                self.proc.kill()
                self.proc.join(timeout=5)
        self.proc = self.conn = None
