"""Checks Great Expectations has no expectation for: label leakage and training-serving skew.

Both are pure functions of frames and return one human line per problem, in the same format
as the suite failures (column first), so the CLI and the quarantine report treat them alike.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from pipelines.config import BINARY_CLASSES, DataParams

MIN_SKEW_ROWS = 30  # fewer non-null values on either side give too noisy a median and spread to compare


def single_feature_auc(feature: pd.Series, label: pd.Series, categorical: bool) -> float:
    """How well one feature alone ranks the label (0.5 = not at all, 1.0 = perfectly).

    Numerical: the feature itself as the score. Categorical: each category's label rate.
    Missing values get their own level. Direction does not matter: max(auc, 1 - auc).
    """
    y = label.astype("int64").to_numpy()
    if categorical:
        keys = feature.astype("object").where(feature.notna(), "__missing__")
        score = keys.map(pd.Series(y, index=keys.index).groupby(keys).mean()).to_numpy(dtype="float64")
    else:
        x = pd.to_numeric(feature, errors="coerce").astype("float64")
        score = x.fillna(x.median() if x.notna().any() else 0.0).to_numpy()
    auc = float(roc_auc_score(y, score))
    return max(auc, 1.0 - auc)


def leakage_lines(train: pd.DataFrame, data: DataParams, max_auc: float) -> list[str]:
    """Name every feature that predicts the label almost perfectly on its own (label leakage)."""
    y = train[data.target]
    if y.isna().any() or y.nunique() < BINARY_CLASSES:
        return []  # the suite reports missing or single-class labels itself
    lines = []
    for col in data.features:
        if col not in train.columns:
            continue
        auc = single_feature_auc(train[col], y, categorical=col in data.categorical)
        if auc > max_auc:
            lines.append(
                f"{col}: expected no single feature to predict {data.target} (ROC AUC <= {max_auc}), "
                f"found ROC AUC {auc:.3f} on its own: label leakage?"
            )
    return lines


def _ratio(a: float, b: float) -> float:
    """How many times larger the bigger value is (inf when exactly one of them is zero)."""
    a, b = abs(a), abs(b)
    if a == b:
        return 1.0
    if min(a, b) == 0:
        return float("inf")
    return max(a, b) / min(a, b)


def skew_lines(batch: pd.DataFrame, reference: pd.DataFrame, data: DataParams, scale_factor: float) -> list[str]:
    """Name numerical features whose scale differs from training by more than ``scale_factor``.

    Drift moves a distribution; a feature computed differently at serving time (a 30-day
    average served as a same-day value, a ratio served as a percentage) changes its scale: its
    median or its spread jumps by a large factor. Only the latter fails validation; the first
    is the drift job's business.
    """
    lines = []
    for col in data.numerical:
        if col not in batch.columns or col not in reference.columns:
            continue
        cur = pd.to_numeric(batch[col], errors="coerce").replace([np.inf, -np.inf], np.nan).dropna()
        ref = pd.to_numeric(reference[col], errors="coerce").replace([np.inf, -np.inf], np.nan).dropna()
        if len(cur) < MIN_SKEW_ROWS or len(ref) < MIN_SKEW_ROWS:
            continue
        stats = {
            "median": (float(cur.median()), float(ref.median())),
            "std": (float(cur.std()), float(ref.std())),
        }
        bad = {k: v for k, v in stats.items() if _ratio(*v) > scale_factor}
        if bad:
            found = ", ".join(f"{k} {v[0]:.4g} vs {v[1]:.4g} in training" for k, v in bad.items())
            lines.append(
                f"{col}: training-serving skew: expected the training scale (within {scale_factor}x), "
                f"found {found}; the feature looks computed differently (not drift)"
            )
    return lines
