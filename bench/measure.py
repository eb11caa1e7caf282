"""Shared by the benchmarks: run a child process and measure its own peak memory."""

from __future__ import annotations

import subprocess
import tempfile
import time
from pathlib import Path


def vmhwm_mb(pid: int) -> float:
    """The process's own peak RSS (VmHWM). Not ru_maxrss: on Linux that also counts the
    parent's memory the child saw between fork and exec, which inflates every child's figure."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass  # the process has just exited; the last reading stands
    return 0.0


def run_measured(cmd: list[str], env: dict[str, str], cwd: Path) -> tuple[float, float, str, str]:
    """Run a child; return (wall seconds, peak RSS in MB, stdout, stderr); exit on failure."""
    with tempfile.TemporaryFile(mode="w+") as out_f, tempfile.TemporaryFile(mode="w+") as err_f:
        t = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=out_f, stderr=err_f, text=True)
        peak = 0.0
        while proc.poll() is None:
            peak = max(peak, vmhwm_mb(proc.pid))
            time.sleep(0.05)
        wall = time.perf_counter() - t
        out_f.seek(0)
        err_f.seek(0)
        out, err = out_f.read(), err_f.read()
    if proc.returncode != 0:
        raise SystemExit(f"{cmd[:4]} failed ({proc.returncode}): {err[-2000:]}")
    return wall, peak, out, err
