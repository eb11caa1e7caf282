"""Operations commands: replay a failure story, run the whole cycle once, report the gate to a pull request."""

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


def report(
    markdown: bool = typer.Option(False, "--markdown", help="Markdown for a pull request (default: the readable text)."),
    baseline: str = typer.Option(
        "main", "--baseline", help="Git revision whose committed metrics `dvc metrics diff` compares the workspace's with."
    ),
    out: str | None = typer.Option(None, "--out", help="Also write the report to this file."),
    plots_url: str | None = typer.Option(None, "--plots-url", help="Link to the rendered plots (a CI run's artifacts)."),
    check: bool = typer.Option(False, "--check", help="Exit 1 when the gate blocks the candidate (after printing the report)."),
) -> None:
    """The gate's verdict on the workspace's candidate: every check, the interval, slices, metrics against a branch."""
    from pathlib import Path

    from pipelines.errors import PipelineError
    from pipelines.io import write_text
    from pipelines.model.gate import format_decision
    from pipelines.ops.model_ci import blocked_reason
    from pipelines.ops.model_ci import report as fn

    def go() -> None:
        page, decision = fn(_settings(), baseline, plots_url)
        text = page if markdown else format_decision(decision) + "\n"
        if out:
            write_text(text, Path(out))
        print(text, end="", flush=True)
        if check and not decision["passed"]:
            raise PipelineError(blocked_reason(decision))

    _run(go, emit=False)
