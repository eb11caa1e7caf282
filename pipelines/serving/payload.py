"""Request bodies to a frame of rows, or a 4xx with one line naming the field (pure functions).

The server accepts MLflow's scoring payloads on ``/invocations`` (``dataframe_split``,
``dataframe_records``, ``inputs``/``instances`` as columns or records) and a list of typed rows
on ``/predict``. Types are checked here, before the model sees anything, so a wrong type is the
client's error (4xx) and never a crash inside the model (5xx). Values are checked the way the
model reads them: a number (or null, which the model handles as missing) for a numerical
feature, a string (or null) for a categorical one. An unseen category is *not* an error: the
model maps it to missing, exactly as in batch scoring; the response says which ones it saw.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pandas as pd

from pipelines.config import DataParams
from pipelines.errors import PipelineError

BYTES_PER_ROW = 4096  # a generous bound on one JSON row of this model's features


class BadRequest(PipelineError):
    """The client sent something the model cannot score; ``status`` is the HTTP code."""

    def __init__(self, message: str, status: int = 422) -> None:
        super().__init__(message)
        self.status = status


def load_json(body: bytes, max_rows: int) -> Any:
    """The body as JSON: 400 when empty or not JSON, 413 when larger than any allowed batch."""
    if not body or not body.strip():
        raise BadRequest("empty body: send a JSON object (see GET /docs)", 400)
    if len(body) > max_rows * BYTES_PER_ROW:
        raise BadRequest(f"body of {len(body)} bytes is larger than a batch of serve.max_batch_rows ({max_rows}) rows", 413)
    try:
        return json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BadRequest(f"body is not valid JSON: {exc}", 400) from exc


def _columns_to_records(cols: dict[str, Any], key: str) -> list[dict[str, Any]]:
    lengths = {k: len(v) for k, v in cols.items() if isinstance(v, list)}
    scalars = [k for k, v in cols.items() if not isinstance(v, list)]
    if scalars:
        raise BadRequest(f"{key}: column {scalars[0]!r} must be a list of values")
    if len(set(lengths.values())) > 1:
        raise BadRequest(f"{key}: columns have different lengths {lengths}")
    n = next(iter(lengths.values()), 0)
    return [{k: v[i] for k, v in cols.items()} for i in range(n)]


def invocation_rows(payload: Any) -> list[dict[str, Any]]:
    """MLflow's scoring payloads as a list of row dicts."""
    if not isinstance(payload, dict):
        raise BadRequest("body must be a JSON object with one of dataframe_split, dataframe_records, inputs, instances", 400)
    keys = [k for k in ("dataframe_split", "dataframe_records", "inputs", "instances") if k in payload]
    unknown = sorted(set(payload) - {"dataframe_split", "dataframe_records", "inputs", "instances", "params"})
    if unknown:
        raise BadRequest(f"unknown key {unknown[0]!r}: use one of dataframe_split, dataframe_records, inputs, instances", 400)
    if len(keys) != 1:
        raise BadRequest(
            f"body must have exactly one of dataframe_split, dataframe_records, inputs, instances (found {keys or 'none'})", 400
        )
    key, value = keys[0], payload[keys[0]]
    if key == "dataframe_split":
        if not isinstance(value, dict) or not isinstance(value.get("columns"), list) or not isinstance(value.get("data"), list):
            raise BadRequest("dataframe_split needs 'columns' (a list of names) and 'data' (a list of rows)")
        cols = value["columns"]
        rows = []
        for i, row in enumerate(value["data"]):
            if not isinstance(row, list) or len(row) != len(cols):
                raise BadRequest(
                    f"dataframe_split: row {i} has {len(row) if isinstance(row, list) else 'no'} values for {len(cols)} columns"
                )
            rows.append(dict(zip(cols, row, strict=True)))
        return rows
    if isinstance(value, dict):
        return _columns_to_records(value, key)
    if isinstance(value, list):
        bad = next((i for i, r in enumerate(value) if not isinstance(r, dict)), None)
        if bad is not None:
            raise BadRequest(f"{key}: row {bad} must be an object of feature names to values")
        return value
    raise BadRequest(f"{key} must be a list of rows or an object of columns")


def _is_number(v: Any) -> bool:
    return (isinstance(v, (int, float)) and not isinstance(v, bool)) or v is None


def check_rows(rows: list[dict[str, Any]], data: DataParams, max_rows: int) -> None:
    """4xx (one line naming the row and the field) unless every row has every feature, a number
    or null for each numerical one and a string or null for each categorical one."""
    if not rows:
        raise BadRequest("no rows to score")
    if len(rows) > max_rows:
        raise BadRequest(f"batch of {len(rows)} rows exceeds serve.max_batch_rows ({max_rows})", 413)
    for i, row in enumerate(rows):
        missing = [c for c in data.features if c not in row]
        if missing:
            raise BadRequest(
                f"row {i}: missing feature {missing[0]!r}" + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else "")
            )
        for c in data.numerical:
            v = row[c]
            if not _is_number(v):
                raise BadRequest(f"row {i}: feature {c!r} must be a number or null, got {type(v).__name__} {v!r:.40}")
        for c in data.categorical:
            v = row[c]
            if not (isinstance(v, str) or v is None):
                raise BadRequest(f"row {i}: feature {c!r} must be a string or null, got {type(v).__name__} {v!r:.40}")


def columns_of(rows: list[dict[str, Any]], data: DataParams) -> dict[str, Any]:
    """Checked rows (see check_rows) as columns of the id (when every row has one) and the
    features: a float64 array per numerical one (JSON null -> NaN), a list per categorical one.
    What :func:`frame_of` builds its frame from, and the prediction log the request's inputs."""
    cols = [data.id_col, *data.features] if all(data.id_col in r for r in rows) else data.features
    numerical = set(data.numerical)
    return {c: np.array([r[c] for r in rows], dtype="float64") if c in numerical else [r[c] for r in rows] for c in cols}


def frame_of(rows: list[dict[str, Any]], data: DataParams, columns: dict[str, Any] | None = None) -> pd.DataFrame:
    """Checked rows (see check_rows) as a frame of the id (when every row has one) and the
    features; JSON null -> NaN and ints -> float64, exactly what model_input does. Built column
    by column (a numerical one straight into float64; ``columns``: :func:`columns_of` of the
    rows, when the caller has it), a fifth of ``DataFrame.from_records``' cost for one row; the
    same frame (tests/unit/serving/test_payload.py)."""
    columns = columns if columns is not None else columns_of(rows, data)
    return pd.DataFrame(columns, columns=list(columns))


def rows_to_frame(rows: list[dict[str, Any]], data: DataParams, max_rows: int) -> pd.DataFrame:
    """Checked rows as a frame of the id (when given) and the features; 4xx on a bad value."""
    check_rows(rows, data, max_rows)
    return frame_of(rows, data)


def ids_of(rows: list[dict[str, Any]], data: DataParams) -> list[Any] | None:
    """The rows' entity ids, when every row has one (as frame_of keeps them)."""
    return [r[data.id_col] for r in rows] if all(data.id_col in r for r in rows) else None


def unseen_categories(rows: list[dict[str, Any]], categories: dict[str, list[str]]) -> dict[str, list[str]]:
    """Categories the model never saw in training (it scores them as missing)."""
    out = {}
    for col, known in categories.items():
        seen = {r[col] for r in rows if isinstance(r.get(col), str)}
        new = sorted(seen - set(known))
        if new:
            out[col] = new
    return out


def json_scores(scores: Any) -> list[float | None]:
    """Scores for a JSON response (a NaN would make invalid JSON)."""
    return [None if math.isnan(x) else float(x) for x in scores]
