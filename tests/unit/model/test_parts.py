"""CategoryCoder: the dictionary look-up for a few rows gives exactly the pandas path's codes."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest

from pipelines.model import parts
from pipelines.model.parts import CategoryCoder

TRAIN = pd.DataFrame({"region": ["north", "south", "east", None, "north"], "code": [1, 2, 2, 3, None],
                      "flag": ["True", "False", None, "True", "False"]})


def cases() -> list[pd.DataFrame]:
    """Seen, unseen, every kind of missing, numbers in object columns, numbers as text."""
    rng = np.random.default_rng(7)
    values = ["north", "south", "east", "west", "", "NORTH", None, np.nan, pd.NA, 1, 2, 2.0, "1", "2", "3.0", True, "True", False]
    frames = [
        pd.DataFrame({c: pd.Series([values[i] for i in rng.integers(0, len(values), n)], dtype="object") for c in TRAIN.columns})
        for n in (1, 2, 5, 40)
    ]
    frames.append(
        pd.DataFrame({"region": pd.Series(["south", None], dtype="object"), "code": [2.0, np.nan], "flag": [None, None]})
    )
    frames.append(
        pd.DataFrame({"region": ["east"], "code": np.array([3], dtype="int64"), "flag": pd.Series([None], dtype="object")})
    )
    return frames


@pytest.mark.parametrize("frame", cases(), ids=lambda f: f"{len(f)}-rows")
def test_few_rows_are_coded_as_pandas_codes_them(frame: pd.DataFrame, monkeypatch: pytest.MonkeyPatch) -> None:
    coder = CategoryCoder().fit(TRAIN)
    looked_up = coder.transform(frame)
    monkeypatch.setattr(parts, "SMALL_ROWS", -1)  # force the pandas Categorical path
    reference = coder.transform(frame)
    assert looked_up.dtype == reference.dtype == np.float64
    assert np.array_equal(looked_up, reference, equal_nan=True), (frame, looked_up, reference)


def test_codes_are_category_positions_and_the_cache_is_never_pickled() -> None:
    coder = CategoryCoder().fit(TRAIN)
    assert coder.categories_[0] == ["east", "north", "south"]
    assert coder.categories_[1] == ["1.0", "2.0", "3.0"]  # the text of the training values, as pandas gives it
    got = coder.transform(
        pd.DataFrame({"region": ["south", "west", None], "code": [3.0, "3.0", "3"], "flag": ["False", "x", "True"]})
    )
    assert np.array_equal(got, [[2, 2, 0], [np.nan, 2, np.nan], [np.nan, np.nan, 1]], equal_nan=True)
    copy = pickle.loads(pickle.dumps(coder))  # noqa: S301 a round trip of the object made just above
    assert "_index" in coder.__dict__ and "_index" not in copy.__dict__
    assert np.array_equal(
        copy.transform(pd.DataFrame({"region": ["east"], "code": [1.0], "flag": [None]})), [[0, 0, np.nan]], equal_nan=True
    )


def test_a_refit_forgets_the_earlier_categories_and_typed_columns_take_the_pandas_path() -> None:
    coder = CategoryCoder().fit(TRAIN)
    coder.transform(TRAIN.head(2))  # builds the look-up
    coder.fit(pd.DataFrame({"region": ["0", "south"], "code": [1.0, 2.0], "flag": ["x", "y"]}))
    got = coder.transform(pd.DataFrame({"region": ["south", "north"], "code": [2.0, 3.0], "flag": ["y", "True"]}))
    assert np.array_equal(got, [[1, 1, 1], [np.nan, np.nan, np.nan]], equal_nan=True)
    # a float32 column's text differs between tolist() and astype(str): such columns take pandas' path
    coder = CategoryCoder().fit(pd.DataFrame({"x": np.array([0.1, 0.2], dtype="float32")}))
    assert coder.transform(pd.DataFrame({"x": np.array([0.2, 0.1], dtype="float32")})).ravel().tolist() == [1.0, 0.0]


def test_the_cases_hold_seen_unseen_and_missing_values() -> None:
    codes = np.concatenate([CategoryCoder().fit(TRAIN).transform(f).ravel() for f in cases()])
    assert np.isnan(codes).sum() > 10 and (~np.isnan(codes)).sum() > 10
