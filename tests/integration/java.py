"""Java for the tests that run Spark (Spark 4 needs Java 17 or newer)."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest


def ensure_java() -> None:
    """Spark 4 needs Java 17+: the machine's, else Debian's headless JRE (CI is Debian, as root)."""
    if shutil.which("java") or os.environ.get("JAVA_HOME"):
        return
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        pytest.fail("Java 17+ is missing and cannot be installed here: install Debian's `openjdk-17-jre-headless`")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q", "--no-install-recommends", "openjdk-17-jre-headless"]):
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
        assert proc.returncode == 0, f"{' '.join(cmd)} failed: {proc.stderr[-2000:]}"
    assert shutil.which("java"), "apt-get installed openjdk-17-jre-headless but no java is on PATH"
