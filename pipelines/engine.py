"""The engine of the data-heavy steps (drift, batch scoring, live performance): local or Spark.

One setting decides (``engine:`` in params.yaml, pipelines/params.py): ``local`` runs pyarrow and
pandas on this machine, ``spark`` runs the same computation on Spark, ``auto`` picks Spark for a
day with more than ``engine.auto_rows`` rows. The row count comes from the Parquet footers only
(``ParquetFile(...).metadata.num_rows``, summed over part files): nothing is read to decide.
``PIPELINES_SPARK_MASTER`` overrides ``engine.spark_master`` at run time (a deployment setting).

The Spark session starts here, for every step that uses it: nothing is a distributed engine of
our own, Spark distributes the work.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pipelines.config import Settings
from pipelines.errors import PipelineError, first_line

log = logging.getLogger(__name__)
ENV_MASTER = "PIPELINES_SPARK_MASTER"
ENGINES = ("local", "spark", "auto")
LOG4J2 = Path(__file__).with_name("spark-log4j2.properties")
PACKAGE_PARENT = Path(__file__).resolve().parent.parent  # where executors on this machine import pipelines from


def engine_name(name: str, key: str = "--engine") -> str:
    """``name`` as one of ENGINES; ``arrow`` (the drift job's old name) is ``local``, with a
    warning; anything else is a one-line error naming ``key``."""
    if name == "arrow":
        log.warning("engine %r is deprecated: use local (the same streamed computation)", name)
        return "local"
    if name not in ENGINES:
        raise PipelineError(f"unknown engine {name!r} ({key}): use local, spark or auto")
    return name


def spark_master(settings: Settings) -> str | None:
    """The Spark master: $PIPELINES_SPARK_MASTER, else engine.spark_master; None (empty) keeps
    what spark-submit configured."""
    env = os.environ.get(ENV_MASTER)
    return (env if env is not None else settings.engine.spark_master) or None


def parquet_rows(sources: Iterable[str | Path]) -> int | None:
    """Rows of Parquet files or folders of part files, from their footers only (no data read);
    None when a source is not a local path (a URI only Spark reads)."""
    import pyarrow.parquet as pq

    total = 0
    for source in sources:
        path = Path(source)
        if "://" in str(source) or not path.exists():
            return None
        files = sorted(p for p in path.rglob("*.parquet") if not p.name.startswith(("_", "."))) if path.is_dir() else [path]
        for f in files:
            try:
                total += pq.ParquetFile(f).metadata.num_rows
            except Exception as exc:  # ArrowInvalid, OSError: a file that is not Parquet
                raise PipelineError(f"{f} is not a readable Parquet file: {first_line(exc)}") from exc
    return total


def choose_engine(settings: Settings, sources: Iterable[str | Path], override: str | None = None) -> str:
    """``local`` or ``spark`` for a step reading ``sources``: ``override`` (a command's
    ``--engine``) or engine.name; ``auto`` is Spark above engine.auto_rows rows (or for a source
    only Spark reads)."""
    name = engine_name(override) if override else settings.engine.name
    if name != "auto":
        return name
    rows = parquet_rows(sources)
    chosen = "spark" if rows is None or rows > settings.engine.auto_rows else "local"
    log.info("engine auto: %s (%s rows, threshold engine.auto_rows %s)", chosen,
             "unknown" if rows is None else f"{rows:,}", f"{settings.engine.auto_rows:,}")
    return chosen


def spark_session(master: str | None, conf: dict[str, str] | None = None) -> Any:
    """A SparkSession (pyspark from requirements-spark.lock; Java 17+ on PATH or JAVA_HOME), with
    ``conf`` (engine.spark_conf) over the settings every step needs."""
    try:
        from pyspark.sql import SparkSession
    except ImportError as exc:
        raise PipelineError("the spark engine needs pyspark: `make spark` installs it from requirements-spark.lock") from exc
    if not (os.environ.get("JAVA_HOME") or shutil.which("java")):
        raise PipelineError("the spark engine needs Java 17 or newer: no `java` on PATH and JAVA_HOME is not set")
    builder = SparkSession.builder.appName("pipelines")
    if master:
        builder = builder.master(master)
    for key, value in {**base_conf(master), **(conf or {})}.items():
        builder = builder.config(key, value)
    # A quiet JVM start: no WARN lines before our own output (see the file). Log4j 2 reads this
    # variable in the JVM pyspark launches; a user's own LOG4J_CONFIGURATION_FILE wins, and no
    # Spark setting (spark-defaults.conf's extraJavaOptions on a cluster) is touched.
    # On a local master the Python workers are this interpreter (pyspark reads PYSPARK_PYTHON
    # when the context starts; a user's own wins): scoring runs our code, with our packages.
    launch = {"LOG4J_CONFIGURATION_FILE": LOG4J2.as_uri()}
    if (master or "").startswith("local"):  # a master spark-submit chose may be a cluster
        launch["PYSPARK_PYTHON"] = sys.executable
    added = [k for k in launch if k not in os.environ]
    os.environ.update({k: launch[k] for k in added})
    try:
        spark = builder.getOrCreate()
    except Exception as exc:  # PySparkRuntimeError JAVA_GATEWAY_EXITED: an old or broken Java, ...
        java = os.environ.get("JAVA_HOME") or shutil.which("java")
        raise PipelineError(f"Spark could not start (needs Java 17+; using {java}): {spark_reason(exc)}") from exc
    finally:
        for key in added:
            os.environ.pop(key, None)
    spark.sparkContext.setLogLevel("FATAL")  # failures reach the user as our one-line error
    return spark


def base_conf(master: str | None) -> dict[str, str]:
    """What every step needs of a session. On a local master the Python workers import this
    package from where the driver does (scoring runs our own code in them); a cluster's
    executors bring their own environment with the package installed."""
    conf = {
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        "spark.sql.session.timeZone": "UTC",
        # pandas writes nanosecond timestamps (event_ts), which Spark refuses to read otherwise
        "spark.sql.legacy.parquet.nanosAsLong": "true",
    }
    if (master or "").startswith("local"):  # a master spark-submit chose may be a cluster
        conf["spark.executorEnv.PYTHONPATH"] = os.pathsep.join(
            x for x in (str(PACKAGE_PARENT), os.environ.get("PYTHONPATH", "")) if x
        )
    return conf


JVM_NOISE = ("An error occurred while calling", "at ", "JVM stacktrace")


def spark_reason(exc: BaseException) -> str:
    """The message of a Spark/Py4J error without the JVM stack trace; for an exception raised
    in a Python worker (our code in a task), the last line of its traceback: what was raised."""
    text = str(exc)
    if "Traceback (most recent call last)" in text:
        raised = [line for line in text.splitlines() if line.strip() and not line.startswith((" ", "\t", "Traceback"))]
        if raised:
            return raised[-1].strip()
    return first_line(exc, skip=JVM_NOISE).lstrip(": ")


def quoted(name: str) -> str:
    """A column name Spark takes literally (a dot is not a struct field)."""
    return "`" + name.replace("`", "``") + "`"


def step_session(settings: Settings) -> Any:
    """The Spark session of a step: engine.spark_master (or $PIPELINES_SPARK_MASTER), engine.spark_conf."""
    return spark_session(spark_master(settings), settings.engine.spark_conf)
