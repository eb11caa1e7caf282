"""The soak's parts (tests/faults/test_soak.py, and the same soak against the PostgreSQL tracking
server in tests/integration/test_postgres_topology.py): many days of batches through the
scoring DAG's steps in one long-lived process, then concurrent CLI runs on one store."""

from __future__ import annotations

import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

from tests.support.project import Project

ROWS = 2000

SOAK = r'''
import json, sys, time, traceback
from datetime import date, timedelta
import psutil
from pipelines.ops import tasks
first, days = date.fromisoformat(sys.argv[1]), int(sys.argv[2])
proc = psutil.Process()
for i in range(days):
    day = first + timedelta(days=i)
    t0 = time.perf_counter()
    try:
        tasks.land_batch(day)
        tasks.validate_batch(day)
        rows = tasks.score(day)["rows"]
        tasks.drift_day(day)
        error = None
    except Exception as exc:  # counted, not hidden: the test asserts there are none
        rows, error = 0, traceback.format_exc(limit=3)
    print(json.dumps({"day": day.isoformat(), "rows": rows, "seconds": time.perf_counter() - t0,
                      "rss_mb": proc.memory_info().rss / 2**20, "error": error}), flush=True)
'''


def soak_days(proj: Project, first: str, days: int) -> list[dict]:
    """``days`` days from ``first`` through land/validate/score/drift in one worker process; its
    per-day log (rows, seconds, RSS, error). Asserts zero errors and no memory growth."""
    script = proj.root / ".soak.py"  # a file, not `python -c` (pyspark's doctest guard; see test_retries)
    script.write_text(SOAK)
    out = subprocess.run([sys.executable, str(script), first, str(days)], cwd=proj.root, capture_output=True, text=True,
                         env={**proj.env, "PIPELINES_ROOT": str(proj.root), "PYTHONPATH": str(proj.root)}, timeout=3600)
    assert out.returncode == 0, out.stderr[-3000:]
    log = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    assert len(log) == days
    errors = [r for r in log if r["error"]]
    assert not errors, errors[0]["error"]
    settled = log[min(2, days - 1)]["rss_mb"]  # after the imports and the first days' caches
    growth = log[-1]["rss_mb"] - settled
    assert growth < 150, f"memory grew {growth:.0f} MB over {days} days: {[round(r['rss_mb']) for r in log]}"
    return log


def concurrent_cli(proj: Project, day: str) -> list[list[str]]:
    """Readers and two scorers and a drift job at once on one store; zero errors, one row per id."""
    cmds = [["status", "--json"]] * 4 + [["score", "--date", day]] * 2 + [["drift", "--date", day]]
    with ThreadPoolExecutor(len(cmds)) as pool:
        results = list(pool.map(lambda c: proj.cli(*c, ok=False), cmds))
    failed = [(c, r.stderr[-500:]) for c, r in zip(cmds, results, strict=True) if r.returncode != 0]
    assert not failed, failed
    import pandas as pd

    assert pd.read_parquet(proj.root / "data" / "predictions" / f"{day}.parquet")["customer_id"].is_unique
    return cmds


def soak_summary(log: list[dict], cmds: list[list[str]], store: str) -> str:
    days, rows, seconds = len(log), sum(r["rows"] for r in log), sum(r["seconds"] for r in log)
    settled = log[min(2, days - 1)]["rss_mb"]
    return (f"{days} days x {ROWS} rows: {rows / seconds:.0f} rows/s ({seconds / days:.1f} s a day), 0 errors; "
            f"RSS {log[0]['rss_mb']:.0f} MB after day 1, {settled:.0f} MB after day {min(3, days)}, "
            f"{log[-1]['rss_mb']:.0f} MB at the end; "
            f"then {len(cmds)} concurrent CLI runs on {store}, 0 errors")
