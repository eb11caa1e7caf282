"""The training-run marker: one training runner per project at a time, and the drift job's brake.

The training DAG and `make run` claim the marker (``claim_in_flight``) before they train and
release it after (``release_in_flight``); the drift job reads it (``in_flight``) and does not
request a retrain while one is in flight. Every claim and release happens under one lock file.
"""

from __future__ import annotations

import json
from datetime import UTC
from pathlib import Path
from typing import Any

from pipelines.config import Settings
from pipelines.errors import PipelineError
from pipelines.failpoint import failpoint
from pipelines.io import atomic_path, file_lock

IN_FLIGHT_MARKER = ".retrain_in_flight"


def in_flight(marker: Path) -> bool | str:
    """What the training DAG's marker says is in flight (its run id and since when), or False."""
    from datetime import datetime

    try:
        since = datetime.fromtimestamp(marker.stat().st_mtime, UTC).strftime("%Y-%m-%d %H:%M UTC")
        text = marker.read_text()
    except FileNotFoundError:
        return False  # none, or cleared by the training DAG just now
    try:
        held = json.loads(text)
        run_id = held.get("run_id") or "unknown run"
    except (ValueError, AttributeError):
        held, run_id = {}, "unreadable marker"
    from pipelines.tracking import OWNER_TAG, owner_alive

    if owner_alive(held.get(OWNER_TAG)) is False:
        return False  # a `make run` killed mid-training: nothing is in flight (the next claim takes it over)
    return f"training run {run_id} since {since}; marker {marker}"


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
    later runner can tell whether it is still alive; a training DAG run spans several task
    processes and records none. A marker held by a live process is respected: wait up to
    ``wait_s`` for it, then fail with one line naming it. ``exclusive`` (`make run`): a DAG run's
    marker is respected too. A dead process's marker is taken over, with a warning; a DAG run's
    marker is taken over by the next DAG run (max_active_runs=1: that run has ended).

    Every claim and release decides and writes under one lock (``_marker_lock``), so of any
    number of runners that find the same marker at once, one claims it and the others see it
    claimed. Readers (the drift job's brake) need no lock: the marker is replaced whole.
    """
    import logging
    import time

    from pipelines.tracking import OWNER_TAG, owner_alive, owner_tag

    log = logging.getLogger(__name__)
    marker = in_flight_marker(settings)
    body = json.dumps({"run_id": run_id, **(owner_tag() if process else {})})
    deadline, waited = time.monotonic() + wait_s, False
    while True:
        seen = _holder(marker)
        if seen is not None and seen.get("run_id") != run_id and owner_alive(seen.get(OWNER_TAG)) is False:
            failpoint("in_flight:takeover")  # the holder seen dead; the claim below looks again, under the lock
        with file_lock(_marker_lock(settings)):
            held = _holder(marker)  # look again: what decides is what the marker says under the lock
            alive = None if held is None else owner_alive(held.get(OWNER_TAG))
            if held is None or held.get("run_id") == run_id or alive is False or (alive is None and not exclusive):
                if held is not None and alive is False and held.get("run_id") != run_id:
                    log.warning("taking over the training marker of %s: that process is gone", held.get("run_id"))
                with atomic_path(marker) as tmp:
                    tmp.write_text(body)
                return
        what = in_flight(marker)
        if not what:
            continue  # released, or its process died, since our look under the lock
        if time.monotonic() >= deadline:
            raise PipelineError(
                f"another training run is in flight ({what}): wait for it to finish, or delete the marker if that run is dead"
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
