"""Load held: a bounded soak on loopback. Many days of batches go through the scoring DAG's
steps (land, validate, score, drift) in one long-lived process, as a worker would run them,
then concurrent CLI runs hit the SQLite store at once. Zero errors, and memory at the end no
higher than after the first days (no growth per day).

Short form in `make test` (SOAK_DAYS=8); `make test-long` runs SOAK_DAYS=60. Figures are printed
and recorded in the faults table; nothing here asserts a timing.
"""

from __future__ import annotations

import os
import sys

import pytest

from tests.support.project import Project
from tests.support.soak import ROWS, concurrent_cli, soak_days, soak_summary

pytestmark = pytest.mark.integration


def test_days_of_batches_then_concurrent_cli_runs(trained: Project, record) -> None:
    proj = trained
    days = int(os.environ.get("SOAK_DAYS", "8"))
    proj.run(sys.executable, "-m", "pipelines", "simulate", "--start", "2026-01-15", "--days", "1", "--rows", str(ROWS))
    log = soak_days(proj, "2026-01-15", days)
    cmds = concurrent_cli(proj, log[-1]["day"])
    summary = soak_summary(log, cmds, "the SQLite store")
    print(summary)
    record(
        f"soak: {days} days of land/validate/score/drift in one worker process, "
        f"then {len(cmds)} concurrent CLI runs (SQLite store)",
        days + len(cmds),
        summary,
        "nothing",
    )
