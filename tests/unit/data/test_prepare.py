from datetime import date, timedelta

import pandas as pd
import pytest

from pipelines.errors import PipelineError
from pipelines.data.prepare import join_labels, split_days

D0 = date(2026, 1, 1)


def test_split_keeps_holdout_out_of_training() -> None:
    days = [D0 + timedelta(days=i) for i in range(10)]
    train, holdout = split_days(days, window_days=5, holdout_days=2)
    assert holdout == days[-2:]
    assert train == days[3:8]
    assert not set(train) & set(holdout)


def test_split_needs_enough_labelled_days() -> None:
    with pytest.raises(PipelineError, match="found 2, need at least 4"):
        split_days([D0, D0 + timedelta(days=1)], window_days=5, holdout_days=3)


def test_join_labels_one_to_one() -> None:
    batch = pd.DataFrame({"customer_id": [1, 2, 3], "x": [0.1, 0.2, 0.3]})
    labels = pd.DataFrame({"customer_id": [3, 1, 2], "default": [1, 0, 0]})
    out = join_labels(batch, labels, "customer_id", "default", D0)
    assert out.set_index("customer_id")["default"].to_dict() == {1: 0, 2: 0, 3: 1}


def test_join_labels_rejects_duplicates_and_mismatch() -> None:
    batch = pd.DataFrame({"customer_id": [1, 2]})
    with pytest.raises(PipelineError, match="duplicated"):
        join_labels(batch, pd.DataFrame({"customer_id": [1, 1], "default": [0, 1]}), "customer_id", "default", D0)
    with pytest.raises(PipelineError, match="match no row"):
        join_labels(batch, pd.DataFrame({"customer_id": [9], "default": [0]}), "customer_id", "default", D0)
