"""The Spark engine of the drift job counts exactly what the streamed engine counts.

Runs a real local Spark (pyspark from requirements-spark.lock, installed by `make test`; Java 17
from the machine, or from Debian's packages when it is missing) on Parquet files, against the
streamed pyarrow counting of pipelines/model/profile.py on the same files. Equal counts mean equal
PSI: both end in the same ``feature_drift``. A cluster cannot run here; `local[2]` runs the same
plan on two executor threads (one session for every Spark test: the ``spark`` fixture in
tests/integration/conftest.py).
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipelines.data.simulate import generate_day
from pipelines.errors import PipelineError
from pipelines.model.features import model_input
from pipelines.model.profile import Accumulator, build_profile, stream_batches

pytestmark = pytest.mark.integration


def awkward_batch(settings, day: date, rows: int) -> pd.DataFrame:
    """A batch with everything the two engines could disagree on."""
    cur = model_input(generate_day(day, rows, 1).batch, settings.params.data)
    cur["income"] = cur["income"].astype("float64")
    cur.loc[::7, "income"] = np.nan  # written as real NaN values (write_parquet); both engines: null
    cur.loc[3, "income"] = np.inf  # beyond every edge: last bin
    cur.loc[4, "income"] = -np.inf  # below every edge: first bin
    cur["region"] = cur["region"].astype("object")
    cur.loc[::11, "region"] = None
    cur.loc[::13, "region"] = "atlantis"  # unseen category
    cur.loc[5, "region"] = ""  # an empty string is a value, not a null
    cur["age"] = cur["age"].round().astype("Int64")  # integers with nulls
    cur.loc[::17, "age"] = pd.NA
    # not a feature, but in every batch: pandas writes nanosecond timestamps, which Spark reads
    # only with spark.sql.legacy.parquet.nanosAsLong
    cur["event_ts"] = pd.Timestamp(day) + pd.to_timedelta(np.arange(len(cur)) * 1001, unit="ns")
    return cur


def write_parquet(df: pd.DataFrame, path: Path) -> None:
    """Parquet with real NaN values in ``income`` (pandas would write them as nulls) and real
    nulls in ``credit_limit``: Spark orders NaN above every number, so the two must be told apart."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(df, preserve_index=False)
    i = table.schema.get_field_index("income")
    table = table.set_column(i, "income", pa.array(df["income"].to_numpy(dtype="float64")))  # NaN stays NaN
    assert pa.compute.sum(pa.compute.is_nan(table["income"])).as_py() > 0
    limit = df["credit_limit"].astype("float64").to_numpy()
    mask = np.zeros(len(df), dtype=bool)
    mask[::19] = True
    j = table.schema.get_field_index("credit_limit")
    table = table.set_column(j, "credit_limit", pa.array(limit, mask=mask))
    pq.write_table(table, path)


def test_spark_counts_equal_the_streamed_counts(spark, settings, tmp_path: Path) -> None:
    from pipelines.monitoring.drift_spark import spark_counts

    ref = model_input(generate_day(date(2026, 1, 10), 4000, 1).batch, settings.params.data)
    profile = build_profile(ref, np.zeros(len(ref)), settings.params.data, 10)
    # exact bin edges occur as values: (e[i-1], e[i]] must put them in the same bin on both sides
    cur = awkward_batch(settings, date(2026, 1, 11), 3000)
    edge = profile["numerical"]["income"]["edges"][2]
    cur.loc[20:40, "income"] = edge
    path = tmp_path / "batch"
    path.mkdir()
    # two files: Spark reads a folder of parts as one batch, as on a cluster
    write_parquet(cur.iloc[:1700], path / "part-0.parquet")
    write_parquet(cur.iloc[1700:], path / "part-1.parquet")

    streamed = Accumulator(profile)
    for part in sorted(path.glob("*.parquet")):
        for batch in stream_batches(part, list(streamed.counts), 500):
            streamed.add(batch)
    counts, nulls, rows = spark_counts(spark.read.parquet(str(path)), profile)

    assert rows == streamed.rows == len(cur)
    assert counts == {c: v.tolist() for c, v in streamed.counts.items()}
    assert nulls == streamed.nulls
    assert min(nulls["income"], nulls["credit_limit"], nulls["age"], nulls["region"]) > 0
    assert counts["region"][-1] > 0  # the unseen bin ("atlantis", "")


def test_spark_drift_psi_is_the_streamed_psi(spark, settings, tmp_path: Path) -> None:
    from pipelines.monitoring.drift_spark import spark_drift

    ref = model_input(generate_day(date(2026, 1, 10), 4000, 1).batch, settings.params.data)
    profile = build_profile(ref, np.zeros(len(ref)), settings.params.data, 10)
    cur = awkward_batch(settings, date(2026, 1, 12), 2500)
    cur["logins_30d"] = cur["logins_30d"] * 3  # a drifted feature
    write_parquet(cur, tmp_path / "cur.parquet")
    streamed = Accumulator(profile)
    for batch in stream_batches(tmp_path / "cur.parquet", list(streamed.counts), 1000):
        streamed.add(batch)

    result, rows, sample = spark_drift(str(tmp_path / "cur.parquet"), profile, "local[2]", 100)
    assert result == streamed.result()  # the same floats, not merely close
    assert result["logins_30d"]["psi"] > 0.2 > result["age"]["psi"]
    assert rows == len(cur) and len(sample) == 100 and set(sample.columns) == set(streamed.counts)


def test_code_typed_categoricals_and_dotted_names(spark, tmp_path: Path) -> None:
    """Integer and boolean categoricals with nulls, and a column name with a dot: Spark's
    strings ("true", struct access for "a.b") must not leak into the counts."""
    from pipelines.config import DataParams
    from pipelines.monitoring.drift_spark import spark_counts

    data = DataParams(numerical=["x.y"], categorical=["code", "flag"])
    ref = pd.DataFrame({"x.y": np.arange(100.0), "code": pd.array([1, 2, 3, 1] * 25, dtype="Int64"),
                        "flag": pd.array([True, False] * 50, dtype="boolean")})
    profile = build_profile(ref, np.zeros(100), data, 4)
    cur = pd.DataFrame({"x.y": [1.0, 2.0, 50.0, np.nan], "code": pd.array([1, None, 2, 9], dtype="Int64"),
                        "flag": pd.array([True, None, False, True], dtype="boolean")})
    cur.to_parquet(tmp_path / "cur.parquet")
    streamed = Accumulator(profile)
    for batch in stream_batches(tmp_path / "cur.parquet", list(streamed.counts), 10):
        streamed.add(batch)
    counts, nulls, rows = spark_counts(spark.read.parquet(str(tmp_path / "cur.parquet")), profile)
    assert counts == {c: v.tolist() for c, v in streamed.counts.items()}
    assert counts["code"] == [1, 1, 0, 1] and counts["flag"] == [1, 2, 0]
    assert nulls == streamed.nulls == {"x.y": 1, "code": 1, "flag": 1} and rows == 4


def test_missing_column_and_unreadable_input_are_clear_errors(spark, settings, tmp_path: Path) -> None:
    from pipelines.monitoring.drift_spark import spark_counts, spark_drift

    ref = model_input(generate_day(date(2026, 1, 10), 500, 1).batch, settings.params.data)
    profile = build_profile(ref, np.zeros(len(ref)), settings.params.data, 10)
    ref.drop(columns=["logins_30d"]).to_parquet(tmp_path / "short.parquet")
    with pytest.raises(PipelineError, match=r"lacks columns of the reference profile: \['logins_30d'\]"):
        spark_counts(spark.read.parquet(str(tmp_path / "short.parquet")), profile)
    with pytest.raises(PipelineError, match=r"spark cannot read .*nowhere"):
        spark_drift(str(tmp_path / "nowhere"), profile, "local[2]", 10)
    (tmp_path / "bad.parquet").write_text("not parquet")
    with pytest.raises(PipelineError, match=r"spark cannot read .*bad\.parquet") as info:
        spark_drift(str(tmp_path / "bad.parquet"), profile, "local[2]", 10)
    assert "\n" not in str(info.value) and "\tat " not in str(info.value)  # one line, no JVM stack


def test_spark_counts_a_prediction_logs_served_rows_as_the_streamed_engine_does(spark, settings) -> None:
    """A day served only online: both engines count the served rows (champion, canary) of the
    log's parts, never the shadow's duplicates, with the same PSI."""
    from pipelines.monitoring.drift import SERVED, served_counts, stream_log_counts
    from pipelines.monitoring.drift_spark import spark_drift
    from pipelines.serving.predlog import PredictionLog
    from tests.support.clock import after_a_coming_midnight

    d = settings.params.data
    ref = model_input(generate_day(date(2026, 1, 10), 3000, 1).batch, d)
    profile = build_profile(ref, np.zeros(len(ref)), d, 10)
    cur = model_input(generate_day(date(2026, 1, 12), 1200, 1).batch, d)
    cur["logins_30d"] = cur["logins_30d"] * 3
    cur.loc[::9, "income"] = np.nan
    cur.loc[::13, "region"] = None
    today = after_a_coming_midnight(60)
    plog = PredictionLog(settings.online_predictions_dir, d)
    columns = {c: cur[c].to_numpy() for c in cur.columns}  # as a scorer's columns: the whole day in one call
    for i in range(0, len(cur), 100):  # requests of 50 rows; two parts
        for at, variant in ((i, "champion"), (i + 50, "canary")):
            plog.append(f"r{at}", None, variant, "m", "1", "run1", np.full(50, 0.5), 1.0, (columns, at))
            plog.append(f"r{at}", None, "shadow", "m", "2", "run2", np.full(50, 0.5), 1.0)
        if i == 500:
            plog.flush()
    plog.flush()
    parts = sorted((settings.online_predictions_dir / today.isoformat()).glob("part-*.parquet"))
    assert len(parts) == 2

    served = served_counts(parts, list(cur.columns))
    assert sum(n for _, n in served) == len(cur)
    streamed, rows, sample = stream_log_counts(served, profile, 300, 100)
    result, spark_rows, spark_sample = spark_drift([str(p) for p in parts], profile, "local[2]", 100, SERVED)
    assert result == streamed and rows == spark_rows == len(cur)  # the same floats, each request row once
    assert result["logins_30d"]["psi"] > 0.2 > result["age"]["psi"]
    assert len(pd.concat(sample)) == len(spark_sample) == 100
