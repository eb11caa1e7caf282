"""Operations commands: replay a failure story, run the whole cycle once."""

from __future__ import annotations

import json

import typer

from pipelines.cli.common import STATE, _run, _settings


def replay(
    story: str = typer.Option(
        "login_policy", "--story", help="login_policy | concept_shift | skew | null_spike | bad_retrain | flapping."
    ),
    days: int | None = typer.Option(None, "--days", help="Served days after the warm-up; default: the story's."),
    out: str | None = typer.Option(
        None, "--out", help="Folder for the replay's own project and its timeline; default replays/<story>."
    ),
    quick: bool = typer.Option(
        False,
        "--quick",
        help="Compressed calendar (labels mature in 3 days, a shorter warm-up): the same story in fewer days, "
        "on the shipped settings.",
    ),
    reports: bool = typer.Option(
        False, "--reports", help="Also write every day's GE Data Docs and Evidently HTML report (slower)."
    ),
) -> None:
    """Replay a failure story day by day through the real steps; writes a timeline (HTML, PNG, JSON)."""
    from pathlib import Path

    from pipelines.ops.replay import replay as fn

    res = _run(lambda: fn(story, days, Path(out) if out else None, quick, reports=reports), emit=False)
    if STATE["json"]:
        summary = {k: res[k] for k in ("story", "headline", "guards", "audit", "retrains", "seconds")}
        print(json.dumps(summary, indent=2, default=str))


def run() -> None:
    """The whole cycle once: simulate, validate, dvc repro, score, drift, then a summary."""
    from pipelines.ops.cycle import run as fn
    from pipelines.ops.cycle import summary_lines

    res = _run(lambda: fn(_settings()), emit=False)
    print("\n".join(["", *summary_lines(res)]))
