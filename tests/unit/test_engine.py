"""The one engine setting (pipelines/engine.py): local, spark, auto by Parquet metadata, the
deprecated drift keys, and one-line errors."""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd
import pytest

from pipelines.config import load_settings
from pipelines.engine import ENV_MASTER, choose_engine, parquet_rows, spark_master
from pipelines.errors import PipelineError

REPO = Path(__file__).resolve().parents[2]


def params_file(tmp_path: Path, engine: str | None = None, drift: str = "") -> Path:
    """The repository's params.yaml with its engine section replaced by ``engine`` (None: no
    section, as in an older file) and ``drift`` lines added to the drift section."""
    text = (REPO / "params.yaml").read_text()
    start, end = text.index("\nengine:\n"), text.index("\nserve:\n")
    text = text[:start] + ("\n" + engine if engine is not None else "") + text[end:]
    text = text.replace("  html_report: true", "  html_report: true\n" + drift, 1)
    path = tmp_path / "params.yaml"
    path.write_text(text)
    return path


def parquet(path: Path, rows: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"x": range(rows)}).to_parquet(path)
    return path


def test_local_is_the_default_and_spark_is_chosen_by_name(tmp_path: Path) -> None:
    batch = parquet(tmp_path / "b.parquet", 10)
    assert load_settings(REPO / "params.yaml").engine.name == "local"
    assert choose_engine(load_settings(params_file(tmp_path, None)), [batch]) == "local"
    spark = load_settings(params_file(tmp_path, "engine:\n  name: spark\n"))
    assert choose_engine(spark, [batch]) == "spark"
    assert choose_engine(spark, [batch], "local") == "local"  # a command's --engine wins


def test_auto_counts_rows_from_the_parquet_footers(tmp_path: Path) -> None:
    settings = load_settings(params_file(tmp_path, "engine:\n  name: auto\n  auto_rows: 100\n"))
    folder = tmp_path / "day"
    parquet(folder / "part-0.parquet", 60)
    parquet(folder / "part-1.parquet", 30)
    assert parquet_rows([folder]) == 90
    assert choose_engine(settings, [folder]) == "local"  # 90 rows: not above 100
    parquet(folder / "sub" / "part-2.parquet", 11)
    assert choose_engine(settings, [folder]) == "spark"  # 101 rows, summed over every part file
    assert choose_engine(settings, [folder / "part-0.parquet", folder / "part-1.parquet"]) == "local"
    assert choose_engine(settings, ["s3a://bucket/day/"]) == "spark"  # only Spark reads a URI
    (tmp_path / "bad.parquet").write_text("not parquet")
    with pytest.raises(PipelineError, match=r"bad.parquet is not a readable Parquet file"):
        parquet_rows([tmp_path / "bad.parquet"])


def test_the_master_comes_from_the_environment_first(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = load_settings(params_file(tmp_path, 'engine:\n  name: spark\n  spark_master: "local[3]"\n'))
    monkeypatch.delenv(ENV_MASTER, raising=False)
    assert spark_master(settings) == "local[3]"
    monkeypatch.setenv(ENV_MASTER, "spark://head:7077")
    assert spark_master(settings) == "spark://head:7077"
    monkeypatch.setenv(ENV_MASTER, "")  # empty: keep what spark-submit configured
    assert spark_master(settings) is None


def test_deprecated_drift_keys_still_work_with_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = params_file(tmp_path, None, '  engine: arrow\n  spark_master: "spark://old:7077"\n')
    with caplog.at_level(logging.WARNING):
        settings = load_settings(path)
    assert settings.engine.name == "local" and settings.engine.spark_master == "spark://old:7077"
    warned = [r.getMessage() for r in caplog.records if "deprecated" in r.getMessage()]
    line = path.read_text().splitlines().index("  engine: arrow") + 1
    assert warned[0] == (f"{path}:{line}:3: drift.engine is deprecated: use engine.name (one engine setting for drift, "
                         "scoring and live performance); arrow is now called local")
    assert "drift.spark_master is deprecated: use engine.spark_master" in warned[1]
    spark = load_settings(params_file(tmp_path, None, "  engine: spark\n"))
    assert spark.engine.name == "spark" and spark.engine.spark_master == "local[*]"
    # beside an engine section: the same value is only a warning, another one an error
    same = load_settings(params_file(tmp_path, "engine:\n  name: spark\n", "  engine: spark\n"))
    assert same.engine.name == "spark"
    path = params_file(tmp_path, "engine:\n  name: spark\n", "  engine: arrow\n")
    with pytest.raises(PipelineError) as exc:
        load_settings(path)
    line = path.read_text().splitlines().index("  engine: arrow") + 1
    assert str(exc.value) == (f"{path}:{line}:3: drift.engine 'arrow' disagrees with engine.name 'spark': "
                              "drift.engine is deprecated, remove it")


def test_arrow_is_an_alias_and_a_bad_value_is_one_line(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    settings = load_settings(params_file(tmp_path, "engine:\n  name: spark\n"))
    batch = parquet(tmp_path / "b.parquet", 5)
    with caplog.at_level(logging.WARNING):
        assert choose_engine(settings, [batch], "arrow") == "local"
    assert "engine 'arrow' is deprecated: use local" in caplog.text
    with pytest.raises(PipelineError, match=r"^unknown engine 'polars' \(--engine\): use local, spark or auto$"):
        choose_engine(settings, [batch], "polars")
    path = params_file(tmp_path, "engine:\n  name: pandas\n")
    with pytest.raises(PipelineError) as exc:
        load_settings(path)
    line = path.read_text().splitlines().index("  name: pandas") + 1
    assert str(exc.value) == f"{path}:{line}:9: engine.name: expected 'local', 'spark' or 'auto', got 'pandas'"
    path = params_file(tmp_path, None, "  engine: polars\n")
    with pytest.raises(PipelineError, match=r"drift.engine: expected 'arrow', 'local' or 'spark', got 'polars'$"):
        load_settings(path)


def test_local_masters_import_this_package_and_clusters_bring_their_own() -> None:
    from pipelines.engine import PACKAGE_PARENT, base_conf

    assert base_conf("local[2]")["spark.executorEnv.PYTHONPATH"].split(":")[0] == str(PACKAGE_PARENT)
    for master in ("spark://head:7077", "yarn", None):  # None: what spark-submit chose
        assert "spark.executorEnv.PYTHONPATH" not in base_conf(master)
    assert base_conf(None)["spark.sql.legacy.parquet.nanosAsLong"] == "true"


def test_an_error_raised_in_a_python_worker_is_its_last_line() -> None:
    from pipelines.engine import spark_reason

    worker = RuntimeError(
        "\n  An exception was thrown from the Python worker. Please see the stack trace below.\n"
        "Traceback (most recent call last):\n  File \"x.py\", line 1, in f\n    raise PipelineError(...)\n"
        "pipelines.errors.PipelineError: labels in 'default' are not 0/1 ('maybe')\n"
    )
    assert spark_reason(worker) == "pipelines.errors.PipelineError: labels in 'default' are not 0/1 ('maybe')"
    assert spark_reason(RuntimeError("[PATH_NOT_FOUND] Path does not exist: /x.")) == "[PATH_NOT_FOUND] Path does not exist: /x."
