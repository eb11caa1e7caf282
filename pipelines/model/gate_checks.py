"""The gate's checks as plain functions over predictions and models (no MLflow here).

Each check becomes one record in the decision record: ``{"check", "value", "threshold",
"passed", "detail"}``. pipelines/model/gate.py wires them to the candidate, the champion
and MLflow; the thresholds come from params.yaml (``gate:``).

Serving path: every probe goes through ``features.score_frame``, the same ``model_input`` +
``predict_proba`` that batch scoring runs, so the gate judges what production would run.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import rankdata

from pipelines.config import DataParams
from pipelines.errors import PipelineError, describe_crash
from pipelines.model.features import score_frame
from pipelines.model.profile import bin_numeric, psi, quantile_edges

Check = dict[str, Any]
PROBE_ROWS = 50  # robustness probes: enough rows to give each feature its own missing row


def check(name: str, value: Any, threshold: str, passed: bool, detail: str = "") -> Check:
    """One decision-record entry; floats rounded so the record reads well."""
    if isinstance(value, float):
        value = round(value, 6)
    return {"check": name, "value": value, "threshold": threshold, "passed": bool(passed), "detail": detail}


# ---------------------------------------------------------------- quality, with its noise


def roc_auc(y: np.ndarray, p: np.ndarray) -> float:
    """ROC AUC by the rank-sum (Mann-Whitney) formula, ties averaged; NaN for a single class.
    Equal to sklearn's roc_auc_score (tests/unit/model/test_gate_checks.py) and cheap enough to bootstrap."""
    y = np.asarray(y).astype(bool)
    n_pos = int(y.sum())
    n_neg = len(y) - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(p)
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def paired_bootstrap_auc_diff(
    y: np.ndarray, p_candidate: np.ndarray, p_champion: np.ndarray, n_boot: int, confidence: float, seed: int
) -> dict[str, float]:
    """AUC(candidate) - AUC(champion) on the same rows, with a percentile bootstrap interval.

    Paired: each resample draws the same rows for both models, so the interval reflects the
    noise in the *difference*, which is much smaller than the noise of either AUC alone.
    """
    y = np.asarray(y)
    rng = np.random.default_rng(seed)
    diffs = np.empty(n_boot)
    for b in range(n_boot):
        idx = rng.integers(0, len(y), len(y))
        diffs[b] = roc_auc(y[idx], p_candidate[idx]) - roc_auc(y[idx], p_champion[idx])
    diffs = diffs[~np.isnan(diffs)]
    alpha = (1 - confidence) / 2
    return {
        "diff": roc_auc(y, p_candidate) - roc_auc(y, p_champion),
        "ci_low": float(np.quantile(diffs, alpha)),
        "ci_high": float(np.quantile(diffs, 1 - alpha)),
    }


def regression_check(boot: dict[str, float], max_regression: float, confidence: float) -> Check:
    """Pass only if we are confident the candidate is at most ``max_regression`` worse: the
    lower end of the interval must clear the bound. A tiny holdout gives a wide interval and
    so cannot promote a worse model by luck."""
    return check(
        "roc_auc_vs_champion",
        round(boot["diff"], 6),
        f"{confidence:.0%} CI lower bound of the AUC difference >= -{max_regression}",
        boot["ci_low"] >= -max_regression,
        f"diff {boot['diff']:+.4f}, {confidence:.0%} CI [{boot['ci_low']:+.4f}, {boot['ci_high']:+.4f}]",
    )


# ---------------------------------------------------------------- slices


def segments(frame: pd.DataFrame, slices: dict[str, list[float] | None]) -> dict[str, np.ndarray]:
    """Boolean row masks per slice: one per value of a categorical column (``region: null``),
    or one per band of a numerical column cut at the given edges (``age: [30, 45, 60]``)."""
    out: dict[str, np.ndarray] = {}
    for col, edges in slices.items():
        if col not in frame.columns:
            raise PipelineError(f"gate slice column {col!r} is not in the holdout")
        values = frame[col]
        if edges is None:
            for v in sorted(values.dropna().astype(str).unique()):
                out[f"{col}={v}"] = (values.astype(str) == v).to_numpy()
        else:
            cuts = [-np.inf, *sorted(edges), np.inf]
            num = pd.to_numeric(values, errors="coerce").to_numpy()
            for lo, hi in itertools.pairwise(cuts):
                label = f"{col}<{hi:g}" if lo == -np.inf else f"{col}>={lo:g}" if hi == np.inf else f"{col}[{lo:g},{hi:g})"
                out[label] = (num >= lo) & (num < hi)
    return out


def slice_metrics(y: np.ndarray, p: np.ndarray, masks: dict[str, np.ndarray]) -> dict[str, dict[str, Any]]:
    """Rows and AUC per slice (NaN for an empty slice)."""
    return {
        name: {"rows": int(m.sum()), "roc_auc": roc_auc(y[m], p[m]) if m.sum() else float("nan")} for name, m in masks.items()
    }


def slice_checks(
    candidate: dict[str, dict[str, Any]], champion: dict[str, dict[str, Any]], max_regression: float, min_rows: int
) -> list[Check]:
    """No slice may lose more than ``max_regression`` AUC against the champion; slices with
    fewer than ``min_rows`` rows (or one class) are reported, not judged."""
    out = []
    for name, cm in candidate.items():
        ch = champion[name]
        c_auc, h_auc = cm["roc_auc"], ch["roc_auc"]
        if cm["rows"] < min_rows or np.isnan(c_auc) or np.isnan(h_auc):
            needs = f"needs >= {min_rows} rows and both classes"
            out.append(check(f"slice {name}", None, needs, True, f"not judged: {cm['rows']} rows"))
            continue
        out.append(
            check(
                f"slice {name}",
                c_auc - h_auc,
                f"AUC difference >= -{max_regression}",
                c_auc - h_auc >= -max_regression,
                f"candidate {c_auc:.4f} vs champion {h_auc:.4f} on {cm['rows']} rows",
            )
        )
    return out


# ---------------------------------------------------------------- latency and size


def latency_ms(
    predict: Callable[[pd.DataFrame], Any], frame: pd.DataFrame, rows: int, calls: int, rounds: int = 1, warmup: int = 3
) -> dict[str, Any]:
    """p50/p99 wall time in ms of ``predict`` on ``rows`` rows: ``rounds`` rounds of ``calls``
    calls each, and the quietest round's figures (the lowest p99, as ``timeit`` takes the best
    of its repeats). A model that is slow is slow in every round; a stall from another process
    on a shared worker (a scheduler's parse loop, a GC in a neighbour) lands in one round, and
    with few calls p99 is close to that round's maximum. Every round's p99 is returned too."""
    if len(frame) == 0:
        raise PipelineError("no rows to measure latency on")
    if calls < 1 or rounds < 1:
        raise PipelineError(f"latency needs at least one call and one round (got calls={calls}, rounds={rounds})")
    batch = frame.iloc[:rows] if len(frame) >= rows else frame.sample(n=rows, replace=True, random_state=0)
    for _ in range(warmup):
        predict(batch)
    per_round = []
    for _ in range(rounds):
        times = []
        for _ in range(calls):
            t0 = time.perf_counter()
            predict(batch)
            times.append((time.perf_counter() - t0) * 1000)
        per_round.append((float(np.percentile(times, 99)), float(np.percentile(times, 50))))
    p99, p50 = min(per_round)
    return {"p50": p50, "p99": p99, "p99_rounds": [round(r[0], 3) for r in per_round]}


def directory_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file()) / 1e6


# ---------------------------------------------------------------- robustness


def hostile_frames(sample: pd.DataFrame, data: DataParams) -> dict[str, pd.DataFrame]:
    """The robustness probes, by name: ``sample`` with nulls, outliers, unseen categories, no
    rows or a column absent (hostile but possible inputs)."""
    nulls = sample.copy()
    for col in data.features:
        nulls[col] = None if col in data.categorical else np.nan
    one_each = sample.copy()  # row i lacks feature i (mod the feature count): each feature alone
    for i, col in enumerate(data.features):
        rows = np.arange(len(sample)) % len(data.features) == i
        col_values = one_each[col].astype(object) if col in data.categorical else one_each[col]
        one_each[col] = col_values.where(~rows, None if col in data.categorical else np.nan)
    outliers = sample.copy()
    for i, col in enumerate(data.numerical):
        outliers[col] = np.where(np.arange(len(sample)) % 2 == 0, 1e12, -1e12) * (1 if i % 2 else -1)
    unseen = sample.copy()
    for col in data.categorical:
        unseen[col] = "__never_seen__"
    return {
        "all features missing (null)": nulls,
        "one feature missing per row": one_each,
        "extreme outliers (+/-1e12)": outliers,
        "unseen categories": unseen,
        "empty input (0 rows)": sample.iloc[0:0],
        f"column {data.features[0]!r} absent": sample.drop(columns=[data.features[0]]),
    }


def robustness_probes(model: Any, frame: pd.DataFrame, data: DataParams) -> list[Check]:
    """Hostile but possible inputs through the serving path. Each must give one finite
    probability per row, or a clear PipelineError (our one-line error); anything else (an
    exception from deep inside a library, NaN scores) is a crash and fails the gate."""
    sample = frame.head(PROBE_ROWS).reset_index(drop=True)
    probes = hostile_frames(sample, data)

    def attempt(probe: pd.DataFrame) -> tuple[str, str]:
        """('ok' | 'clear' | 'crash', detail)."""
        try:
            p = np.asarray(score_frame(model, probe, data, PROBE_ROWS))
        except PipelineError as exc:
            return "clear", str(exc)
        except Exception as exc:  # noqa: BLE001 - any other exception is exactly what we detect
            return "crash", f"crashed with {describe_crash(exc)}"
        if p.shape != (len(probe),) or not np.all(np.isfinite(p)) or np.any((p < 0) | (p > 1)):
            return "crash", f"invalid output (shape {p.shape}, non-finite or outside [0, 1])"
        return "ok", ""

    failures, clear_errors, crashed = [], [], 0
    for name, probe in probes.items():
        outcome, detail = attempt(probe)
        if outcome == "clear":
            clear_errors.append(f"{name}: clear error ({detail})")
        elif outcome == "crash":
            crashed += 1
            failures.append(f"{name}: {detail}")
            if name == "one feature missing per row":  # name the features it cannot do without
                for col in data.features:
                    one = sample.copy()
                    one[col] = None if col in data.categorical else np.nan
                    o, det = attempt(one)
                    if o == "crash":
                        failures.append(f"{col} missing (null): {det}")
    return [
        check(
            "robustness",
            f"{len(probes) - crashed}/{len(probes)} probes handled",
            "every probe gives a valid prediction or a clear error",
            not failures,
            "; ".join(failures) if failures else "; ".join(clear_errors) or "all probes predicted",
        )
    ]


# ---------------------------------------------------------------- prediction shift


def prediction_psi(p_champion: np.ndarray, p_candidate: np.ndarray, n_bins: int) -> float:
    """PSI of the candidate's scores against the champion's on the same production rows, in
    bins cut at the champion's score quantiles (the same PSI as the drift job)."""
    edges = quantile_edges(np.asarray(p_champion, dtype="float64"), n_bins)
    return psi(bin_numeric(p_champion, edges), bin_numeric(p_candidate, edges))
