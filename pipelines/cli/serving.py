"""Serving commands: score a day's batch, serve the champion online, compact its prediction log."""

from __future__ import annotations

import typer

from pipelines.cli.common import STATE, _day, _run, _settings


def score(
    date: str | None = typer.Option(None, "--date", help="Day to score; default the latest validated."),
    engine: str | None = typer.Option(
        None, "--engine", help="local, spark (the same scores) or auto; default engine.name in params.yaml."
    ),
) -> None:
    """Score a validated daily batch with models:/<name>@champion."""
    from pipelines.serving.score import score as fn

    _run(lambda: fn(_settings(), _day(date), engine=engine))


def serve(
    host: str | None = typer.Option(None, help="Interface to listen on; default serve.host (127.0.0.1)."),
    port: int | None = typer.Option(None, help="Port; default serve.port."),
    reload_any_host: bool = typer.Option(
        False, "--reload-any-host",
        help="Accept POST /reload and rollout actions from any host (token still needed); default serve.reload_any_host.",
    ),
    workers: int = typer.Option(1, min=1, help="Worker processes on one socket; a worker that dies is replaced."),
) -> None:
    """Serve the registry's champion online (FastAPI on uvicorn): /invocations, /predict, /metrics.

    Alias moves are picked up every serve.poll_seconds, or at once through POST /reload with
    the bearer token in $PIPELINES_RELOAD_TOKEN. A challenger is rolled out in shadow, then
    canary stages, under guardrails (params.yaml serve:).
    """
    from pipelines.serving.launch import serve as fn

    _run(lambda: fn(_settings(), host, port, reload_any_host or None, workers, STATE["params"]), emit=False)


def compact(
    date: str = typer.Option(..., "--date", help="Closed day (UTC) whose online prediction log to compact, YYYY-MM-DD."),
) -> None:
    """Merge a closed day's online prediction-log parts into a few files (at most 48).

    Each compacted file names the parts it holds; the readers take it in their place. The parts
    are deleted by a later run once the file is serve.compact_grace_seconds old. Today (or a day
    not yet over) is refused; a run with nothing new to merge does nothing.
    """
    from datetime import UTC, datetime

    from pipelines.cli.common import log
    from pipelines.io import parse_date
    from pipelines.serving.compact import compact as fn

    def progress(done: int, total: int) -> None:
        log.info("compact %s: %d of %d parts merged", date, done, total)

    _run(lambda: fn(_settings(), parse_date(date), datetime.now(UTC), progress))
