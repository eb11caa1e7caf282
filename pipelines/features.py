"""The one function that turns a batch into model input, used by training, the gate and
scoring alike, so features cannot be computed differently at serving time."""

from __future__ import annotations

import pandas as pd

from pipelines.config import DataParams
from pipelines.errors import PipelineError


def model_input(df: pd.DataFrame, data: DataParams) -> pd.DataFrame:
    """Select the feature columns in a fixed order with fixed dtypes (float64 / object or
    category); the model's CategoryCoder gives both categorical forms the same codes."""
    missing = [c for c in data.features if c not in df.columns]
    if missing:
        raise PipelineError(f"batch lacks feature columns {missing}")
    out = pd.DataFrame(index=df.index)
    for col in data.numerical:
        try:
            out[col] = pd.to_numeric(df[col], errors="raise").astype("float64")
        except (ValueError, TypeError) as exc:
            raise PipelineError(f"feature {col!r} is not numeric: {exc}") from exc
    for col in data.categorical:
        if isinstance(df[col].dtype, pd.CategoricalDtype):
            out[col] = df[col]  # dictionary-encoded from Parquet: kept compact, coded by the model
        else:
            out[col] = df[col].astype("object").where(df[col].notna(), None)
    return out
