"""The faults table (tests/faults/results.md and .json, git-ignored; the docs' "Faults we
survive"): one row per fault, added by the tests that inject it (the `record` fixture, or
RESULTS directly in the Airflow and PostgreSQL suites).

Under pytest-xdist each worker process holds the rows of its own tests: a worker hands them to
the controller (``workeroutput``), which merges them and writes the table once (tests/conftest.py).
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

RESULTS: dict[str, dict[str, object]] = defaultdict(lambda: {"injections": 0, "outcome": "", "lost": ""})
WORKER_KEY = "fault_results"
OUT = Path(__file__).resolve().parents[1] / "faults" / "results.md"  # beside the fault tests


def add(results: dict[str, dict[str, object]], fault: str, injections: int, outcome: str, lost: str) -> None:
    row = results.setdefault(fault, {"injections": 0, "outcome": "", "lost": ""})
    row["injections"] = int(row["injections"]) + injections  # type: ignore[call-overload]
    row["outcome"], row["lost"] = outcome, lost


def merge(into: dict[str, dict[str, object]], rows_json: str) -> None:
    """A worker's rows into the controller's (injections of the same fault add up)."""
    for fault, row in json.loads(rows_json).items():
        add(into, fault, int(row["injections"]), str(row["outcome"]), str(row["lost"]))


def write(results: dict[str, dict[str, object]]) -> None:
    if not results:
        return
    lines = ["| fault | injections | outcome | what was lost |", "| --- | --- | --- | --- |"]
    lines += [f"| {fault} | {row['injections']} | {row['outcome']} | {row['lost']} |" for fault, row in results.items()]
    OUT.write_text("\n".join(lines) + "\n")
    OUT.with_suffix(".json").write_text(json.dumps(results, indent=2))
