"""A real browser for the UI tests: Debian's Chromium driven by Playwright through
``executable_path``. Nothing downloads a browser build of its own (`playwright install` is
never run); on a machine where Chromium cannot be installed, the test skips and says why."""

from __future__ import annotations

import os
import shutil

import pytest

from tests.support.system import apt_get_install

CHROMIUM = "/usr/bin/chromium"
# Headless, no sandbox (tests run as root), and no background connections: this machine's
# closed network refuses them, many at a time.
ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


def ensure_chromium() -> str:
    """Debian's Chromium: the machine's, else installed with apt-get (CI is Debian, as root)."""
    if os.path.exists(CHROMIUM):
        return CHROMIUM
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        pytest.skip(f"{CHROMIUM} is missing and cannot be installed here (needs root and apt-get): install Debian's `chromium`")
    ok, why = apt_get_install(["chromium"])
    if not ok:
        pytest.skip(f"there is no browser to test the UI with: {why[-400:]}")
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"apt-get installed chromium but {CHROMIUM} is not there")
    return CHROMIUM
