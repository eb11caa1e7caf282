"""Monitoring commands: drift of a day's batch, live performance once labels matured."""

from __future__ import annotations

from typing import Any

import typer

from pipelines.cli.common import _day, _run, _settings, log
from pipelines.errors import PipelineError


def drift(
    date: str | None = typer.Option(None, "--date", help="Day to check; default the latest validated."),
    engine: str | None = typer.Option(
        None, "--engine", help="local (streamed here), spark or auto; default engine.name in params.yaml."
    ),
    source: str | None = typer.Option(
        None, "--input", help="Batch to check instead of data/validated/<day>.parquet (spark: any URI it reads, e.g. s3a://...)."
    ),
) -> None:
    """PSI per feature against the champion's reference (Evidently); says if retraining is due."""
    from pipelines.monitoring.drift import drift as fn

    def go() -> Any:
        if source and not date:
            raise PipelineError(
                "--input needs --date: the day the batch is for (its report and the retrain streak are kept by day)"
            )
        res = fn(_settings(), _day(date), engine, source)
        log.info("drift: retrain %s - %s", "DUE" if res["retrain"] else "not due", res["reason"])
        return res

    _run(go)


def performance(
    date: str | None = typer.Option(None, "--date", help="Day whose labels matured; default every such day not yet measured."),
    engine: str | None = typer.Option(
        None, "--engine", help="local, spark (the same join) or auto; default engine.name in params.yaml."
    ),
) -> None:
    """Real ROC AUC of past predictions once their labels matured, logged to MLflow as a time series."""
    from pipelines.monitoring.performance import measure_matured_days
    from pipelines.monitoring.performance import performance as fn

    if date:
        _run(lambda: fn(_settings(), _day(date), engine))
    else:
        _run(lambda: {"measured": measure_matured_days(_settings(), engine)})
