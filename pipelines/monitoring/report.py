"""The drift job's report and metrics: the Evidently HTML report and the Prometheus samples.

The report is built on bounded samples (for its histograms) with a registered stat test, "PSI
(frozen training bins)", that returns the exact full-batch PSI the drift job computed, so the
report cannot show a different value for the same feature. The metrics carry the same
unrounded numbers as the day's summary.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from pipelines.config import Settings
from pipelines.errors import PipelineError
from pipelines.io import atomic_path
from pipelines.model.champion import champion_reference
from pipelines.telemetry import Sample

_REPORT_PSI: dict[str, float] = {}  # what the registered Evidently stat test returns, per column


def psi_from_snapshot(snapshot: dict[str, Any]) -> dict[str, float]:
    """Per-column drift score from an Evidently snapshot dict (pure)."""
    out: dict[str, float] = {}
    for m in snapshot.get("metrics", []):
        cfg = m.get("config", {})
        if cfg.get("type", "").endswith("ValueDrift"):
            out[cfg["column"]] = float(m["value"])
    return out

def _register_report_stattest() -> str:
    from evidently.legacy.calculations.stattests.registry import StatTest, register_stattest
    from evidently.legacy.core import ColumnType

    def frozen_psi(reference: pd.Series, current: pd.Series, feature_type: Any, threshold: float) -> tuple[float, bool]:
        value = _REPORT_PSI[str(reference.name)]
        return value, value > threshold

    test = StatTest(
        name="frozen_psi",
        display_name="PSI (frozen training bins, full batch)",
        allowed_feature_types=[ColumnType.Numerical, ColumnType.Categorical],
        default_threshold=0.2,
    )
    register_stattest(test, default_impl=frozen_psi)
    return test.name


def write_report(
    current_sample: pd.DataFrame, reference_sample: pd.DataFrame, psi: dict[str, float], threshold: float, dest: Path
) -> dict[str, float]:
    """Evidently HTML report whose drift scores are exactly ``psi``; returns what it shows."""
    from evidently import Report
    from evidently.presets import DataDriftPreset

    _REPORT_PSI.clear()
    _REPORT_PSI.update(psi)
    method = _register_report_stattest()
    cols = [c for c in psi if c in current_sample.columns and c in reference_sample.columns]
    snapshot = Report([DataDriftPreset(columns=cols, method=method, threshold=threshold)]).run(
        current_sample[cols], reference_sample[cols]
    )
    with atomic_path(dest) as tmp:
        snapshot.save_html(str(tmp))
    return psi_from_snapshot(snapshot.dict())


def write_day_report(settings: Settings, sample: list[pd.DataFrame], psi: dict[str, float], html: Path) -> None:
    """The Evidently HTML report; it must show exactly the deciding numbers."""
    from pipelines.model.features import model_input

    dp = settings.params.drift
    reference_sample, _ = champion_reference(settings)
    current_sample = (
        model_input(pd.concat(sample, ignore_index=True), settings.params.data) if sample else reference_sample.head(0)
    )
    shown = write_report(current_sample, reference_sample.head(dp.report_sample_rows), psi, dp.psi_threshold, html)
    if any(abs(shown[c] - psi[c]) > 0 for c in shown):
        raise PipelineError("the Evidently report shows PSI values different from the computed ones")


def drift_samples(summary: dict[str, Any]) -> list[Sample]:
    """The day's drift metrics (pipelines/telemetry.py): the same unrounded numbers as the summary."""
    labels = {"day": summary["day"], "champion_version": summary["champion_version"]}
    out: list[Sample] = [
        ("pipelines_drift_psi", {"feature": feature, **labels}, value) for feature, value in summary["psi"].items()
    ]
    if summary.get("score_psi") is not None:  # a day without the champion's scores has no such metric at all
        out.append(("pipelines_drift_score_psi", labels, summary["score_psi"]))
    out.append(("pipelines_drift_retrain_due", labels, 1 if summary.get("retrain") else 0))
    if summary.get("psi_threshold") is not None:
        out.append(("pipelines_drift_psi_threshold", {}, summary["psi_threshold"]))
    return out
