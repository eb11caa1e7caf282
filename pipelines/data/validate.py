"""Great Expectations validation of daily batches and of the training set.

Suites live in expectations/*.json, committed and reviewed like code; `propose_suite` drafts
one from reference data for a human to review. Thresholds that belong to the deployment
(row-count bounds, the batch's own day) are suite parameters filled from params.yaml at run time.

A failing daily batch is moved to data/quarantine/<day>/ with its validation result, the
command exits non-zero with one line per failed expectation, and nothing downstream runs
(scoring and training read only data/validated/). Running a suite through Great Expectations
and reading its result back as one line per failure: pipelines/data/suite_run.py.
"""

from __future__ import annotations

import math
import shutil
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipelines.config import Settings
from pipelines.data.checks import leakage_lines, skew_lines
from pipelines.data.suite_run import failure_lines, run_suite
from pipelines.errors import PipelineError, ValidationFailed, first_line
from pipelines.failpoint import failpoint
from pipelines.io import check_not_quarantined, find_partition, read_frame, read_json, write_json, write_parquet
from pipelines.telemetry import Sample, publish, step_succeeded

DAILY_SUITE = "daily_batch"
TRAINING_SUITE = "training_set"
NUMERIC_TYPES = ["int8", "int16", "int32", "int64", "Int64", "float32", "float64", "Float64"]


# --------------------------------------------------------------------------- suites


def load_suite(settings: Settings, name: str) -> dict[str, Any]:
    path = settings.expectations_dir / f"{name}.json"
    if not path.is_file():
        raise PipelineError(f"expectation suite not found: {path} (propose one with `validate --profile`)")
    suite = read_json(path)
    if not isinstance(suite, dict) or not isinstance(suite.get("expectations"), list):
        raise PipelineError(f"{path} is not a suite: expected an object with an 'expectations' list")
    for i, exp in enumerate(suite["expectations"]):
        if not isinstance(exp, dict) or not isinstance(exp.get("type"), str) or not isinstance(exp.get("kwargs", {}), dict):
            raise PipelineError(f"{path}: expectation {i} needs a 'type' string and a 'kwargs' object, got {str(exp)[:80]}")
    # GE itself logs and *drops* an expectation it cannot build (an unknown type, a wrong
    # argument), so a typo would silently remove a check: build each one here and fail instead.
    from great_expectations.expectations.registry import get_expectation_impl  # heavy: only when validating

    for i, exp in enumerate(suite["expectations"]):
        try:
            get_expectation_impl(exp["type"])(**exp.get("kwargs", {}))
        except Exception as exc:
            raise PipelineError(f"{path}: invalid suite: expectation {i} ({exp['type']}): {first_line(exc)}") from exc
    return suite


def propose_suite(settings: Settings, reference: pd.DataFrame, kind: str) -> dict[str, Any]:
    """Draft a suite from reference data: schema, null bounds, ranges, categories, ids.

    The draft is a starting point for review; the committed suite is the one that runs.
    """
    d = settings.params.data
    if kind not in (DAILY_SUITE, TRAINING_SUITE):
        raise PipelineError(f"unknown suite kind {kind!r} (daily_batch or training_set)")
    columns = [d.id_col, d.timestamp_col, *d.features] + ([d.target] if kind == TRAINING_SUITE else [])
    missing = [c for c in columns if c not in reference.columns]
    if missing:
        raise PipelineError(f"reference data lacks columns {missing}")
    mostly = round(1.0 - settings.params.validate_.max_null_fraction, 6)
    exps = _table_expectations(d, columns) + (_daily_expectations(d) if kind == DAILY_SUITE else _training_expectations(d))
    exps += [e for col in d.numerical for e in _numerical_expectations(reference[col], col, mostly)]
    exps += [e for col in d.categorical for e in _categorical_expectations(reference[col], col, mostly)]
    return {
        "name": kind,
        "meta": {
            "generated_by": "python -m pipelines validate --profile",
            "note": "Drafted from reference data, then reviewed. Edit bounds here, not in code.",
        },
        "expectations": exps,
    }


def _table_expectations(d: Any, columns: list[str]) -> list[dict[str, Any]]:
    """Exactly these columns, a row count from params.yaml, ids and timestamps present."""
    return [
        {"type": "expect_table_columns_to_match_set", "kwargs": {"column_set": columns, "exact_match": True}},
        {
            "type": "expect_table_row_count_to_be_between",
            "kwargs": {"min_value": {"$PARAMETER": "min_rows"}, "max_value": {"$PARAMETER": "max_rows"}},
        },
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": d.id_col}},
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": d.timestamp_col}},
        {"type": "expect_column_values_to_be_of_type", "kwargs": {"column": d.timestamp_col, "type_": "datetime64[ns]"}},
    ]


def _daily_expectations(d: Any) -> list[dict[str, Any]]:
    """A scoring batch: unique ids, every timestamp inside the batch's own day."""
    return [
        {"type": "expect_column_values_to_be_unique", "kwargs": {"column": d.id_col}},
        _between(d.timestamp_col, {"$PARAMETER": "day_start"}, {"$PARAMETER": "day_end"}),
    ]


def _training_expectations(d: Any) -> list[dict[str, Any]]:
    """A training set: timestamps inside the window, a 0/1 label on every row."""
    return [
        _between(d.timestamp_col, {"$PARAMETER": "window_start"}, {"$PARAMETER": "window_end"}),
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": d.target}},
        {"type": "expect_column_values_to_be_in_set", "kwargs": {"column": d.target, "value_set": [0, 1]}},
    ]


def _numerical_expectations(values: pd.Series, col: str, mostly: float) -> list[dict[str, Any]]:
    """Numeric type, a null bound and a domain range drafted from the reference values."""
    s = pd.to_numeric(values, errors="coerce")
    s = s[np.isfinite(s)]
    lo, hi = float(s.min()), float(s.max())
    span = hi - lo if hi > lo else max(abs(hi), 1.0)
    lower = 0.0 if lo >= 0 else lo - 0.25 * span
    upper = hi + 1.0 * span  # heavy tails: a draft; review and set the domain bound
    return [
        {"type": "expect_column_values_to_be_in_type_list", "kwargs": {"column": col, "type_list": NUMERIC_TYPES}},
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": col, "mostly": mostly}},
        _between(col, _round(lower), _round(upper)),
    ]


def _categorical_expectations(values: pd.Series, col: str, mostly: float) -> list[dict[str, Any]]:
    """A null bound and the categories seen in the reference."""
    cats = sorted(str(x) for x in values.dropna().unique())
    return [
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": col, "mostly": mostly}},
        {"type": "expect_column_values_to_be_in_set", "kwargs": {"column": col, "value_set": cats}},
    ]


def _between(column: str, low: Any, high: Any) -> dict[str, Any]:
    return {"type": "expect_column_values_to_be_between", "kwargs": {"column": column, "min_value": low, "max_value": high}}


def _round(x: float) -> float:
    return float(f"{x:.6g}") if math.isfinite(x) else x


# --------------------------------------------------------------------------- frames


def normalize(df: pd.DataFrame, settings: Settings) -> pd.DataFrame:
    """Parse the timestamp column (CSV files carry it as text); other columns are left as read."""
    ts = settings.params.data.timestamp_col
    out = df.copy()
    if ts in out.columns and not pd.api.types.is_datetime64_any_dtype(out[ts]):
        out[ts] = pd.to_datetime(out[ts], errors="coerce")
    if ts in out.columns and isinstance(out[ts].dtype, pd.DatetimeTZDtype):
        out[ts] = out[ts].dt.tz_convert("UTC").dt.tz_localize(None)
    if ts in out.columns:
        out[ts] = out[ts].astype("datetime64[ns]")
    return out


# --------------------------------------------------------------------------- steps


def validate_batch(settings: Settings, day: date) -> dict[str, Any]:
    """Validate the raw batch of ``day``; on success write data/validated/<day>.parquet.

    On failure the raw file moves to data/quarantine/<day>/ with the result, and
    ValidationFailed lists one line per failed expectation. An earlier validated copy of
    the day, if any, is kept as it was.
    """
    raw = find_partition(settings.raw_dir, day)
    if raw is None:
        check_not_quarantined(settings, day)
        raise PipelineError(f"no batch for {day} in {settings.raw_dir} (expected {day}.parquet or {day}.csv)")
    report_path = settings.reports_dir / "validation" / f"{day.isoformat()}.json"
    try:
        df = read_frame(raw)
    except PipelineError as exc:
        _quarantine(settings, day, raw, {"success": False, "error": str(exc)})
        publish(settings, "validate", validation_samples(day, None, [str(exc)], settings.params.data))
        raise ValidationFailed(f"batch {day} failed validation: {exc}", [str(exc)]) from exc
    df = normalize(df, settings)
    v = settings.params.validate_
    params = {"min_rows": v.min_rows, "max_rows": v.max_rows, "day_start": f"{day.isoformat()}T00:00:00",
              "day_end": f"{(day + timedelta(days=1)).isoformat()}T00:00:00"}
    qdir = settings.quarantine_dir / day.isoformat()
    docs_dir = settings.reports_dir / "validation" / f"{day.isoformat()}_docs" if v.data_docs else None
    result = run_suite(df, load_suite(settings, DAILY_SUITE), params, docs_dir)
    failures = failure_lines(result)
    reference, skew_note = _skew_reference(settings)
    skew = skew_lines(df, reference, settings.params.data, v.skew_scale_factor) if reference is not None else []
    failures += skew
    success = bool(result["success"]) and not skew
    summary = {
        "day": day.isoformat(),
        "source": str(raw),
        "rows": len(df),
        "success": success,
        "failures": failures,
        "skew_check": skew_note,
        "statistics": result.get("statistics", {}),
        "data_docs": str(docs_dir / "index.html") if docs_dir else None,
    }
    if not success:
        if qdir.exists():
            shutil.rmtree(qdir / "data_docs", ignore_errors=True)
        qdir.mkdir(parents=True, exist_ok=True)
        if docs_dir is not None:
            docs_dir.rename(qdir / "data_docs")
            summary["data_docs"] = str(qdir / "data_docs" / "index.html")
        _quarantine(settings, day, raw, {**summary, "result": result})
        publish(settings, "validate", validation_samples(day, df, failures, settings.params.data))
        raise ValidationFailed(f"batch {day} failed validation ({len(failures)} check(s)); quarantined in {qdir}", failures)
    write_json({**summary, "result": result}, report_path)
    out = write_parquet(df, settings.validated_dir / f"{day.isoformat()}.parquet")
    publish(settings, "validate", validation_samples(day, df, [], settings.params.data))
    step_succeeded(settings, "validate")
    return {**summary, "validated": str(out), "report": str(report_path)}


def validation_samples(day: date, df: pd.DataFrame | None, failures: list[str], data: Any) -> list[Sample]:
    """The day's validation metrics (pipelines/telemetry.py): quarantined or not with the first
    failed expectation, how many failed, and the feature column with the highest null rate."""
    d = {"day": day.isoformat()}
    out: list[Sample] = [
        ("pipelines_validation_quarantined", {**d, "first_failed": failures[0][:200] if failures else ""}, 1 if failures else 0),
        ("pipelines_validation_failed_expectations", d, len(failures)),
    ]
    if df is not None:
        features = [c for c in [*data.numerical, *data.categorical] if c in df.columns]
        if features and len(df):
            nulls = df[features].isna().mean()
            out.append(("pipelines_validation_worst_null_rate", {**d, "column": str(nulls.idxmax())}, float(nulls.max())))
        out.append(("pipelines_validation_rows", d, len(df)))
    return out


def _skew_reference(settings: Settings) -> tuple[pd.DataFrame | None, str]:
    """The serving champion's training reference, if there is a champion to compare with."""
    import os

    from pipelines.tracking import default_tracking_uri, tracking_uri

    if tracking_uri(settings) == default_tracking_uri(settings) and not settings.path("mlflow.db").exists():
        return None, "skipped: no model registry yet"
    from pipelines.model.champion import champion_reference
    from pipelines.tracking import setup_mlflow

    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    setup_mlflow(settings)
    try:
        reference, champion = champion_reference(settings)
    except PipelineError:
        return None, "skipped: no champion yet"
    return reference, f"compared with the training reference of champion v{champion.version}"


def _quarantine(settings: Settings, day: date, raw: Path, result: dict[str, Any]) -> Path:
    """Move the raw file into data/quarantine/<day>/ beside its validation result."""
    qdir = settings.quarantine_dir / day.isoformat()
    qdir.mkdir(parents=True, exist_ok=True)
    write_json(result, qdir / "validation_result.json")
    shutil.move(str(raw), str(qdir / raw.name))
    return qdir


def validate_training(settings: Settings) -> dict[str, Any]:
    """Validate the training set and holdout: the training suite plus a label-leakage check."""
    from pipelines.io import read_json

    suite = load_suite(settings, TRAINING_SUITE)
    v, d = settings.params.validate_, settings.params.data
    window = read_json(settings.training_dir / "window.json")
    days = sorted([*window["train_days"], *window["holdout_days"]])
    params = {
        "min_rows": v.min_rows,
        "max_rows": v.max_training_rows,
        "window_start": f"{days[0]}T00:00:00",
        # never after the last labelled day: nothing from the future may reach training
        "window_end": f"{(date.fromisoformat(days[-1]) + timedelta(days=1)).isoformat()}T00:00:00",
    }
    report: dict[str, Any] = {"success": True, "parts": {}}
    all_failures: list[str] = []
    for part in ("train", "holdout"):
        df = read_frame(settings.training_dir / f"{part}.parquet")
        docs_dir = settings.reports_dir / "validation" / f"training_{part}_docs"
        result = run_suite(df, suite, params, docs_dir)
        failures = failure_lines(result)
        if part == "train":
            failures += leakage_lines(df, d, v.max_single_feature_auc)
        ok = bool(result["success"]) and not failures
        report["parts"][part] = {
            "rows": len(df),
            "success": ok,
            "failures": failures,
            "data_docs": str(docs_dir / "index.html"),
        }
        report["success"] = report["success"] and ok
        all_failures += [f"{part}: {line}" for line in failures]
    failpoint("validate_training")  # validated, the report not yet written
    write_json(report, settings.reports_dir / "validation" / "training.json")
    if not report["success"]:
        raise ValidationFailed(f"training set failed validation ({len(all_failures)} check(s))", all_failures)
    return report
