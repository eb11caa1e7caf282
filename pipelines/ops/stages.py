"""The training pipeline's stages (dvc.yaml), run with the real dvc CLI: whole, or one at a time.

`make run` runs `dvc repro` with its output on the console; an Airflow task runs one stage
(`dvc repro --single-item <stage>`) and prints DVC's output into its task log. Both go through
pipelines/tools.py, the one way a tool is run.
"""

from __future__ import annotations

from typing import Any

from pipelines.config import Settings
from pipelines.errors import PipelineError
from pipelines.tools import check, dvc, reason

DVC_STAGES = ("prepare", "validate_training", "train", "evaluate", "promote")


def dvc_repro(settings: Settings, *targets: str) -> None:
    """`dvc repro [targets]` with its own progress on the console."""
    check(dvc(["repro", *targets], settings.root, capture=False), "`dvc repro" + "".join(f" {t}" for t in targets) + "`")


def dvc_stage(settings: Settings, stage: str) -> dict[str, Any]:
    """Run one stage of dvc.yaml (DVC skips it when nothing it depends on changed)."""
    if stage not in DVC_STAGES:
        raise PipelineError(f"unknown stage {stage!r}; dvc.yaml has {', '.join(DVC_STAGES)}")
    proc = dvc(["repro", "--single-item", stage], settings.root)
    print(proc.stdout[-20000:], proc.stderr[-20000:], sep="\n")
    if proc.returncode != 0:
        raise PipelineError(f"dvc stage {stage} failed (exit {proc.returncode}): {reason(proc) or 'no output'}")
    return {"stage": stage, "ran": f"Running stage '{stage}'" in proc.stdout}
