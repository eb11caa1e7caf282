"""Training-set validation: the training suite plus the label-leakage check."""

from datetime import date

import numpy as np
import pandas as pd
import pytest

from pipelines.data.simulate import generate_day
from pipelines.data.validate import validate_training
from pipelines.errors import ValidationFailed
from pipelines.io import write_json

DAYS = [date(2026, 1, d) for d in range(1, 5)]


def _write(settings, train: pd.DataFrame, holdout: pd.DataFrame) -> None:
    settings.training_dir.mkdir(parents=True, exist_ok=True)
    train.to_parquet(settings.training_dir / "train.parquet", index=False)
    holdout.to_parquet(settings.training_dir / "holdout.parquet", index=False)
    write_json({"train_days": [str(d) for d in DAYS[:3]], "holdout_days": [str(DAYS[3])]}, settings.training_dir / "window.json")


def _labelled(day: date, n: int = 800) -> pd.DataFrame:
    f = generate_day(day, n, 9)
    return f.batch.merge(f.labels, on="customer_id")


def _sets() -> tuple[pd.DataFrame, pd.DataFrame]:
    return pd.concat([_labelled(d) for d in DAYS[:3]], ignore_index=True), _labelled(DAYS[3])


def test_good_training_set_passes(settings) -> None:
    _write(settings, *_sets())
    report = validate_training(settings)
    assert report["success"]
    assert (settings.reports_dir / "validation" / "training_train_docs" / "index.html").is_file()


def test_nan_labels_fail(settings) -> None:
    train, holdout = _sets()
    train["default"] = train["default"].astype("float64")
    train.loc[train.index[:10], "default"] = np.nan
    _write(settings, train, holdout)
    with pytest.raises(ValidationFailed) as exc:
        validate_training(settings)
    assert any(line.startswith("train: default: expected at most 0.0% nulls") for line in exc.value.failures), exc.value.failures


def test_leaking_feature_is_named(settings) -> None:
    train, holdout = _sets()
    train["days_since_last_payment"] = train["default"] * 90 + 1
    _write(settings, train, holdout)
    with pytest.raises(ValidationFailed) as exc:
        validate_training(settings)
    assert [line.split(":")[1].strip() for line in exc.value.failures] == ["days_since_last_payment"]
    assert "label leakage" in exc.value.failures[0]


def test_rows_from_after_the_window_fail(settings) -> None:
    train, holdout = _sets()
    train.loc[train.index[:3], "event_ts"] = pd.Timestamp("2026-03-01")
    _write(settings, train, holdout)
    with pytest.raises(ValidationFailed) as exc:
        validate_training(settings)
    assert any(line.startswith("train: event_ts: expected values between") for line in exc.value.failures)
