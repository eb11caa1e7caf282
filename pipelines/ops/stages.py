"""The training pipeline's stages (dvc.yaml), run with the real dvc CLI: whole, or one at a time.

`make run` runs `dvc repro` with its output on the console; an Airflow task runs one stage
(`dvc repro --single-item <stage>`) and prints DVC's output into its task log. Both go through
pipelines/tools.py, the one way a tool is run.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from pipelines.config import Settings
from pipelines.errors import PipelineError
from pipelines.tools import check, dvc, reason

DVC_STAGES = ("prepare", "validate_training", "train", "gate", "promote")


def _as_of_env(settings: Settings, as_of: date | None) -> tuple[dict[str, str], bool]:
    """The environment that tells the `prepare` stage its day, and whether the stage must be
    forced: its window was built for another day, and DVC, which sees no changed file, would
    call it up to date."""
    from pipelines.io import partition_files, read_json

    # The last validated day on or before the run's day: a run on a day with no batch of its own
    # builds the same window as the day before, and is not forced.
    days = [d for d in partition_files(settings.validated_dir) if as_of is None or d <= as_of]
    if not days:
        return ({"PIPELINES_AS_OF": as_of.isoformat()} if as_of else {}), False
    as_of = days[-1]
    window = settings.training_dir / "window.json"
    built = read_json(window) if window.is_file() else {}
    # the shift file is read by the stage but is no DVC dependency (it does not exist before
    # the first retrain request): a window built with another shift is stale too
    shift = read_json(settings.shift_file) if settings.shift_file.is_file() else None  # as prepare.read_shift
    stale = bool(built) and (built.get("as_of") != as_of.isoformat() or built.get("shift") != shift)
    return {"PIPELINES_AS_OF": as_of.isoformat()}, stale


def dvc_repro(settings: Settings, *targets: str, as_of: date | None = None) -> None:
    """`dvc repro [targets]` with its own progress on the console; the training window ends at
    ``as_of`` (default: the latest validated day)."""
    env, stale = _as_of_env(settings, as_of)
    if stale:
        check(dvc(["repro", "--force", "--single-item", "prepare"], settings.root, capture=False, **env), "`dvc repro prepare`")
    check(dvc(["repro", *targets], settings.root, capture=False, **env), "`dvc repro" + "".join(f" {t}" for t in targets) + "`")


def dvc_stage(settings: Settings, stage: str, as_of: date | None = None) -> dict[str, Any]:
    """Run one stage of dvc.yaml (DVC skips it when nothing it depends on changed); `prepare`
    builds the window that ends at ``as_of`` (default: the latest validated day)."""
    if stage not in DVC_STAGES:
        raise PipelineError(f"unknown stage {stage!r}; dvc.yaml has {', '.join(DVC_STAGES)}")
    env, stale = _as_of_env(settings, as_of) if stage == "prepare" else ({}, False)
    proc = dvc(["repro", "--single-item", *(["--force"] if stale else []), stage], settings.root, **env)
    print(proc.stdout[-20000:], proc.stderr[-20000:], sep="\n")
    if proc.returncode != 0:
        raise PipelineError(f"dvc stage {stage} failed (exit {proc.returncode}): {reason(proc) or 'no output'}")
    return {"stage": stage, "ran": f"Running stage '{stage}'" in proc.stdout}
