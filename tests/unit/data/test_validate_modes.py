"""The `validate` step's four modes (pipelines/data/validate_modes.py) on real Great Expectations."""

import json
from datetime import date

import pandas as pd
import pytest

from pipelines.data import validate_modes
from pipelines.data.simulate import generate_day
from pipelines.errors import PipelineError, ValidationFailed

DAYS = [date(2026, 1, 5), date(2026, 1, 6)]


def _land(settings, day: date, frame: pd.DataFrame | None = None) -> None:
    settings.raw_dir.mkdir(parents=True, exist_ok=True)
    (generate_day(day, 300, 3).batch if frame is None else frame).to_parquet(settings.raw_dir / f"{day}.parquet", index=False)


def _null_spike(day: date) -> pd.DataFrame:
    frame = generate_day(day, 300, 3).batch
    frame.loc[frame.index[:150], "income"] = None
    return frame


def test_one_day_defaults_to_the_latest_raw_day(settings) -> None:
    for day in DAYS:
        _land(settings, day)
    res = validate_modes.validate(settings)
    assert res["day"] == DAYS[-1].isoformat() and res["validated"]
    assert not (settings.validated_dir / f"{DAYS[0]}.parquet").exists(), "only the latest day"
    assert validate_modes.validate(settings, day=DAYS[0].isoformat())["day"] == DAYS[0].isoformat()


def test_one_day_fails_with_no_batch_or_a_bad_one(settings) -> None:
    with pytest.raises(PipelineError, match="no day found; pass --date YYYY-MM-DD"):
        validate_modes.validate(settings)
    _land(settings, DAYS[0], _null_spike(DAYS[0]))
    with pytest.raises(ValidationFailed):
        validate_modes.validate(settings, day=DAYS[0].isoformat())


def test_all_days_validates_each_new_day_once(settings) -> None:
    for day in DAYS:
        _land(settings, day)
    assert validate_modes.validate(settings, all_days=True) == {"passed": [d.isoformat() for d in DAYS], "failed": []}
    assert validate_modes.validate(settings, all_days=True) == {"passed": [], "failed": []}, "up-to-date days are skipped"


def test_all_days_fails_naming_the_quarantined_day(settings) -> None:
    _land(settings, DAYS[0], _null_spike(DAYS[0]))
    _land(settings, DAYS[1])
    with pytest.raises(PipelineError, match=r"1 day\(s\) failed validation and were quarantined: \['2026-01-05'\]"):
        validate_modes.validate(settings, all_days=True)
    assert (settings.validated_dir / f"{DAYS[1]}.parquet").is_file(), "the good day still passes"
    assert (settings.quarantine_dir / DAYS[0].isoformat()).is_dir()


def test_profile_proposes_a_suite_beside_the_committed_one(settings) -> None:
    committed = (settings.expectations_dir / "daily_batch.json").read_text()
    for day in DAYS:
        _land(settings, day)
    res = validate_modes.validate(settings, profile="daily_batch")
    proposed = settings.expectations_dir / "daily_batch.proposed.json"
    assert res["proposed"] == str(proposed) and res["expectations"] == len(json.loads(proposed.read_text())["expectations"]) > 0
    assert res["review_then"] == f"mv {proposed} {settings.expectations_dir / 'daily_batch.json'}"
    assert (settings.expectations_dir / "daily_batch.json").read_text() == committed, "the committed suite is untouched"
    out = validate_modes.propose(settings, "daily_batch", "elsewhere/suite.json")
    assert out["proposed"] == str(settings.path("elsewhere/suite.json"))


def test_profile_fails_without_reference_data(settings) -> None:
    with pytest.raises(PipelineError, match="no batches to profile"):
        validate_modes.propose(settings, "daily_batch")
    _land(settings, DAYS[0])
    with pytest.raises(PipelineError, match="unknown suite kind 'nightly'"):
        validate_modes.propose(settings, "nightly")


def test_the_first_mode_given_wins(settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """--profile, then --training, then --all, then --date (as the CLI has always read them)."""
    from pipelines.data import validate

    monkeypatch.setattr(validate_modes, "propose", lambda s, kind, out: {"mode": "profile", "kind": kind})
    monkeypatch.setattr(validate, "validate_training", lambda s: {"mode": "training"})
    monkeypatch.setattr(validate_modes, "validate_new_days", lambda s: {"passed": [], "failed": []})
    assert validate_modes.validate(settings, day="2026-01-05", all_days=True, training=True, profile="training_set") == {
        "mode": "profile", "kind": "training_set"}
    assert validate_modes.validate(settings, day="2026-01-05", all_days=True, training=True) == {"mode": "training"}
    assert validate_modes.validate(settings, day="2026-01-05", all_days=True) == {"passed": [], "failed": []}
