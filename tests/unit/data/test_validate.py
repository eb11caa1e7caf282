"""Daily-batch validation with the committed suite on real Great Expectations."""

from datetime import date

import pandas as pd
import pytest

from pipelines.data.simulate import generate_day
from pipelines.data.validate import validate_batch
from pipelines.errors import PipelineError, ValidationFailed

DAY = date(2026, 1, 5)


def _land(settings, frame: pd.DataFrame, suffix: str = ".parquet") -> None:
    settings.raw_dir.mkdir(parents=True, exist_ok=True)
    path = settings.raw_dir / f"{DAY}{suffix}"
    if suffix == ".csv":
        frame.to_csv(path, index=False)
    else:
        frame.to_parquet(path, index=False)


def _good() -> pd.DataFrame:
    return generate_day(DAY, 500, 3).batch


def _fails(settings, frame: pd.DataFrame) -> list[str]:
    _land(settings, frame)
    with pytest.raises(ValidationFailed) as exc:
        validate_batch(settings, DAY)
    q = settings.quarantine_dir / str(DAY)
    assert (q / f"{DAY}.parquet").is_file(), "the bad batch is kept in quarantine"
    assert (q / "validation_result.json").is_file()
    assert not (settings.raw_dir / f"{DAY}.parquet").exists()
    assert not (settings.validated_dir / f"{DAY}.parquet").exists(), "nothing reaches validated/"
    return exc.value.failures


def test_good_batch_passes_and_gets_a_report(settings) -> None:
    _land(settings, _good())
    res = validate_batch(settings, DAY)
    assert res["success"] and res["rows"] == 500
    assert (settings.validated_dir / f"{DAY}.parquet").is_file()
    assert (settings.reports_dir / "validation" / f"{DAY}.json").is_file()


def test_csv_batch_passes(settings) -> None:
    _land(settings, _good(), ".csv")
    assert validate_batch(settings, DAY)["success"]


def test_null_spike_named(settings) -> None:
    f = _good()
    f.loc[f.index[:250], "income"] = None
    lines = _fails(settings, f)
    assert any(line.startswith("income: expected at most 5.0% nulls, found 50.0% null") for line in lines), lines


def test_out_of_range_named(settings) -> None:
    f = _good()
    f.loc[f.index[:5], "age"] = 150
    lines = _fails(settings, f)
    assert any(line.startswith("age: expected values between") and "150" in line for line in lines), lines


def test_missing_and_unexpected_columns(settings) -> None:
    f = _good().drop(columns=["logins_30d"]).assign(surprise=1)
    lines = _fails(settings, f)
    assert any("missing ['logins_30d']" in line and "unexpected ['surprise']" in line for line in lines), lines


def test_label_in_scoring_batch_rejected(settings) -> None:
    lines = _fails(settings, _good().assign(default=0))
    assert any("unexpected ['default']" in line for line in lines), lines


def test_unseen_category(settings) -> None:
    f = _good()
    f.loc[f.index[:3], "region"] = "atlantis"
    lines = _fails(settings, f)
    assert any(line.startswith("region: expected values in") and "atlantis" in line for line in lines), lines


def test_duplicated_ids(settings) -> None:
    f = _good()
    f.loc[f.index[1], "customer_id"] = f.loc[f.index[0], "customer_id"]
    lines = _fails(settings, f)
    assert any(line.startswith("customer_id: expected unique values") for line in lines), lines


def test_timestamp_outside_its_day(settings) -> None:
    f = _good()
    f.loc[f.index[:2], "event_ts"] = pd.Timestamp("2026-02-01")
    lines = _fails(settings, f)
    assert any(line.startswith("event_ts: expected values between") for line in lines), lines


def test_corrupted_parquet_is_quarantined_not_a_traceback(settings) -> None:
    settings.raw_dir.mkdir(parents=True)
    (settings.raw_dir / f"{DAY}.parquet").write_bytes(b"PAR1 this is not parquet")
    with pytest.raises(ValidationFailed, match="cannot read"):
        validate_batch(settings, DAY)
    assert (settings.quarantine_dir / str(DAY) / f"{DAY}.parquet").is_file()


def test_earlier_validated_copy_survives_a_bad_redelivery(settings) -> None:
    _land(settings, _good())
    validate_batch(settings, DAY)
    before = (settings.validated_dir / f"{DAY}.parquet").read_bytes()
    bad = _good()
    bad.loc[bad.index[:300], "income"] = None
    _land(settings, bad)
    with pytest.raises(ValidationFailed):
        validate_batch(settings, DAY)
    assert (settings.validated_dir / f"{DAY}.parquet").read_bytes() == before


def test_wrong_dtype(settings) -> None:
    f = _good()
    f["income"] = f["income"].astype(str)
    lines = _fails(settings, f)
    assert any(line.startswith("income: expected type") for line in lines), lines


def test_all_null_column(settings) -> None:
    f = _good()
    f["tenure_months"] = None
    lines = _fails(settings, f)
    assert any(line.startswith("tenure_months:") for line in lines), lines


def test_inf_values(settings) -> None:
    f = _good()
    f.loc[f.index[:4], "credit_limit"] = float("inf")
    lines = _fails(settings, f)
    assert any(line.startswith("credit_limit: expected values between") for line in lines), lines


def test_zero_rows(settings) -> None:
    lines = _fails(settings, _good().head(0))
    assert any(line.startswith("rows: expected between 100") and "found 0" in line for line in lines), lines


def test_future_timestamps(settings) -> None:
    f = _good()
    f.loc[f.index[-3:], "event_ts"] = pd.Timestamp(f"{DAY}T23:00:00") + pd.Timedelta(days=30)
    lines = _fails(settings, f)
    assert any(line.startswith("event_ts: expected values between") for line in lines), lines


def test_empty_file_is_quarantined(settings) -> None:
    settings.raw_dir.mkdir(parents=True)
    (settings.raw_dir / f"{DAY}.parquet").write_bytes(b"")
    with pytest.raises(ValidationFailed, match="empty file"):
        validate_batch(settings, DAY)
    assert (settings.quarantine_dir / str(DAY) / f"{DAY}.parquet").is_file()


def test_csv_with_wrong_delimiter(settings) -> None:
    settings.raw_dir.mkdir(parents=True)
    _good().to_csv(settings.raw_dir / f"{DAY}.csv", index=False, sep=";")
    with pytest.raises(ValidationFailed) as exc:
        validate_batch(settings, DAY)
    assert any(line.startswith("columns: expected exactly the suite's columns, found missing") for line in exc.value.failures)
    assert (settings.quarantine_dir / str(DAY) / f"{DAY}.csv").is_file()


def test_failed_batch_has_data_docs(settings) -> None:
    f = _good()
    f.loc[f.index[:250], "income"] = None
    _fails(settings, f)
    docs = settings.quarantine_dir / str(DAY) / "data_docs" / "index.html"
    assert docs.is_file() and "income" in "".join(p.read_text() for p in docs.parent.rglob("*.html"))


def test_without_data_docs_the_verdict_is_the_same(settings) -> None:
    """validate.data_docs false (the replay's default): no HTML, same pass/fail and reasons."""
    from pipelines.config import Settings

    quiet = Settings(
        settings.params.model_copy(update={"validate_": settings.params.validate_.model_copy(update={"data_docs": False})}),
        settings.root,
    )
    f = _good()
    f.loc[f.index[:250], "income"] = None
    failures = _fails(quiet, f)
    assert any("income" in line for line in failures)
    assert not (quiet.quarantine_dir / str(DAY) / "data_docs").exists()
    _land(quiet, _good())  # the corrected feed
    res = validate_batch(quiet, DAY)
    assert res["data_docs"] is None and not list((quiet.reports_dir / "validation").glob("*_docs"))


def test_validating_a_quarantined_day_again_names_the_quarantine(settings) -> None:
    bad = _good()
    bad.loc[bad.index[:300], "income"] = None
    _fails(settings, bad)
    with pytest.raises(PipelineError) as exc:
        validate_batch(settings, DAY)
    assert str(exc.value) == (
        f"batch {DAY} is quarantined (failed validation): reasons in data/quarantine/{DAY}/validation_result.json; "
        f"fix the source and re-deliver data/raw/{DAY}.parquet, then run validate --date {DAY}"
    )
    _land(settings, _good())  # re-delivered, fixed: validated as any other day
    assert validate_batch(settings, DAY)["rows"] == 500
