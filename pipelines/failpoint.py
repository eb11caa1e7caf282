"""Named fault-injection points for the fault suite (tests/faults/).

A failpoint is a place in a step where a real crash is worth testing: between "version
registered" and "alias moved", say. With ``PIPELINES_FAILPOINT=<name>`` in its environment, a
process that reaches the point SIGKILLs itself there, as the OOM killer or a lost node would:
no exception, no clean-up, no atexit. Without the variable a failpoint costs one dict lookup.
(The pattern is FreeBSD's and TiKV's "failpoints".)

With ``PIPELINES_FAILPOINT_ACTION=pause`` the process instead stops at the point and waits, so
a test can break something *mid-step* (stop the tracking server, fill the disk) at a known
place: it writes ``<name>.reached`` (its pid) into ``PIPELINES_FAILPOINT_DIR`` and carries on
once ``<name>.go`` appears there (or after ``PIPELINES_FAILPOINT_TIMEOUT`` seconds, 600).
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

ENV = "PIPELINES_FAILPOINT"
ACTION_ENV = "PIPELINES_FAILPOINT_ACTION"
DIR_ENV = "PIPELINES_FAILPOINT_DIR"
TIMEOUT_ENV = "PIPELINES_FAILPOINT_TIMEOUT"


def handshake_files(name: str, folder: Path) -> tuple[Path, Path]:
    """The (reached, go) files of a paused failpoint ``name`` in ``folder``."""
    stem = name.replace(":", "-")
    return folder / f"{stem}.reached", folder / f"{stem}.go"


def failpoint(name: str) -> None:
    """SIGKILL this process here (or pause, see the module doc) if ``PIPELINES_FAILPOINT`` names this point."""
    if os.environ.get(ENV) != name:
        return
    if os.environ.get(ACTION_ENV, "kill") != "pause":
        os.kill(os.getpid(), signal.SIGKILL)
        return
    reached, go = handshake_files(name, Path(os.environ.get(DIR_ENV, ".")))
    reached.write_text(str(os.getpid()))
    deadline = time.monotonic() + float(os.environ.get(TIMEOUT_ENV, "600"))
    while not go.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
