"""The drift counts on Spark, for batches larger than one machine.

The same computation as the streamed path (pipelines/model/profile.py), expressed in Spark SQL: every
value gets the bin index of the champion's frozen profile ("how many edges does it exceed" for a
numerical feature, the position in the training categories or the "unseen" bin for a
categorical one; nulls and NaN apart), and a GROUP BY of that index counts each feature. Only
those counts (a few hundred integers) come back to the driver, where ``feature_drift`` turns
them into PSI exactly as for the streamed path: one number, whichever engine counted.

Nothing here is a distributed engine of our own: Spark distributes the scan and the sums.
``drift --engine spark`` (or ``engine.name: spark`` in params.yaml, or ``auto`` on a large day) uses
it; ``engine.spark_master`` picks the cluster (pipelines/engine.py starts the session).
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from pipelines.engine import quoted, spark_reason, spark_session
from pipelines.errors import PipelineError
from pipelines.model.profile import check_columns, feature_drift

__all__ = ["bin_column", "quoted", "spark_counts", "spark_drift", "spark_reason", "spark_session"]

def bin_column(df: Any, name: str, frozen: dict[str, Any], numerical: bool) -> Any:
    """A Spark column: the value's bin index in the frozen profile, -1 for a null."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import BooleanType

    column = df[quoted(name)]
    if numerical:
        x = column.try_cast("double")
        exceeded = sum(((x > F.lit(float(edge))).cast("int") for edge in frozen["edges"]), F.lit(0))
        # Spark orders NaN above every number: NaN counts as null, as in the streamed path
        return F.when(x.isNull() | F.isnan(x), F.lit(-1)).otherwise(exceeded)
    # the profile holds pandas' str() of each category: "True"/"False", not Spark's "true"
    is_bool = isinstance(df.schema[name].dataType, BooleanType)
    x = F.when(column, F.lit("True")).when(~column, F.lit("False")) if is_bool else column.cast("string")
    cats = frozen["categories"]
    position = F.lit(len(cats))  # the "unseen" bin
    if cats:
        lookup = F.create_map(*[F.lit(v) for i, c in enumerate(cats) for v in (c, i)])
        position = F.coalesce(lookup[x], position)
    return F.when(x.isNull(), F.lit(-1)).otherwise(position)


def spark_counts(df: Any, profile: dict[str, Any]) -> tuple[dict[str, list[int]], dict[str, int], int]:
    """Counts per frozen bin, nulls per feature and rows of a Spark DataFrame.

    Per feature, a GROUP BY of the bin index: Parquet is columnar, so each scan reads one
    column; Spark pre-aggregates on every partition, so only (bin, count) rows come back.
    """
    check_columns(profile, df.columns)
    features = {**{c: (p, True) for c, p in profile["numerical"].items()},
                **{c: (p, False) for c, p in profile["categorical"].items()}}
    counts, nulls, rows = {}, {}, 0
    for col, (frozen, numerical) in features.items():
        counts[col], nulls[col] = [0] * len(frozen["counts"]), 0
        for row in df.groupBy(bin_column(df, col, frozen, numerical).alias("bin")).count().collect():
            if row["bin"] < 0:
                nulls[col] = int(row["count"])
            else:
                counts[col][row["bin"]] = int(row["count"])
        rows = sum(counts[col]) + nulls[col]
    return counts, nulls, rows


def spark_drift(
    source: str | list[str], profile: dict[str, Any], master: str | None, sample_rows: int, variants: tuple[str, ...] = (),
    conf: dict[str, str] | None = None,
) -> tuple[dict[str, Any], int, pd.DataFrame]:
    """PSI per feature of the Parquet batch at ``source`` (any path or URI Spark reads, or a
    list of them: the part files of a day's prediction log), the row count, and a seeded
    random sample of at most ``sample_rows`` rows of it (for the Evidently report's
    histograms). ``variants``: count only the rows of these (the log's served rows)."""
    spark = spark_session(master, conf)
    try:
        df = spark.read.parquet(*([source] if isinstance(source, str) else source))
        if variants:
            df = df.where(df["variant"].isin(*variants))
        counts, nulls, rows = spark_counts(df, profile)
        features = list(counts)
        picked = df.select(*[df[quoted(c)] for c in features])
        if rows > sample_rows:
            # Seeded Bernoulli sample of the whole batch, aimed ~9 standard deviations above
            # sample_rows so it is never short; only those rows reach the driver, which keeps a
            # seeded random sample_rows of them (a limit() would keep the first partitions).
            picked = picked.sample(fraction=min(1.0, (sample_rows + 10 * sample_rows**0.5 + 10) / rows), seed=0)
        sample = picked.toPandas()
        if len(sample) > sample_rows:
            sample = sample.sample(n=sample_rows, random_state=0).sort_index().reset_index(drop=True)
    except PipelineError:
        raise
    except Exception as exc:  # AnalysisException (missing path, not Parquet, bad types), Py4JJavaError, ...
        where = source if isinstance(source, str) else f"{source[0]} (and {len(source) - 1} more)"
        raise PipelineError(f"spark cannot read {where}: {spark_reason(exc)}") from exc
    return feature_drift(profile, counts, nulls, rows), rows, sample
