"""What the tests take from the machine, safe when `make test` runs them in several worker
processes at once (pytest-xdist): loopback ports and Debian packages."""

from __future__ import annotations

import fcntl
import os
import random
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from typing import Any

# Each worker takes ports from a band of its own, below Linux's ephemeral range (32768-60999):
# no other worker, and no client connection's local port, can be handed the same port between
# the test's check and its server's bind.
PORT_BASE, BAND = 20_000, 1_000
_GIVEN: set[int] = set()


def worker_index() -> int:
    """0, 1, ... for pytest-xdist's gw0, gw1, ...; 10 outside xdist."""
    name = os.environ.get("PYTEST_XDIST_WORKER", "")
    return int(name[2:]) % 10 if name.startswith("gw") and name[2:].isdigit() else 10


def free_port() -> int:
    """A loopback port free now, from this worker's band, never handed out twice by this process."""
    lo = PORT_BASE + BAND * worker_index()
    start = random.randrange(BAND)  # noqa: S311 - spreading ports, not a secret
    for k in range(BAND):
        port = lo + (start + k) % BAND
        if port in _GIVEN:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _GIVEN.add(port)
        return port
    raise RuntimeError(f"no free loopback port in {lo}-{lo + BAND - 1}")


def apt_get_install(packages: Sequence[str], timeout: float = 900, options: Sequence[str] = ()) -> tuple[bool, str]:
    """`apt-get update` then `apt-get install` of ``packages`` (CI is a clean Debian machine, as
    root), one worker at a time: two at once fail on dpkg's lock. (ok, the failing command's
    last stderr)."""
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    with open("/tmp/pipelines-tests-apt.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        install = ["apt-get", "install", "-y", "-q", "--no-install-recommends", *options, *packages]
        for cmd in (["apt-get", "update", "-q"], install):
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
            if proc.returncode != 0:
                return False, f"`{' '.join(cmd)}` failed: {proc.stderr.strip()[-2000:]}"
    return True, ""


def wait_for(what: Callable[[], Any], timeout: float, message: str, every: float = 0.2) -> Any:
    """Call ``what`` every ``every`` seconds until it returns something truthy (returned), or
    fail with ``message`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = what()
        if got:
            return got
        time.sleep(every)
    raise AssertionError(message)
