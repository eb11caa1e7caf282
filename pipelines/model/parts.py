"""Estimator parts of the model that scikit-learn does not provide fast enough.

CategoryCoder replaces OrdinalEncoder for the categorical columns: the same output (the index
of each value among the categories seen in training, NaN for missing or unseen), computed with
pandas' vectorised Categorical instead of per-value Python work. Measured on 10 M rows it is
what lets end-to-end scoring keep up with raw predict_proba (BENCHMARKS.md, "Batch scoring").
A few rows of an object column (an online request, as model_input builds it) are coded by
dictionary look-up instead: a pandas Categorical costs about 0.3 ms per column whatever the row
count, which was half of the ColumnTransformer's time on a single-row request (BENCHMARKS.md,
"Online serving"). Both give the same codes (tests/unit/model/test_parts.py).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from pandas.api.types import is_scalar
from sklearn.base import BaseEstimator, TransformerMixin

SMALL_ROWS = 256  # up to this many rows, a dictionary look-up per value beats pandas' fixed cost


class CategoryCoder(TransformerMixin, BaseEstimator):
    """Ordinal codes for categorical columns; NaN for missing or unseen categories."""

    def __getstate__(self) -> dict[str, Any]:
        state = dict(super().__getstate__())  # a copy: the base class may hand out __dict__ itself
        state.pop("_index", None)  # a cache of categories_, rebuilt on first use: never pickled
        return state

    def _indexes(self) -> list[dict[str, float]]:
        index = self.__dict__.get("_index")
        if index is None:
            index = self._index = [{c: float(i) for i, c in enumerate(cats)} for cats in self.categories_]
        return index

    def fit(self, X: Any, y: Any = None) -> CategoryCoder:
        self.__dict__.pop("_index", None)  # the look-up of earlier categories
        frame = X if isinstance(X, pd.DataFrame) else pd.DataFrame(X)
        self.feature_names_in_ = np.asarray([str(c) for c in frame.columns], dtype=object)
        self.n_features_in_ = frame.shape[1]
        self.categories_ = [sorted(frame[c].dropna().astype(str).unique().tolist()) for c in frame.columns]
        return self

    def transform(self, X: Any) -> np.ndarray:
        frame = X if isinstance(X, pd.DataFrame) else pd.DataFrame(X, columns=list(self.feature_names_in_))
        if frame.shape[1] != self.n_features_in_:
            raise ValueError(f"CategoryCoder expects {self.n_features_in_} columns, got {frame.shape[1]}")
        out = np.empty((len(frame), self.n_features_in_), dtype="float64")
        small = len(frame) <= SMALL_ROWS
        for j, cats in enumerate(self.categories_):
            col = frame.iloc[:, j]
            if small and col.dtype == object:  # what model_input hands over (typed columns: pandas' own text)
                # the value's text, as astype(str) gives it; missing (None, NaN, NA) and unseen: NaN
                index, nan = self._indexes()[j], float("nan")
                out[:, j] = [nan if is_scalar(v) and pd.isna(v) else index.get(str(v), nan) for v in col.tolist()]
                continue
            if isinstance(col.dtype, pd.CategoricalDtype):
                # Parquet dictionary columns arrive as categoricals: remap the small dictionary only.
                codes = col.cat.rename_categories([str(c) for c in col.cat.categories]).cat.set_categories(cats).cat.codes
                codes = codes.to_numpy().astype("float64")
            else:
                codes = pd.Categorical(col.where(col.isna(), col.astype(str)), categories=cats).codes.astype("float64")
            codes[codes < 0] = np.nan
            out[:, j] = codes
        return out

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        return np.asarray(self.feature_names_in_, dtype=object)
