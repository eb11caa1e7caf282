"""Drift of a day's batch against the champion's training reference, with Evidently.

PSI per feature comes from Evidently's DataDriftPreset(method="psi"); the same numbers go into
the HTML report people read and the JSON summary that decides retraining. The reference is
the training sample logged with the champion's run, so the comparison always follows the
model that is serving now.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd

from pipelines.config import Settings
from pipelines.errors import PipelineError
from pipelines.features import model_input
from pipelines.io import read_frame, write_json


def psi_from_snapshot(snapshot: dict[str, Any]) -> dict[str, float]:
    """Per-column PSI from an Evidently snapshot dict (pure)."""
    out: dict[str, float] = {}
    for m in snapshot.get("metrics", []):
        cfg = m.get("config", {})
        if cfg.get("type", "").endswith("ValueDrift") and cfg.get("method") == "psi":
            out[cfg["column"]] = float(m["value"])
    return out


def retrain_decision(psi: dict[str, float], threshold: float) -> dict[str, Any]:
    """Which features drifted past the threshold, and whether retraining is due (pure)."""
    drifted = sorted((c for c, v in psi.items() if v > threshold), key=lambda c: -psi[c])
    return {
        "retrain": bool(drifted),
        "drifted_features": drifted,
        "reason": (
            f"PSI above {threshold} on " + ", ".join(f"{c} ({psi[c]:.3f})" for c in drifted)
            if drifted
            else f"no feature has PSI above {threshold}"
        ),
    }


def champion_reference(settings: Settings) -> tuple[pd.DataFrame, Any]:
    import mlflow

    from pipelines.evaluate import current_alias

    champion = current_alias(settings, "champion")
    if champion is None:
        raise PipelineError(f"model {settings.p.project.model_name} has no champion yet: nothing to compare against")
    local = mlflow.artifacts.download_artifacts(run_id=champion.run_id, artifact_path="reference/reference.parquet")
    return read_frame(Path(local)), champion


def drift(settings: Settings, day: date) -> dict[str, Any]:
    """Compare the validated batch of ``day`` with the champion's reference; write HTML + JSON."""
    from evidently import Report
    from evidently.presets import DataDriftPreset

    from pipelines.tracking import setup_mlflow

    d, dp = settings.p.data, settings.p.drift
    src = settings.validated_dir / f"{day.isoformat()}.parquet"
    if not src.is_file():
        raise PipelineError(f"no validated batch for {day} ({src} missing): run `validate --date {day}` first")
    setup_mlflow(settings)
    reference, champion = champion_reference(settings)
    current = model_input(read_frame(src), d)
    missing = [c for c in reference.columns if c not in current.columns]
    if missing:
        raise PipelineError(f"batch {day} lacks reference columns {missing}")
    reference = reference.head(dp.max_reference_rows)
    snapshot = Report([DataDriftPreset(method="psi", threshold=dp.psi_threshold)]).run(current, reference)
    psi = psi_from_snapshot(snapshot.dict())
    decision = retrain_decision(psi, dp.psi_threshold)
    out_dir = settings.reports_dir / "drift"
    out_dir.mkdir(parents=True, exist_ok=True)
    html = out_dir / f"{day.isoformat()}.html"
    tmp = out_dir / f".{day.isoformat()}.html.tmp"
    snapshot.save_html(str(tmp))
    tmp.replace(html)
    summary = {
        "day": day.isoformat(),
        "champion_version": str(champion.version),
        "psi_threshold": dp.psi_threshold,
        "psi": {k: round(v, 6) for k, v in sorted(psi.items())},
        **decision,
        "report_html": str(html),
        "current_rows": int(len(current)),
        "reference_rows": int(len(reference)),
    }
    write_json(summary, out_dir / f"{day.isoformat()}.json")
    return summary
