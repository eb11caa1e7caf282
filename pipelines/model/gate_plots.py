"""The gate's plot data: candidate and champion on the same holdout, as DVC plots read them.

One JSON file (a list of records) per plot and model in ``metrics/plots/``: ``<plot>_candidate.json``
and ``<plot>_champion.json``. dvc.yaml's top-level ``plots:`` draws each pair on one chart, so
``dvc plots show`` gives both models of one revision and ``dvc plots diff main <exp>`` both models
of both revisions. The files are small (curves thinned to at most ``MAX_POINTS`` points) because
git keeps them with each experiment. A model the gate has no scores for (no champion yet, a
candidate that crashed) gets empty lists: the charts show what was measured.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from pipelines.io import write_json

PLOTS = ("roc", "precision_recall", "calibration", "scores", "slices")
MODELS = ("candidate", "champion")
MAX_POINTS = 200  # per curve: enough to draw it, small enough to commit with every experiment
CALIBRATION_BINS = 10  # equal-width bins of the predicted probability
SCORE_BINS = 20  # equal-width bins of the score on [0, 1]

Records = list[dict[str, Any]]


def _thin(records: Records) -> Records:
    """At most MAX_POINTS records, evenly spaced, the first and last kept."""
    if len(records) <= MAX_POINTS:
        return records
    keep = np.unique(np.linspace(0, len(records) - 1, MAX_POINTS).round().astype(int))
    return [records[i] for i in keep]


def _r(x: float) -> float:
    return round(float(x), 6)


def roc_points(y: np.ndarray, p: np.ndarray) -> Records:
    """The ROC curve: false and true positive rates at every distinct threshold."""
    from sklearn.metrics import roc_curve

    fpr, tpr, _ = roc_curve(y, p, drop_intermediate=True)
    return _thin([{"fpr": _r(f), "tpr": _r(t)} for f, t in zip(fpr, tpr, strict=True)])


def precision_recall_points(y: np.ndarray, p: np.ndarray) -> Records:
    """The precision-recall curve, by increasing recall."""
    from sklearn.metrics import precision_recall_curve

    precision, recall, _ = precision_recall_curve(y, p, drop_intermediate=True)
    points = [{"recall": _r(r), "precision": _r(q)} for r, q in zip(recall[::-1], precision[::-1], strict=True)]
    return _thin(points)


def calibration_points(y: np.ndarray, p: np.ndarray) -> Records:
    """Reliability: per bin of predicted probability, the mean prediction and the observed rate."""
    edges = np.linspace(0, 1, CALIBRATION_BINS + 1)
    idx = np.clip(np.digitize(p, edges[1:-1]), 0, CALIBRATION_BINS - 1)
    out = []
    for b in range(CALIBRATION_BINS):
        m = idx == b
        if m.any():
            out.append({"mean_predicted": _r(p[m].mean()), "observed_rate": _r(y[m].mean()), "rows": int(m.sum())})
    return out


def score_points(p: np.ndarray) -> Records:
    """The score distribution: the share of holdout rows per score bin (bin centres on [0, 1])."""
    counts, edges = np.histogram(np.clip(p, 0, 1), bins=SCORE_BINS, range=(0, 1))
    total = max(int(counts.sum()), 1)
    return [{"score": _r((lo + hi) / 2), "share": _r(c / total)} for lo, hi, c in zip(edges[:-1], edges[1:], counts, strict=True)]


def slice_points(slices: dict[str, dict[str, Any]]) -> Records:
    """Per-slice AUC (slices with one class, whose AUC is undefined, are left out)."""
    return [
        {"slice": name, "roc_auc": _r(s["roc_auc"]), "rows": int(s["rows"])}
        for name, s in slices.items()
        if s["rows"] and not np.isnan(s["roc_auc"])
    ]


def plot_data(y: np.ndarray, p: np.ndarray | None, slices: dict[str, dict[str, Any]] | None) -> dict[str, Records]:
    """Every plot's records for one model (empty lists when it has no scores)."""
    if p is None:
        return {name: [] for name in PLOTS}
    y, p = np.asarray(y).astype("int64"), np.asarray(p, dtype="float64")
    finite = np.isfinite(p)  # a candidate that scores NaN is blocked by the checks; its curves show the rest
    y, p = y[finite], p[finite]
    two_classes = 0 < y.sum() < len(y)
    return {
        "roc": roc_points(y, p) if two_classes else [],
        "precision_recall": precision_recall_points(y, p) if two_classes else [],
        "calibration": calibration_points(y, p),
        "scores": score_points(p),
        "slices": slice_points(slices or {}),
    }


def write_plots(folder: Path, data: dict[str, dict[str, Records]]) -> list[str]:
    """Write ``data[model][plot]`` for both models (a missing model: empty lists); the file names."""
    written = []
    for model in MODELS:
        records = data.get(model) or {}
        for plot in PLOTS:
            path = folder / f"{plot}_{model}.json"
            write_json(records.get(plot, []), path)
            written.append(path.name)
    return written
