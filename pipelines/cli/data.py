"""Data commands: onboard your own data, simulate batches, validate them, prepare the training window."""

from __future__ import annotations

from typing import Any

import typer

from pipelines.cli.common import STATE, _day, _run, _settings


def init(
    raw: str = typer.Option(..., "--raw", help="Folder of daily batches: <YYYY-MM-DD>.parquet or .csv, no label column."),
    labels: str = typer.Option(..., "--labels", help="Folder of matured labels, one file per day: the id and the target."),
    target: str = typer.Option(..., "--target", help="The label column in the labels files."),
    positive_label: str | None = typer.Option(
        None, "--positive-label", help="The target value that means positive (e.g. yes, bad); not needed for 0/1 labels."
    ),
) -> None:
    """Onboard your own data: infer the column roles, write params.yaml's data section and the
    window sizes that fit it, propose both suites; then print what to review."""
    from pathlib import Path

    from pipelines.config import project_root
    from pipelines.data.onboard import init as fn
    from pipelines.data.onboard import review_lines

    def go() -> dict[str, Any]:
        params_file = Path(STATE["params"]) if STATE["params"] else project_root() / "params.yaml"
        return fn(params_file.resolve().parent, Path(raw).resolve(), Path(labels).resolve(), target, positive_label, params_file)

    res = _run(go, emit=STATE["json"])
    if not STATE["json"]:
        print("\n".join(review_lines(res)))


def simulate(
    start: str | None = typer.Option(None, help="First day (YYYY-MM-DD); default simulate.start."),
    days: int | None = typer.Option(None, help="Number of days; default simulate.days."),
    scenario: str | None = typer.Option(None, help=(
        "stable | feature_drift | concept_drift | data_quality | skew "
        "(the stories also use login_policy, null_spike, label_flip, flapping)."
    )),
    scenario_start: str | None = typer.Option(None, help="First day the scenario applies; default: --start."),
    rows: int | None = typer.Option(None, help="Rows per day; default simulate.rows_per_day."),
) -> None:
    """Generate seeded daily batches (data/raw) and matured labels (data/labels)."""
    from pipelines.data.simulate import simulate as fn

    _run(lambda: fn(_settings(), start, days, scenario, scenario_start, rows))  # type: ignore[arg-type]


def validate(
    date: str | None = typer.Option(None, "--date", help="Validate the raw batch of this day."),
    all_days: bool = typer.Option(False, "--all", help="Validate every raw day not yet validated."),
    training: bool = typer.Option(False, "--training", help="Validate data/training/{train,holdout}.parquet."),
    profile: str | None = typer.Option(
        None, "--profile", help="Propose a suite (daily_batch | training_set) from reference data instead."
    ),
    out: str | None = typer.Option(None, help="With --profile: where to write the proposal."),
) -> None:
    """Validate data with the Great Expectations suites in expectations/; failures quarantine."""
    from pipelines.data.validate_modes import validate as fn

    _run(lambda: fn(_settings(), date, all_days, training, profile, out), stage="validate_training" if training else None)


def prepare(
    as_of: str | None = typer.Option(
        None, "--as-of", envvar="PIPELINES_AS_OF",
        help="Use only days up to this one (YYYY-MM-DD; the training DAG passes its logical date); "
        "default the latest validated day.",
    ),
) -> None:
    """Assemble the training window and fresh holdout from validated, labelled days."""
    from pipelines.data.prepare import prepare as fn

    _run(lambda: fn(_settings(), _day(as_of, "validated_dir") if as_of else None), stage="prepare")
