"""Request rows to a frame (pipelines/serving/payload.py): the column-by-column frame is the
frame pandas' own record reader gives (the previous implementation, kept here as the
reference), dtypes and values, for the values JSON can carry."""

from __future__ import annotations

import pandas as pd
import pytest

from pipelines.serving.payload import frame_of


def reference(rows: list[dict], data) -> pd.DataFrame:
    cols = [data.id_col, *data.features] if all(data.id_col in r for r in rows) else data.features
    frame = pd.DataFrame.from_records([{c: r[c] for c in cols} for r in rows], columns=cols)
    for c in data.numerical:
        frame[c] = pd.to_numeric(frame[c]).astype("float64")
    return frame


def rows_of(settings, values: list, cats: list, ids: list | None) -> list[dict]:
    d = settings.params.data
    out = []
    for i, (v, c) in enumerate(zip(values, cats, strict=True)):
        r = dict.fromkeys(d.numerical, v)
        r.update(dict.fromkeys(d.categorical, c))
        if ids is not None and ids[i] is not ...:
            r[d.id_col] = ids[i]
        out.append(r)
    return out


@pytest.mark.parametrize(
    ("values", "cats", "ids"),
    [
        ([1.5], ["a"], ["e1"]),  # one row, as most requests
        ([1], [None], None),  # an int, a null category, no id
        ([None, 2, 3.25, -0.0, 2**53 + 1, 10**30], ["a", "", "é", None, "b", "a"], [1, 2, 3, 4, 5, 6]),  # int ids
        ([None, None], [None, None], ["x", ...]),  # all null; one row without an id: no id column
        ([0, 1], ["a", "b"], ["7", 8]),  # mixed id types
    ],
)
def test_frame_of_is_the_frame_pandas_reads_from_the_records(settings, values: list, cats: list, ids: list | None) -> None:
    rows = rows_of(settings, values, cats, ids)
    got, want = frame_of(rows, settings.params.data), reference(rows, settings.params.data)
    pd.testing.assert_frame_equal(got, want, check_exact=True)
    assert list(got.dtypes) == list(want.dtypes)
