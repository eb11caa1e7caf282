"""Task-sized entry points for the Airflow DAGs: each one call, small JSON-able results.

Kept free of Airflow imports so the same functions run from a test or a shell. Every
function is keyed by an explicit day (the DAG passes the logical date), never by now().
"""

from __future__ import annotations

import subprocess
import sys
from datetime import date, datetime
from typing import Any

from pipelines.config import Settings, load_settings
from pipelines.errors import PipelineError
from pipelines.io import find_partition, parse_date

DVC_STAGES = ("prepare", "validate_training", "train", "evaluate", "promote")


def settings() -> Settings:
    return load_settings()


def resolve_day(conf_day: str | None, logical: datetime | None, run_after: datetime | None) -> date:
    """The day a run works on: conf 'day' if given, else the logical date, else run_after."""
    if conf_day:
        return parse_date(conf_day)
    when = logical or run_after
    if when is None:
        raise PipelineError("no day to work on: pass {'day': 'YYYY-MM-DD'} in the run's conf")
    return when.date()


def land_batch(day: date, scenario: str | None = None) -> str:
    """Make sure the day's raw batch is there. With simulated data, simulate it (the demo feed)."""
    s = settings()
    existing = find_partition(s.raw_dir, day)
    if existing is not None and scenario is None:
        return str(existing)
    if s.p.data.raw_dir != "data/raw":
        if existing is not None:
            return str(existing)
        raise PipelineError(f"no batch for {day} in {s.raw_dir} (expected {day}.parquet or {day}.csv)")
    from pipelines.simulate import simulate

    simulate(s, start=day.isoformat(), days=1, scenario=scenario, scenario_start=day.isoformat())  # type: ignore[arg-type]
    return str(find_partition(s.raw_dir, day))


def validate_day(day: date) -> dict[str, Any]:
    """Validate the day's batch; a failure raises (the task fails, downstream does not run)."""
    from pipelines.validate import validate_batch

    s = settings()
    if find_partition(s.raw_dir, day) is None and (s.quarantine_dir / day.isoformat()).is_dir():
        raise PipelineError(
            f"batch {day} is in quarantine ({s.quarantine_dir / day.isoformat()}): it failed validation; "
            "fix the feed, put the file back in the raw folder and re-run"
        )
    res = validate_batch(s, day)
    return {"day": res["day"], "rows": res["rows"], "validated": res["validated"], "report": res["report"]}


def dvc_stage(stage: str) -> dict[str, Any]:
    """Run one stage of dvc.yaml with the real dvc CLI (skipped by DVC when nothing changed)."""
    if stage not in DVC_STAGES:
        raise PipelineError(f"unknown stage {stage!r}; dvc.yaml has {', '.join(DVC_STAGES)}")
    from pipelines.cycle import tool_env

    s = settings()
    env = tool_env(s.root)
    proc = subprocess.run(
        [sys.executable, "-m", "dvc", "repro", "--single-item", stage],
        cwd=s.root,
        env=env,
        capture_output=True,
        text=True,
    )
    print(proc.stdout[-20000:], proc.stderr[-20000:], sep="\n")
    if proc.returncode != 0:
        last = [line for line in (proc.stderr or proc.stdout).strip().splitlines() if line.strip()]
        raise PipelineError(f"dvc stage {stage} failed (exit {proc.returncode}): {last[-1] if last else 'no output'}")
    return {"stage": stage, "ran": f"Running stage '{stage}'" in proc.stdout}


def retrain_in_flight(run_id: str | None) -> None:
    """Mark (run_id) or clear (None) a training run in flight; see pipelines/drift.py."""
    from pipelines.drift import set_in_flight

    set_in_flight(settings(), run_id)


def gate_summary() -> dict[str, Any]:
    from pipelines.io import read_json

    from pipelines.evaluate import format_decision

    decision = read_json(settings().reports_dir / "gate" / "decision.json")
    print(format_decision(decision))
    return {"passed": decision["passed"], "candidate_roc_auc": decision["candidate"]["roc_auc"], "reasons": decision["reasons"]}


def promote(override: bool = False, justification: str = "") -> dict[str, Any]:
    """Register the candidate through DVC, or with a justified override of a failed gate."""
    from pipelines.registry import promote_candidate

    if override:
        if not justification.strip():
            raise PipelineError("overriding the gate needs a written justification (the 'justification' param)")
        out = promote_candidate(settings(), override_reason=justification)
    else:
        dvc_stage("promote")
        from pipelines.io import read_json

        out = read_json(settings().reports_dir / "gate" / "registration.json")
    from pipelines.reproduce import push_training_data

    # The version's training data goes to the DVC remote, so `reproduce` can fetch it anywhere.
    print(push_training_data(settings(), out["version"]))
    return out


def score_day(day: date) -> dict[str, Any]:
    from pipelines.score import score

    res = score(settings(), day)
    return {k: res[k] for k in ("day", "rows", "model_version", "mean_score", "predictions")}


def drift_day(day: date) -> dict[str, Any]:
    from pipelines.drift import drift

    res = drift(settings(), day)
    print(f"drift {day}: retrain {'DUE' if res['retrain'] else 'not due'} - {res['reason']}")
    return {k: res[k] for k in ("day", "retrain", "drifted_features", "reason", "champion_version", "report_html")}


def drift_days(days: list[str], conf_day: str | None, logical: datetime | None, run_after: datetime | None) -> dict[str, Any]:
    """Drift for every day whose predictions triggered this run (several events can be merged
    into one run); retraining is due if any of them drifted."""
    targets = [parse_date(d) for d in days] or [resolve_day(conf_day, logical, run_after)]
    results = [drift_day(d) for d in targets]
    due = [r for r in results if r["retrain"]]
    chosen = due[-1] if due else results[-1]
    return {**chosen, "days_checked": [r["day"] for r in results]}


def measure_matured_days() -> list[dict[str, Any]]:
    """Real performance of every predicted day whose labels matured and is not measured yet."""
    from pipelines.io import partition_files
    from pipelines.performance import performance

    s = settings()
    done = {p.stem for p in (s.reports_dir / "performance").glob("20*.json")}
    labelled = partition_files(s.labels_dir)
    out = []
    for day in partition_files(s.predictions_dir):
        if day in labelled and day.isoformat() not in done:
            res = performance(s, day)
            print(f"{day}: live ROC AUC {res.get('live_roc_auc')} on {res['matched_rows']} rows (model v{res['model_versions']})")
            out.append({"day": res["day"], "live_roc_auc": res.get("live_roc_auc"), "rows": res["matched_rows"]})
    if not out:
        predicted = partition_files(s.predictions_dir)
        waiting = [d for d in predicted if d not in labelled]
        print(
            f"nothing new to measure: {len(predicted)} predicted day(s), {len(predicted) - len(waiting)} with matured labels"
            + (" (all measured already)" if len(predicted) > len(waiting) else "")
            + f", {len(waiting)} waiting for labels"
            + (f" in {s.labels_dir} (earliest: {min(waiting)})" if waiting else ""),
            file=sys.stderr,
        )
    return out
