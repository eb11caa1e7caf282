from datetime import date

import numpy as np
import pandas as pd

from pipelines.data.checks import leakage_lines, single_feature_auc, skew_lines
from pipelines.data.simulate import generate_day

DAY = date(2026, 2, 1)


def _labelled(n: int = 3000) -> pd.DataFrame:
    f = generate_day(DAY, n, 5)
    return f.batch.merge(f.labels, on="customer_id")


def test_single_feature_auc_hand_cases() -> None:
    y = pd.Series([0, 0, 1, 1])
    assert single_feature_auc(pd.Series([1.0, 2.0, 3.0, 4.0]), y, categorical=False) == 1.0
    assert single_feature_auc(pd.Series([4.0, 3.0, 2.0, 1.0]), y, categorical=False) == 1.0  # direction-free
    assert single_feature_auc(pd.Series(["a", "b", "a", "b"]), y, categorical=True) == 0.5


def test_no_leakage_in_honest_data(settings) -> None:
    assert leakage_lines(_labelled(), settings.params.data, 0.95) == []


def test_leaking_feature_is_named(settings) -> None:
    df = _labelled()
    df["avg_spend_30d"] = df["default"] * 1000 + np.random.default_rng(0).normal(0, 1, len(df))
    lines = leakage_lines(df, settings.params.data, 0.95)
    assert len(lines) == 1 and lines[0].startswith("avg_spend_30d: expected no single feature")


def test_skew_flags_a_30_day_average_served_as_same_day(settings) -> None:
    ref = generate_day(DAY, 3000, 1).batch
    stable = generate_day(date(2026, 2, 2), 2000, 1).batch
    assert skew_lines(stable, ref, settings.params.data, 4.0) == []
    skewed = generate_day(date(2026, 2, 2), 2000, 1, "skew", scenario_start=date(2026, 2, 2)).batch
    lines = skew_lines(skewed, ref, settings.params.data, 4.0)
    assert [line.split(":")[0] for line in lines] == ["avg_spend_30d"]
    assert "not drift" in lines[0]


def test_drift_is_not_skew(settings) -> None:
    ref = generate_day(DAY, 3000, 1).batch
    drifted = generate_day(date(2026, 2, 2), 2000, 1, "feature_drift", scenario_start=date(2026, 2, 2)).batch
    assert skew_lines(drifted, ref, settings.params.data, 4.0) == []
