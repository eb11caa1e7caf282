"""Named fault-injection points for the fault suite (tests/faults/).

A failpoint is a place in a step where a real crash is worth testing: between "version
registered" and "alias moved", say. With ``PIPELINES_FAILPOINT=<name>`` in its environment, a
process that reaches the point SIGKILLs itself there, as the OOM killer or a lost node would:
no exception, no clean-up, no atexit. Without the variable a failpoint costs one dict lookup.
(The pattern is FreeBSD's and TiKV's "failpoints".)
"""

from __future__ import annotations

import os
import signal

ENV = "PIPELINES_FAILPOINT"


def failpoint(name: str) -> None:
    """SIGKILL this process here if ``PIPELINES_FAILPOINT`` names this point."""
    if os.environ.get(ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)
