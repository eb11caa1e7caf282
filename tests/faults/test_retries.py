"""Retries are idempotent: every Airflow task's entry point (pipelines/ops/tasks.py), run twice
for the same day, leaves byte-identical outputs, or differs only where the difference is
explained (a timestamp saying when it ran). One registered version per candidate, no
duplicated prediction row."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from tests.support.invariants import assert_consistent, registry_state
from tests.support.params import SHARED_MACHINE_GATE
from tests.support.project import Project, build_project

pytestmark = pytest.mark.integration
DAY = "2026-01-15"  # a day the project has not seen: land_batch simulates it
# What may differ between two runs of the same task: when it ran, how long it took, and the
# random ids Great Expectations gives each validation, checkpoint and expectation.
WHEN = {"validated_at", "evaluated_at", "scored_at", "checked_at", "generated_at", "duration_s", "seconds",
        "run_time", "validation_time", "ge_load_time", "id", "validation_id", "checkpoint_id"}


def task(proj: Project, call: str) -> Any:
    """One task entry point, in its own process, as an Airflow worker runs it."""
    # A script file, not `python -c`: with pyspark installed, GE imports pyspark.sql.connect,
    # whose doctest guard calls sys.exit(0) when __main__ has no __file__ (pyspark 4).
    script = proj.root / ".task.py"
    script.write_text(
        f"import json\nfrom datetime import date\nfrom pipelines.ops import tasks\nprint(json.dumps({call}, default=str))\n"
    )
    out = subprocess.run(
        [sys.executable, str(script)],
        cwd=proj.root,
        env={**proj.env, "PIPELINES_ROOT": str(proj.root), "PYTHONPATH": str(proj.root)},
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert out.returncode == 0, f"{call} failed:\n{out.stderr[-2000:]}"
    return json.loads(out.stdout.strip().splitlines()[-1])


def files(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*")) if p.is_file()}


def without_times(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: without_times(v) for k, v in obj.items() if k not in WHEN}
    if isinstance(obj, list):
        return [without_times(v) for v in obj]
    return obj


@pytest.fixture(scope="module")
def proj(tmp_path_factory: pytest.TempPathFactory) -> Project:
    proj = build_project(tmp_path_factory.mktemp("retry") / "repo", days=14, rows=500, code=True)
    for key, value in SHARED_MACHINE_GATE.items():
        proj.set_param(key, value)
    return proj


def test_every_task_twice_for_the_same_day(proj: Project, record) -> None:
    day = f"date.fromisoformat('{DAY}')"
    calls = [
        f"tasks.land_batch({day})", f"tasks.validate_batch({day})",
        f"tasks.prepare({day})", "tasks.validate_training()", "tasks.train()",
        "tasks.gate()", "tasks.promote()", f"tasks.score({day})", f"tasks.drift_day({day})", "tasks.performance()",
    ]
    explained: dict[str, str] = {}
    for call in calls:
        first = task(proj, call)
        snap = files(proj.root / "data")
        before_json = {
            str(p.relative_to(proj.root / "data")): json.loads(p.read_text()) for p in (proj.root / "data").rglob("*.json")
        }
        before_text = {str(p.relative_to(proj.root / "data")): p.read_text() for p in (proj.root / "data").rglob("*.prom")}
        versions = registry_state(proj)["versions"] if (proj.root / "mlflow.db").exists() else {}
        second = task(proj, call)
        if call.startswith(("tasks.prepare", "tasks.validate_training", "tasks.train")):
            assert second["ran"] is False, f"{call}: DVC ran the stage again"
        elif call == "tasks.promote()":
            # the same version, role and verdict; the retry's `dvc push` has nothing left to send
            assert second["pushed"]["pushed"] == "Everything is up to date."
            assert {**second, "pushed": None} == {**first, "pushed": None}, f"{call}: results differ"
        elif call != "tasks.performance()":
            assert without_times(second) == without_times(first), f"{call}: results differ"
        changed = {k for k, v in files(proj.root / "data").items() if snap.get(k) != v}
        for path in sorted(changed):
            if path.endswith(".json"):
                now = json.loads((proj.root / "data" / path).read_text())
                assert without_times(now) == without_times(before_json.get(path)), f"{call}: {path} differs beyond its timestamps"
                explained[path] = "run times and Great Expectations' random ids"
            elif path.endswith(".html"):
                explained[path] = "Evidently's random element ids (same numbers)"
            elif path.startswith("predictions/"):
                explained[path] = "scored_at"
            elif path.startswith("reports/metrics/freshness_"):
                # the time of the step's last success: a retry that succeeds is a later success
                text = (proj.root / "data" / path).read_text()
                assert re.sub(r"\} \S+", "}", text) == re.sub(r"\} \S+", "}", before_text[path]), f"{call}: {path} differs"
                explained[path] = "the time of the step's last success"
            else:
                raise AssertionError(f"{call}: {path} changed on a retry, unexplained")
        assert registry_state(proj)["versions"] == versions or not versions, f"{call}: a retry registered a version"
    pred = pd.read_parquet(proj.root / "data" / "predictions" / f"{DAY}.parquet")
    assert pred["customer_id"].is_unique
    raw = pd.read_parquet(proj.root / "data" / "raw" / f"{DAY}.parquet")
    assert len(pred) == len(raw)
    assert_consistent(registry_state(proj))
    record(
        "every Airflow task run twice for the same day (retry)",
        len(calls),
        "same results; files byte-identical except "
        + "; ".join(sorted({f"{p.split('/')[0]}: {why}" for p, why in explained.items()})),
        "nothing; no duplicated prediction row, one version per candidate",
    )
