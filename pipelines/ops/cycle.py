"""The whole daily cycle once, on embedded defaults: what `make run` does.

simulate -> validate every new day -> `dvc repro` (prepare, validate_training, train,
gate) -> promote + push -> score the latest day -> drift on the latest day -> a summary.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from pipelines.config import Settings
from pipelines.errors import PipelineError
from pipelines.io import partition_files

log = logging.getLogger(__name__)


def run(settings: Settings) -> dict[str, Any]:
    """The whole cycle once (the `run` command, `make run`): simulate, validate every new day,
    `dvc repro` and promote + push, then score and check drift on the latest day."""
    from pipelines.data.simulate import simulate
    from pipelines.data.validate import DAILY_SUITE, TRAINING_SUITE, load_suite
    from pipelines.data.validate_modes import validate_new_days
    from pipelines.model.status import status
    from pipelines.monitoring.drift import drift
    from pipelines.monitoring.inflight import as_runner, claim_in_flight, release_in_flight
    from pipelines.ops.promote import promote_and_push
    from pipelines.ops.stages import dvc_repro
    from pipelines.serving.score import score

    for suite in (DAILY_SUITE, TRAINING_SUITE):  # a broken suite fails here, before any work
        load_suite(settings, suite)
    # One training runner per project, from the start: a training DAG run in flight makes this
    # fail at once with one line naming it (before any data work); a DAG run that starts
    # meanwhile waits for this one (monitoring/inflight.py). The stages `dvc repro` runs pass the
    # marker's check as this run's (as_runner).
    runner = f"of `make run` (pid {os.getpid()})"
    claim_in_flight(settings, runner, process=True, exclusive=True)
    try:
        if settings.params.data.source == "simulated":
            log.info("simulating daily batches (seeded; unchanged files are left alone)")
            sim = simulate(settings)
            log.info("%d batches, %d matured label files", len(sim["batches"]), len(sim["labels"]))
        log.info("validating new batches with Great Expectations")
        val = validate_new_days(settings)
        log.info("validated %d new day(s), %d quarantined", len(val["passed"]), len(val["failed"]))
        log.info("dvc repro: prepare -> validate_training -> train -> gate -> promote")
        with as_runner(runner):
            dvc_repro(settings, "gate")
            promote_and_push(settings)
    finally:
        release_in_flight(settings, runner)
    days = list(partition_files(settings.validated_dir))
    if not days:
        raise PipelineError("no validated batch to score")
    latest = days[-1]
    log.info("scoring %s with the champion", latest)
    scored = score(settings, latest)
    log.info("checking drift of %s against the champion's reference", latest)
    drifted = drift(settings, latest)
    return {"validation": val, "score": scored, "drift": drifted, "status": status(settings)}


def _num(x: float | None) -> str:
    return f"{x:.4f}" if isinstance(x, (int, float)) else "n/a"


def _rel(path: str | None) -> str:
    return os.path.relpath(path) if path else "none"


def status_lines(st: dict[str, Any], detail: bool = False) -> list[str]:
    """The registry's status for people (`status`, and the end of `make run`): champion,
    last gate, challenger; with ``detail`` also the champion history and recent versions."""
    ch = st["champion"] or {}
    lines = [
        (f"Champion: {st['model_name']} v{ch.get('version')} (holdout ROC AUC {_num(ch.get('holdout_roc_auc'))}, "
         f"train ROC AUC {_num(ch.get('train_roc_auc'))}), tracked at {st['tracking_uri']}")
        if st["champion"] else f"Champion: none for {st['model_name']}, tracked at {st['tracking_uri']}",
    ]
    dec = st.get("last_gate_decision") or {}
    if dec:
        lines.append(f"Last gate: {dec.get('verdict')}" + (f" - {'; '.join(dec['reasons'])}" if dec.get("reasons") else ""))
    if st.get("challenger"):
        lines.append(f"Challenger: v{st['challenger']['version']} ({st['challenger'].get('gate_reasons')})")
    if detail:
        lines.append(f"Champion history: {st['champion_history']}")
        for v in st.get("recent_versions", []):
            aliases = f" [{', '.join(v['aliases'])}]" if v["aliases"] else ""
            lines.append(f"  v{v['version']}{aliases}: gate {'passed' if v['gate_passed'] else 'failed'} - {v['gate_reasons']}")
        lines += [
            f"Predictions: {_rel(st.get('latest_predictions'))}",
            f"Drift report: {_rel(st.get('latest_drift_report'))}",
        ]
    return lines


def summary_lines(result: dict[str, Any]) -> list[str]:
    st, sc, dr = result["status"], result["score"], result["drift"]
    return [
        *status_lines(st),
        f"Predictions: {_rel(sc['predictions'])} ({sc['rows']} rows, model v{sc['model_version']})",
        f"Validation report: {_rel(st.get('latest_validation_report'))} ({st['validated_days']} days validated, "
        f"{len(st['quarantined_days'])} quarantined)",
        f"Drift report: {_rel(dr['report_html'])} - retrain {'DUE' if dr['retrain'] else 'not due'}: {dr['reason']}",
        "Inspect: `make mlflow-ui` then http://127.0.0.1:5000, or `.venv/bin/python -m pipelines status --json`; "
        "rebuild the champion from its lineage: `.venv/bin/python -m pipelines reproduce champion`",
    ]
