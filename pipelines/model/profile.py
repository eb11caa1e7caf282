"""Reference profiles and PSI: frozen bins at training time, streamed counts at drift time.

A profile is built once per model version from its training data and stored with it (MLflow
artifact ``reference/profile.json`` + tag ``drift_profile_sha256``):
  numerical   inner bin edges = quantiles of the training data (``drift.n_bins`` bins; ties
              merged), bins are (-inf, e1], (e1, e2], ..., (ek, +inf); plus the null count
  categorical the training categories, plus one "unseen" bin; plus the null count
  score        the same for the model's own scores on the training reference (prediction drift)
  importance   each feature's share of the model's permutation importance (ROC AUC lost when
               the feature is shuffled, on a labelled holdout sample), so the drift job can
               show how much the model relies on a drifted feature and, if configured
               (``drift.min_importance``), ignore drift in features it barely uses

PSI = sum((cur - ref) * ln(cur / ref)) over bins, with proportions of non-null values. An empty
bin (proportion 0, in either side) is given ``EMPTY_BIN = 1e-4`` before the log, the usual
convention (Evidently uses the same value), so a bin that empties or appears adds a large but
finite term. Counting is exact and streamed: memory is bounded by the chunk size.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipelines.config import DataParams
from pipelines.errors import PipelineError, first_line

EMPTY_BIN = 1e-4
PROFILE_VERSION = 1


def quantile_edges(values: np.ndarray, n_bins: int) -> list[float]:
    """Inner edges from training quantiles (unique, finite), so bins hold similar shares."""
    v = values[np.isfinite(values)]
    if v.size == 0:
        return []
    qs = np.quantile(v, np.linspace(0, 1, n_bins + 1)[1:-1])
    return sorted({float(q) for q in qs})


def bin_numeric(values: np.ndarray, edges: list[float]) -> np.ndarray:
    """Counts per bin of the non-null values (len(edges) + 1 bins; bin i is (e[i-1], e[i]]).

    The bin index is the number of edges a value exceeds, accumulated in uint8 one edge at a
    time: with at most 100 bins that is ~13x faster than np.searchsorted (BENCHMARKS.md). NaN
    exceeds no edge, so it lands in bin 0 and is taken out again: no copy drops the nulls.
    """
    v = np.asarray(values, dtype="float64")
    if len(edges) >= np.iinfo(np.uint8).max:  # the bin index is a uint8
        raise ValueError("at most 254 bin edges")
    idx = np.zeros(v.shape[0], dtype=np.uint8)
    for edge in edges:
        np.add(idx, v > edge, out=idx, casting="unsafe")
    counts = np.bincount(idx, minlength=len(edges) + 1).astype("int64")
    counts[0] -= int(np.isnan(v).sum())
    return counts


def bin_categorical(values: pd.Series, categories: list[str]) -> np.ndarray:
    """Counts per training category, then one bin for every unseen value (nulls excluded)."""
    if isinstance(values.dtype, pd.CategoricalDtype):
        # Dictionary-encoded from Parquet: count the codes, then map the small dictionary.
        codes = values.cat.codes.to_numpy()
        per_level = np.bincount(codes[codes >= 0], minlength=len(values.cat.categories))
        index = {c: i for i, c in enumerate(categories)}
        counts = np.zeros(len(categories) + 1, dtype="int64")
        for level, n in zip(values.cat.categories, per_level, strict=True):
            counts[index.get(str(level), len(categories))] += int(n)
        return counts
    s = values.dropna().astype(str)
    codes = pd.Categorical(s, categories=categories).codes
    counts = np.bincount(codes[codes >= 0], minlength=len(categories)).astype("int64")
    return np.append(counts, int((codes < 0).sum()))


def psi(reference: Iterable[float], current: Iterable[float]) -> float:
    """Population stability index of two count (or proportion) vectors over the same bins."""
    ref = np.asarray(list(reference), dtype="float64")
    cur = np.asarray(list(current), dtype="float64")
    if ref.shape != cur.shape:
        raise ValueError(f"bins differ: {ref.shape} vs {cur.shape}")
    if ref.sum() == 0 or cur.sum() == 0:
        return float("nan")
    p, q = ref / ref.sum(), cur / cur.sum()
    p = np.where(p == 0, EMPTY_BIN, p)
    q = np.where(q == 0, EMPTY_BIN, q)
    return float(np.sum((q - p) * np.log(q / p)))


def importance_shares(importances: dict[str, float]) -> dict[str, float]:
    """Permutation importances as shares summing to 1 (negative ones count as 0; pure). A model
    that no shuffle hurts gets equal shares: nothing says one feature matters more."""
    clipped = {c: max(float(v), 0.0) if math.isfinite(v) else 0.0 for c, v in importances.items()}
    total = sum(clipped.values())
    if total <= 0:
        return {c: round(1 / len(clipped), 6) for c in clipped}
    return {c: round(v / total, 6) for c, v in clipped.items()}


def build_profile(
    X: pd.DataFrame, scores: np.ndarray, data: DataParams, n_bins: int, importance: dict[str, float] | None = None
) -> dict[str, Any]:
    """The frozen reference for one model version (pure). ``importance``: raw permutation
    importance per feature (stored as shares)."""
    prof: dict[str, Any] = {"version": PROFILE_VERSION, "rows": len(X), "numerical": {}, "categorical": {}}
    for col in data.numerical:
        v = pd.to_numeric(X[col], errors="coerce").to_numpy(dtype="float64")
        edges = quantile_edges(v, n_bins)
        prof["numerical"][col] = {"edges": edges, "counts": bin_numeric(v, edges).tolist(), "nulls": int(np.isnan(v).sum())}
    for col in data.categorical:
        cats = sorted(X[col].dropna().astype(str).unique().tolist())
        prof["categorical"][col] = {
            "categories": cats,
            "counts": bin_categorical(X[col], cats).tolist(),
            "nulls": int(X[col].isna().sum()),
        }
    s = np.asarray(scores, dtype="float64")
    edges = quantile_edges(s, n_bins)
    prof["score"] = {"edges": edges, "counts": bin_numeric(s, edges).tolist(), "nulls": 0}
    if importance is not None:
        prof["importance"] = importance_shares(importance)
    return prof


def profile_sha256(profile: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(profile, sort_keys=True).encode()).hexdigest()


def check_columns(profile: dict[str, Any], names: Iterable[str]) -> None:
    """A batch must have every feature of the reference profile (one-line error otherwise)."""
    present = set(names)
    missing = [c for c in [*profile["numerical"], *profile["categorical"]] if c not in present]
    if missing:
        raise PipelineError(f"batch lacks columns of the reference profile: {missing}")


class Accumulator:
    """Streams chunks of a batch into the profile's frozen bins."""

    def __init__(self, profile: dict[str, Any]) -> None:
        self.profile = profile
        self.rows = 0
        self.counts = {c: np.zeros(len(p["counts"]), dtype="int64") for c, p in profile["numerical"].items()}
        self.counts.update({c: np.zeros(len(p["counts"]), dtype="int64") for c, p in profile["categorical"].items()})
        self.nulls = dict.fromkeys(self.counts, 0)

    def _pool(self) -> Any:
        if not hasattr(self, "_executor"):
            import os
            from concurrent.futures import ThreadPoolExecutor

            self._executor = ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1))
        return self._executor

    def add(self, chunk: pd.DataFrame | Any) -> None:
        """Count one chunk: a DataFrame, or a pyarrow RecordBatch (the streamed path: its
        columns go to numpy without building a DataFrame)."""
        arrow = hasattr(chunk, "num_rows")
        check_columns(self.profile, chunk.schema.names if arrow else list(chunk.columns))
        self.rows += len(chunk)
        column = chunk.column if arrow else chunk.__getitem__

        def numeric(item: tuple[str, dict[str, Any]]) -> tuple[str, np.ndarray, int]:
            col, p = item
            v = as_float(column(col))
            return col, bin_numeric(v, p["edges"]), int(np.isnan(v).sum())

        # numpy releases the GIL in the comparisons: columns are counted on all cores
        for col, counts, nulls in self._pool().map(numeric, self.profile["numerical"].items()):
            self.counts[col] += counts
            self.nulls[col] += nulls
        for col, p in self.profile["categorical"].items():
            values = column(col)
            if not isinstance(values, pd.Series):
                # integers with nulls stay integers ("1", not "1.0", as in the profile)
                values = values.to_pandas(integer_object_nulls=True)
            self.counts[col] += bin_categorical(values, p["categories"])
            self.nulls[col] += int(values.isna().sum())

    def result(self) -> dict[str, dict[str, float]]:
        """PSI and null-rate change per feature."""
        return feature_drift(self.profile, self.counts, self.nulls, self.rows)


def feature_drift(
    profile: dict[str, Any], counts: dict[str, Any], nulls: dict[str, int], rows: int
) -> dict[str, dict[str, float]]:
    """PSI and null-rate change per feature from a batch's counts in the profile's bins (the
    streamed counting here and the Spark counting in pipelines/monitoring/drift_spark.py both end here)."""
    out = {}
    ref_rows = profile["rows"]
    for col, cur in counts.items():
        ref = profile["numerical"].get(col) or profile["categorical"][col]
        out[col] = {
            "psi": psi(ref["counts"], cur),
            "null_rate": nulls[col] / rows if rows else float("nan"),
            "null_rate_reference": ref["nulls"] / ref_rows if ref_rows else float("nan"),
        }
    return out


def as_float(values: pd.Series | Any) -> np.ndarray:
    """A column (pandas Series or pyarrow Array) as float64 values, nulls as NaN."""
    if not isinstance(values, pd.Series):
        import pyarrow as pa

        t = values.type
        if pa.types.is_floating(t) or pa.types.is_integer(t) or pa.types.is_boolean(t):
            return np.asarray(values.to_numpy(zero_copy_only=False), dtype="float64")
        values = values.to_pandas()
    if values.dtype.kind in "fiub":
        return values.to_numpy(dtype="float64", na_value=np.nan)
    return pd.to_numeric(values, errors="coerce").to_numpy(dtype="float64")


def stream_batches(path: Path, columns: list[str], chunk_rows: int) -> Iterable[Any]:
    """Chunks of a Parquet file as pyarrow RecordBatches (no threads; see pipelines/io.py).

    Strings arrive as small dictionaries; ``pre_buffer=False`` keeps pyarrow from buffering
    whole row groups of every column ahead (measured: 1.8 GB -> 0.65 GB peak on 10 M rows).
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path, read_dictionary=columns, pre_buffer=False, buffer_size=1 << 20)
    except (pa.ArrowException, OSError) as exc:
        raise PipelineError(f"{path} is not a readable Parquet file: {first_line(exc)}") from exc
    names = set(pf.schema_arrow.names)
    missing = [c for c in columns if c not in names]
    if missing:
        raise PipelineError(f"{path.name} lacks columns {missing}")
    yield from pf.iter_batches(batch_size=chunk_rows, columns=columns, use_threads=False)


def stream_parquet(path: Path, columns: list[str], chunk_rows: int) -> Iterable[pd.DataFrame]:
    """Chunks of a Parquet file as DataFrames."""
    for batch in stream_batches(path, columns, chunk_rows):
        yield batch.to_pandas()
