"""The training-run marker: one training runner per project at a time, and the drift job's brake.

The training DAG and `make run` claim the marker (``claim_in_flight``) before they train and
release it after (``release_in_flight``); the drift job reads it (``in_flight``) and does not
request a retrain while one is in flight; a training stage started by hand (`dvc repro`,
`dvc exp run`) refuses while another runner holds it (``check_stage``). Every claim and release
happens under one lock file.

A marker whose holder is gone is taken over by the next claim, whoever left it. `make run`
records its process (host, pid, start time): when that process has ended, its marker is dead.
A training DAG run spans several task processes, none of which outlives the run, so its marker
holds a lease instead (``lease_until``, UTC epoch seconds): each of its stage tasks renews the
lease when it starts and, from a heartbeat thread, every third of the lease while it works
(``holding_in_flight``), so a long stage keeps it. A scheduler that died, or a run an operator
marked failed (its final clear task never runs), stops renewing it: once the lease has run out,
nothing is in flight, and the next claim takes the marker over with one warning naming the old
holder. The lease (``LEASE_S``, or $PIPELINES_TRAINING_LEASE_S in seconds) is far longer than
the gap between two tasks of one run, and bounds how long a dead run blocks `make run`.
"""

from __future__ import annotations

import json
import logging
import math
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pipelines.config import Settings
from pipelines.errors import PipelineError
from pipelines.failpoint import failpoint
from pipelines.io import atomic_path, file_lock

log = logging.getLogger(__name__)

IN_FLIGHT_MARKER = ".retrain_in_flight"
LEASE_S = 900.0  # how long a training DAG run's marker stays valid without renewal
LEASE_ENV = "PIPELINES_TRAINING_LEASE_S"  # overrides LEASE_S (seconds)
# The run id of the runner that started a stage command: the stage passes the marker's check
# when it names the run holding the marker (set by the runners for the `dvc` they start).
TRAINING_RUN_ENV = "PIPELINES_TRAINING_RUN"


def lease_s() -> float:
    """The lease of a training DAG run's marker, in seconds: $PIPELINES_TRAINING_LEASE_S or ``LEASE_S``."""
    raw = os.environ.get(LEASE_ENV, "").strip()
    if not raw:
        return LEASE_S
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise PipelineError(f"{LEASE_ENV} must be a number of seconds above 0, got {raw!r}")
    return value


def _utc(epoch: float, fmt: str = "%Y-%m-%d %H:%M UTC") -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime(fmt)


def _number(held: dict[str, Any], key: str) -> float | None:
    value = held.get(key)
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    return float(value) if ok else None


def _gone(held: dict[str, Any], now: float) -> str | None:
    """Why the holder of a marker is gone (its process ended, its lease ran out), or None while
    it may still be working (a live process, a lease still running, or nothing to tell by)."""
    from pipelines.tracking import OWNER_TAG, owner_alive

    alive = owner_alive(held.get(OWNER_TAG))
    if alive is False:
        return "that process is gone"
    until = _number(held, "lease_until")
    if alive is None and until is not None and until <= now:
        ran_out = _utc(until, "%Y-%m-%d %H:%M:%S UTC")
        return f"its lease ran out at {ran_out} (nothing renewed it: its scheduler died, or the run was stopped)"
    return None


def _describe(held: dict[str, Any], marker: Path) -> str | None:
    """``training run <id> since <when>[, lease until <when>]; marker <path>`` (None: the marker just went)."""
    since = _number(held, "since")
    if since is None:  # no start recorded (a marker written by hand): its last write
        try:
            since = marker.stat().st_mtime
        except FileNotFoundError:
            return None
    until = _number(held, "lease_until")
    lease = f", lease until {_utc(until, '%H:%M:%S UTC')}" if until is not None else ""
    return f"training run {held.get('run_id') or 'unknown run'} since {_utc(since)}{lease}; marker {marker}"


def in_flight(marker: Path) -> bool | str:
    """What the marker says is in flight (its run id and since when), or False: no marker, or
    one whose holder is gone (a dead process, a lease run out)."""
    held = _holder(marker)
    if held is None or _gone(held, time.time()):
        return False
    return _describe(held, marker) or False


def set_in_flight(settings: Settings, run_id: str | None) -> None:
    """Mark a retrain as started (``run_id``) or finished (None); the drift job reads it."""
    if run_id is None:
        with file_lock(_marker_lock(settings)):
            in_flight_marker(settings).unlink(missing_ok=True)
    else:
        claim_in_flight(settings, run_id)


def in_flight_marker(settings: Settings) -> Path:
    return settings.reports_dir / "drift" / IN_FLIGHT_MARKER


def _holder(marker: Path) -> dict[str, Any] | None:
    try:
        held = json.loads(marker.read_text())
    except FileNotFoundError:
        return None
    except ValueError:
        return {"run_id": "unreadable marker"}
    return held if isinstance(held, dict) else {"run_id": "unreadable marker"}


def _marker_lock(settings: Settings) -> Path:
    """The lock file held around every claim and release of the training marker."""
    marker = in_flight_marker(settings)
    return marker.with_name(f"{marker.name}.lock")


def claim_in_flight(
    settings: Settings, run_id: str, *, process: bool = False, exclusive: bool = False, wait_s: float = 0.0
) -> None:
    """Mark the training run ``run_id`` in flight: one training runner per project at a time.

    ``process``: the holder is this process (`make run`), so its marker records the owner and a
    later runner can tell whether it is still alive. Otherwise (a training DAG run, which spans
    several task processes) the marker holds a lease of ``lease_s()`` from now; claiming again
    as the same run renews it. A marker held by a live process, or by another DAG run whose lease
    runs, is respected: wait up to ``wait_s`` for it, then fail with one line naming it.
    ``exclusive`` (`make run`, a renewal): a DAG run's marker is respected too; otherwise it is
    taken over (max_active_runs=1: that run has ended). A marker whose holder is gone (a dead
    process, a lease run out) is taken over, with a warning naming the old holder.

    Every claim and release decides and writes under one lock (``_marker_lock``), so of any
    number of runners that find the same marker at once, one claims it and the others see it
    claimed. Readers (the drift job's brake) need no lock: the marker is replaced whole.
    """
    from pipelines.tracking import OWNER_TAG, owner_alive, owner_tag

    marker = in_flight_marker(settings)
    lease = lease_s()
    deadline, waited = time.monotonic() + wait_s, False
    while True:
        seen = _holder(marker)
        if seen is not None and seen.get("run_id") != run_id and _gone(seen, time.time()):
            failpoint("in_flight:takeover")  # the holder seen gone; the claim below looks again, under the lock
        with file_lock(_marker_lock(settings)):
            held = _holder(marker)  # look again: what decides is what the marker says under the lock
            now = time.time()
            ours = held is not None and held.get("run_id") == run_id
            gone = None if held is None or ours else _gone(held, now)
            cannot_tell = held is not None and owner_alive(held.get(OWNER_TAG)) is None
            if held is None or ours or gone or (cannot_tell and not exclusive):
                if gone and held is not None:
                    log.warning("taking over the training marker of %s: %s", held.get("run_id"), gone)
                since = _number(held, "since") if held is not None and ours else None  # a renewal keeps its start
                body: dict[str, Any] = {"run_id": run_id, "since": now if since is None else since}
                body.update(owner_tag() if process else {"lease_until": now + lease})
                with atomic_path(marker) as tmp:
                    tmp.write_text(json.dumps(body))
                return
        what = in_flight(marker)
        if not what:
            continue  # released, or its holder went, since our look under the lock
        if time.monotonic() >= deadline:
            leased = held is not None and _number(held, "lease_until") is not None
            raise PipelineError(
                f"another training run is in flight ({what}): wait for it to finish, or "
                + ("for its lease to run out if that run is gone" if leased else "delete the marker if that run is dead")
            )
        if not waited:
            log.info("waiting for the other training run to finish: %s", what)
            waited = True
        time.sleep(2)


def release_in_flight(settings: Settings, run_id: str) -> None:
    """Clear the marker if ``run_id`` holds it (never another runner's)."""
    marker = in_flight_marker(settings)
    with file_lock(_marker_lock(settings)):
        held = _holder(marker)
        if held is not None and held.get("run_id") == run_id:
            marker.unlink()


@contextmanager
def as_runner(run_id: str) -> Iterator[None]:
    """Name ``run_id`` in $PIPELINES_TRAINING_RUN for the block: the stage commands this process
    starts (`dvc repro` inherits the environment) pass ``check_stage`` as that run's."""
    before = os.environ.get(TRAINING_RUN_ENV)
    os.environ[TRAINING_RUN_ENV] = run_id
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(TRAINING_RUN_ENV, None)
        else:
            os.environ[TRAINING_RUN_ENV] = before


@contextmanager
def holding_in_flight(settings: Settings, run_id: str) -> Iterator[None]:
    """Hold the marker as the training DAG run ``run_id`` while the block (one stage task) runs.

    Renews the lease now (a marker another live runner took over fails here, naming it; none at
    all is claimed again), then every third of the lease from a heartbeat thread, so a stage of
    any length keeps it; and names the run for the stage commands (``as_runner``). The heartbeat
    stops with the block, or with its process: then the lease runs out (see the module docstring).
    """
    claim_in_flight(settings, run_id, exclusive=True)
    stop = threading.Event()
    interval = lease_s() / 3

    def renew() -> None:
        while not stop.wait(interval):
            try:
                claim_in_flight(settings, run_id, exclusive=True)
            except (PipelineError, OSError) as exc:
                log.warning("no longer renewing the training marker of %s: %s", run_id, exc)
                return

    beat = threading.Thread(target=renew, name=f"training marker lease of {run_id}", daemon=True)
    beat.start()
    try:
        with as_runner(run_id):
            yield
    finally:
        stop.set()
        beat.join()


def check_stage(settings: Settings, stage: str) -> None:
    """Refuse, with one line, to run a training stage beside a training run that holds the
    marker: a `dvc repro` or `dvc exp run` typed by hand would change what that run trains and
    promotes. Its own stages pass (they name the run in $PIPELINES_TRAINING_RUN); with no
    marker, or one whose holder is gone, any stage runs."""
    marker = in_flight_marker(settings)
    held = _holder(marker)
    mine = os.environ.get(TRAINING_RUN_ENV)
    if held is None or (mine and held.get("run_id") == mine):
        return
    what = in_flight(marker)
    if what:
        raise PipelineError(
            f"a training run is in flight ({what}): not running the `{stage}` stage beside it; "
            "wait for it to finish, then run it again"
        )
