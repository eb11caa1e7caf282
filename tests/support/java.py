"""Java for the tests that run Spark (Spark 4 needs Java 17 or newer)."""

from __future__ import annotations

import os
import shutil

import pytest

from tests.support.system import apt_get_install


def ensure_java() -> None:
    """Spark 4 needs Java 17+: the machine's, else Debian's headless JRE (CI is Debian, as root)."""
    if shutil.which("java") or os.environ.get("JAVA_HOME"):
        return
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        pytest.fail("Java 17+ is missing and cannot be installed here: install Debian's `openjdk-17-jre-headless`")
    ok, why = apt_get_install(["openjdk-17-jre-headless"])
    assert ok, why
    assert shutil.which("java"), "apt-get installed openjdk-17-jre-headless but no java is on PATH"
