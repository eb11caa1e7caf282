"""Scoring and live performance on Spark give the local engine's results, to the last bit.

A real MLflow SQLite registry with a champion and a challenger trained by the pipeline's own
functions (tests/support/serving.py), a real local Spark (`local[2]`, the session shared by every
Spark test: tests/integration/conftest.py). The day is rewritten in three row groups and Spark
made to read it as three partitions in Arrow batches of 64 rows, so the order and the batching
of a cluster's tasks are exercised.
"""

from __future__ import annotations

import os
from datetime import date
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipelines.config import EngineParams, Settings
from pipelines.engine import ENV_MASTER
from pipelines.io import find_partition
from tests.support.serving import serving_project, set_alias, train_version

pytestmark = pytest.mark.integration
DAY = date(2026, 1, 4)  # its labels have matured by the last simulated day


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Any:
    saved = {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", ENV_MASTER)}
    settings = serving_project(tmp_path_factory.mktemp("spark-engine") / "repo")
    v1 = train_version(settings)
    set_alias(settings, "champion", v1)
    v2 = train_version(settings, max_iter=40, max_depth=3)
    set_alias(settings, "challenger", v2)
    src = settings.validated_dir / f"{DAY.isoformat()}.parquet"
    pq.write_table(pq.read_table(src), src, row_group_size=200)  # 600 rows: three row groups
    os.environ[ENV_MASTER] = "local[2]"
    yield settings, v1, v2
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture
def small_tasks(spark: Any, project: Any) -> Any:
    """Spark reads the day as three partitions and hands the Python workers 64 rows at a time."""
    settings = project[0]
    size = (settings.validated_dir / f"{DAY.isoformat()}.parquet").stat().st_size
    spark.conf.set("spark.sql.files.maxPartitionBytes", str(size // 3 + 1))
    spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", "64")
    yield spark
    spark.conf.unset("spark.sql.files.maxPartitionBytes")
    spark.conf.unset("spark.sql.execution.arrow.maxRecordsPerBatch")


def bits(values: Any) -> np.ndarray:
    return np.asarray(values, dtype="float64").view("int64")


def test_a_day_scored_on_spark_equals_the_local_scores_bit_for_bit(project: Any, small_tasks: Any) -> None:
    from pipelines.serving.score import score

    settings, v1, v2 = project
    src = settings.validated_dir / f"{DAY.isoformat()}.parquet"
    assert small_tasks.read.parquet(str(src)).rdd.getNumPartitions() == 3
    dest = settings.predictions_dir / f"{DAY.isoformat()}.parquet"
    shadow = settings.shadow_predictions_dir / f"{DAY.isoformat()}.parquet"

    local = score(settings, DAY, engine="local")
    local_rows, local_shadow = pq.read_table(dest), pq.read_table(shadow)
    on_spark = score(settings, DAY, engine="spark")
    spark_rows, spark_shadow = pq.read_table(dest), pq.read_table(shadow)

    assert local["engine"] == "local" and on_spark["engine"] == "spark"
    for theirs, ours, version in ((spark_rows, local_rows, v1), (spark_shadow, local_shadow, v2)):
        assert theirs.schema == ours.schema and theirs.num_rows == ours.num_rows == 600
        assert theirs.column("customer_id").equals(ours.column("customer_id"))  # the same rows in the same order
        assert theirs.column("event_ts").equals(ours.column("event_ts"))
        assert np.array_equal(bits(theirs.column("score")), bits(ours.column("score")))
        for col in ("model_name", "model_version", "model_run_id", "scoring_date"):
            assert theirs.column(col).equals(ours.column(col)), col
        assert set(theirs.column("model_version").to_pylist()) == {version}
    assert not np.array_equal(bits(spark_rows.column("score")), bits(spark_shadow.column("score")))  # two models
    for key in ("rows", "model_version", "mean_score", "score_p50", "score_p90", "shadow"):
        assert on_spark[key] == local[key], key


def test_auto_scores_a_large_day_on_spark(project: Any, spark: Any) -> None:
    from pipelines.serving.score import score

    settings = project[0]
    auto = Settings(settings.params.model_copy(update={"engine": EngineParams(name="auto", auto_rows=599)}), settings.root)
    assert score(auto, DAY)["engine"] == "spark"  # 600 rows, from the footer
    auto = Settings(settings.params.model_copy(update={"engine": EngineParams(name="auto", auto_rows=600)}), settings.root)
    assert score(auto, DAY)["engine"] == "local"


def online_part(settings: Any, batch: pd.DataFrame, champion_run: str, challenger_run: str) -> None:
    """A day's online log beside the batch: served rows (some ids also in the batch, one twice),
    a shadow row, an id no label has and a null id."""
    ids = batch["customer_id"].astype(str).tolist()
    rows = pd.DataFrame({
        "customer_id": [ids[0], ids[1], ids[1], ids[2], "nobody", None],
        "score": [0.1, 0.2, 0.3, 0.4, 0.5, 0.6],
        "model_version": ["1", "1", "1", "2", "1", "1"],
        "model_run_id": [champion_run, champion_run, champion_run, challenger_run, champion_run, champion_run],
        "variant": ["champion", "canary", "champion", "shadow", "champion", "champion"],
    })
    folder = settings.online_predictions_dir / DAY.isoformat()
    folder.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pandas(rows, preserve_index=False), folder / "part-00000.parquet")


def test_live_performance_on_spark_equals_the_local_join(project: Any, small_tasks: Any) -> None:
    from pipelines.monitoring.performance import live_metrics, local_join, performance
    from pipelines.monitoring.performance_spark import spark_join

    settings = project[0]
    batch = pd.read_parquet(settings.predictions_dir / f"{DAY.isoformat()}.parquet")
    shadow = pd.read_parquet(settings.shadow_predictions_dir / f"{DAY.isoformat()}.parquet")
    online_part(settings, batch, batch["model_run_id"].iloc[0], shadow["model_run_id"].iloc[0])
    labels = find_partition(settings.labels_dir, DAY)
    assert labels is not None

    local, served, online = local_join(settings, DAY, labels)
    parts = sorted((settings.online_predictions_dir / DAY.isoformat()).glob("part-*.parquet"))
    joined, spark_served, spark_online = spark_join(settings, settings.predictions_dir / f"{DAY.isoformat()}.parquet", parts,
                                                    labels)
    assert (spark_served, spark_online) == (served, online) == (604, 5)
    assert len(joined) == len(local) == 604  # the batch's 600, four online rows with a label (one of them shadow)
    assert np.array_equal(bits(joined["score"]), bits(local["score"]))  # same rows, same order
    for col in ("default", "model_version", "model_run_id", "variant"):
        assert joined[col].tolist() == local[col].tolist(), col
    mine, theirs = (f[f["variant"].isin(("batch", "champion", "canary"))] for f in (local, joined))
    assert live_metrics(theirs["score"].to_numpy(), theirs["default"].to_numpy()) == live_metrics(
        mine["score"].to_numpy(dtype="float64"), mine["default"].to_numpy(dtype="int64")
    )  # the same floats, AUC and log loss alike
    on_spark, here = performance(settings, DAY, engine="spark"), performance(settings, DAY, engine="local")
    assert (on_spark.pop("engine"), here.pop("engine")) == ("spark", "local") and on_spark == here
