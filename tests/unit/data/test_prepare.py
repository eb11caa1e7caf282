from datetime import date, timedelta

import pandas as pd
import pytest

from pipelines.data.prepare import join_labels, split_days
from pipelines.errors import PipelineError

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


def test_the_window_ends_at_the_runs_day_not_at_the_latest_file(settings) -> None:
    # A backfill of an older day trains on what existed then: no later batch, no later label.
    import shutil

    from pipelines.data.prepare import prepare
    from pipelines.data.simulate import simulate
    from pipelines.io import read_json

    simulate(settings, start="2026-01-01", days=14, rows=300)
    shutil.copytree(settings.raw_dir, settings.validated_dir)  # validation itself is not this test's subject
    latest = prepare(settings)
    assert latest["as_of"] == "2026-01-14" and latest["holdout_days"][-1] == "2026-01-07"  # labels lag 7 days
    back = prepare(settings, as_of=date(2026, 1, 10))
    assert back["as_of"] == "2026-01-10" and max(back["holdout_days"]) <= "2026-01-07"
    ts = pd.read_parquet(settings.training_dir / "holdout.parquet")["event_ts"]
    assert ts.max() < pd.Timestamp("2026-01-11")
    earlier = prepare(settings, as_of=date(2026, 1, 6))
    assert earlier["as_of"] == "2026-01-06" and max(earlier["holdout_days"]) == "2026-01-06"
    assert read_json(settings.training_dir / "window.json")["as_of"] == "2026-01-06"
    with pytest.raises(PipelineError, match="no validated batch on or before 2025-12-31"):
        prepare(settings, as_of=date(2025, 12, 31))


def test_the_window_follows_a_shift_once_enough_days_since_have_labels() -> None:
    from pipelines.data.prepare import follow_shift

    days = [D0 + timedelta(days=i) for i in range(40)]
    since = D0 + timedelta(days=25)
    assert follow_shift(days, None, 10, 3) == (days, None)
    early, why = follow_shift(days[:30], since, 10, 3)  # 5 labelled days since the shift: the usual window
    assert early == days[:30] and "5 labelled day(s) since, 10 needed; the usual window" in why
    after, why = follow_shift(days, since, 10, 3)
    assert after == days[25:] and why.startswith(f"follows the shift since {since}")
    train, holdout = split_days(after, window_days=30, holdout_days=3)
    assert train[0] == since and holdout == days[-3:]  # nothing of the old regime is learned from
