"""Live performance on Spark: the join of a day's predictions with its matured labels.

Spark reads the day's batch predictions and the parts of its online prediction log, casts the
ids to text, turns the labels into 0/1 with the project's own ``binary_labels`` (in
``mapInPandas``, as the local engine calls it) and joins the two on the id. Only the joined
rows' score, label, model run and variant come back to the driver (as Arrow), where
pipelines/monitoring/performance.py computes ROC AUC, log loss and rates with the same function
as the local engine. The rows come back in the local join's order (each prediction file's row
order, then the labels file's), so even the order-sensitive sums (log loss, the mean score) are
the same floats.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import reduce
from pathlib import Path
from typing import Any

import pandas as pd

from pipelines.config import Settings
from pipelines.data.prepare import binary_labels
from pipelines.engine import quoted, spark_reason, step_session
from pipelines.errors import PipelineError

SERVED = ("batch", "champion", "canary")  # predictions a client received (as pipelines/monitoring/performance.py)
ORDER = ["_src", "_pos", "_lpos"]


def labeller(id_col: str, target: str, positive: object) -> Callable[[Iterator[pd.DataFrame]], Iterator[pd.DataFrame]]:
    """The function ``mapInPandas`` runs over the labels: the target as 0/1 (``binary_labels``)."""

    def label(frames: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for frame in frames:
            out = pd.DataFrame({id_col: frame[id_col], "_lpos": frame["_lpos"]})
            out[target] = binary_labels(frame[target], positive, target).astype("float64")  # NaN: no label
            yield out

    return label


def _predictions(spark: Any, settings: Settings, batch: Path | None, parts: list[Path]) -> Any:
    """Every prediction of the day (batch first, then the log's parts), ids as text, with its
    source and position for the local engine's order."""
    from pyspark.sql import functions as F

    d = settings.params.data
    cols = [d.id_col, "score", "model_version", "model_run_id"]
    frames = []
    for i, path in enumerate(([batch] if batch else []) + parts):
        df = spark.read.parquet(str(path))
        variant = F.lit("batch") if path == batch else df["variant"]
        frames.append(df.select(
            df[quoted(d.id_col)].cast("string").alias(d.id_col), *[df[c] for c in cols[1:]], variant.alias("variant"),
            F.lit(i).alias("_src"), F.col("_metadata.row_index").alias("_pos"),
        ))
    pred = reduce(lambda a, b: a.unionByName(b), frames)
    return pred.where(pred[quoted(d.id_col)].isNotNull())


def _labels(spark: Any, settings: Settings, path: Path) -> Any:
    from pyspark.sql import functions as F
    from pyspark.sql.types import DoubleType, LongType, StringType, StructField, StructType

    d = settings.params.data
    parquet = path.suffix == ".parquet"
    reader = spark.read.parquet(str(path)) if parquet else spark.read.csv(str(path), header=True, inferSchema=True)
    # a CSV has no row index: its order, partition after partition
    position = F.col("_metadata.row_index") if parquet else F.monotonically_increasing_id()
    raw = reader.select(
        reader[quoted(d.id_col)].cast("string").alias(d.id_col), reader[quoted(d.target)].alias(d.target), position.alias("_lpos")
    )
    schema = StructType(
        [StructField(d.id_col, StringType()), StructField("_lpos", LongType()), StructField(d.target, DoubleType())]
    )
    return raw.mapInPandas(labeller(d.id_col, d.target, d.positive_label), schema)


def spark_join(
    settings: Settings, batch: Path | None, parts: list[Path], label_path: Path
) -> tuple[pd.DataFrame, int, int]:
    """The day's predictions joined with its labels (score, target as int64, model_version,
    model_run_id, variant; the local join's rows in its order), the served prediction rows
    and the online ones."""
    from pyspark.sql import functions as F

    d = settings.params.data
    spark = step_session(settings)
    try:
        pred = _predictions(spark, settings, batch, parts)
        counts = pred.agg(
            F.sum(F.col("variant").isin(*SERVED).cast("long")).alias("served"),
            F.sum((F.col("variant") != "batch").cast("long")).alias("online"),
        ).collect()[0]
        labels = _labels(spark, settings, label_path)
        joined = pred.join(labels, on=d.id_col, how="inner").where(F.col(quoted(d.target)).isNotNull())
        table = joined.select("score", d.target, "model_version", "model_run_id", "variant", *ORDER).toArrow()
    except PipelineError:
        raise
    except Exception as exc:  # AnalysisException, PythonException (a label that is not 0/1), Py4JJavaError
        raise PipelineError(f"spark could not join the predictions with {label_path}: {spark_reason(exc)}") from exc
    out = table.to_pandas().sort_values(ORDER, kind="stable").drop(columns=ORDER).reset_index(drop=True)
    out[d.target] = out[d.target].astype("int64")
    return out, int(counts["served"] or 0), int(counts["online"] or 0)
