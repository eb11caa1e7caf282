"""A real Prometheus Alertmanager for the tests (Debian's `prometheus-alertmanager`): on loopback,
alone (no cluster), with a route to a receiver that sends nothing, so what it was told stays
queryable at ``GET /api/v2/alerts``."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.support.system import apt_get_install, free_port

PACKAGE = "prometheus-alertmanager"
# Every alert goes to one receiver with no integration: kept, shown, sent nowhere.
CONFIG = "route:\n  receiver: nowhere\nreceivers:\n  - name: nowhere\n"


def ensure_alertmanager() -> str:
    """The Alertmanager binary: the machine's, else Debian's package (CI is Debian, as root)."""
    found = shutil.which(PACKAGE) or shutil.which("alertmanager")
    if found:
        return found
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        pytest.fail(f"Alertmanager is missing and cannot be installed here: install Debian's `{PACKAGE}`")
    ok, why = apt_get_install([PACKAGE])
    assert ok, why
    found = shutil.which(PACKAGE)
    assert found, f"apt-get installed {PACKAGE} but it is not on PATH"
    return found


@contextmanager
def alertmanager(folder: Path, timeout_s: float = 60) -> Iterator[str]:
    """A real Alertmanager with its config and storage in ``folder``, started now and stopped on
    exit; yields its base URL (``http://127.0.0.1:<port>``). Its log is ``folder/alertmanager.log``."""
    binary = ensure_alertmanager()
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "alertmanager.yml").write_text(CONFIG)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log_path = folder / "alertmanager.log"
    cmd = [
        binary, f"--config.file={folder / 'alertmanager.yml'}", f"--storage.path={folder / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address=",  # empty: alone, no gossip port
    ]
    with log_path.open("ab") as log:  # the process keeps its own handle
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log, start_new_session=True)
    try:
        _wait_ready(url, proc, log_path, timeout_s)
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)


def _wait_ready(url: str, proc: subprocess.Popen[bytes], log_path: Path, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"Alertmanager exited ({proc.returncode}): {log_path.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(url + "/-/ready", timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"Alertmanager not ready at {url} within {timeout_s}s: {log_path.read_text()[-2000:]}")


def alerts(url: str, alertname: str | None = None) -> list[dict[str, Any]]:
    """The alerts Alertmanager at ``url`` holds now (``GET /api/v2/alerts``), of ``alertname`` if given."""
    query = f"?filter=alertname%3D%22{alertname}%22" if alertname else ""
    with urllib.request.urlopen(url + "/api/v2/alerts" + query, timeout=10) as resp:
        return json.loads(resp.read())
