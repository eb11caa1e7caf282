"""What every command shares: the global options' state, the settings, how a result is printed
and how a step's failure becomes a one-line reason and an exit code."""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Callable
from typing import Any

from pipelines.errors import PipelineError, ValidationFailed

log = logging.getLogger("pipelines.cli")
STATE: dict[str, Any] = {"params": None, "json": False}
INLINE_ITEMS = 3  # a longer list prints as its count on the one readable line


def _quiet_libraries() -> None:
    """Keep step output readable: library chatter below WARNING and known-benign hints off."""
    import warnings

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    # We pass 0/1 integer labels on purpose; MLflow's classifier evaluator still guesses "None".
    logging.getLogger("mlflow.models.evaluation.evaluators.classifier").setLevel(logging.ERROR)
    # Model input is float64 by construction (pipelines/model/features.py); the hint is about the label.
    warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer column")


def _settings() -> Any:
    from pipelines.config import load_settings

    return load_settings(STATE["params"])


def _emit(result: Any) -> None:
    """Full JSON with --json; otherwise one readable line of the scalar fields."""
    if result is None:
        return
    if STATE["json"] or not isinstance(result, dict):
        print(json.dumps(result, indent=2, default=str))
        return
    parts = []
    for key, value in result.items():
        if isinstance(value, dict):
            continue
        shown = value
        if isinstance(value, (list, tuple)):
            shown = f"{len(value)} item(s)" if len(value) > INLINE_ITEMS else ", ".join(map(str, value)) or "none"
        parts.append(f"{key}={shown}")
    print("  ".join(parts))


def _run(fn: Callable[[], Any], emit: bool = True, stage: str | None = None) -> Any:
    """Run a step; turn a PipelineError into a one-line reason and exit code 1. A training
    ``stage`` (dvc.yaml) first checks the training marker: it does not run beside a training
    run it is not part of (pipelines/monitoring/inflight.py)."""
    try:
        if stage is not None:
            from pipelines.monitoring.inflight import check_stage

            check_stage(_settings(), stage)
        result = fn()
    except ValidationFailed as exc:
        log.error("%s", exc)
        for line in exc.failures:
            print(f"  - {line}", file=sys.stderr)
        _exit(1)
    except PipelineError as exc:
        log.error("%s", exc)
        _exit(1)
    except Exception as exc:
        # The tracking server went away mid-step: one line naming it, not a traceback.
        if not _tracking_failure(exc):
            raise
        from pipelines.tracking import unreachable

        log.error("%s", unreachable(os.environ.get("MLFLOW_TRACKING_URI", "?"), exc))
        _exit(1)
    if emit:
        _emit(result)
    return result


def _tracking_failure(exc: BaseException) -> bool:
    """An MLflow REST call that failed for want of the server (refused, reset, timed out)."""
    requests_exc = getattr(sys.modules.get("requests"), "RequestException", None)
    if requests_exc is not None and isinstance(exc, requests_exc):
        return True
    mlflow_exc = getattr(sys.modules.get("mlflow.exceptions"), "MlflowException", None)
    if mlflow_exc is None or not isinstance(exc, mlflow_exc):
        return False
    return "API request to" in str(exc) or "Max retries exceeded" in str(exc)


def _exit(code: int) -> None:
    """Leave without interpreter finalization (see pipelines/cli/__init__.py), after doing by hand
    the clean-up that atexit would have done: end an open MLflow run, flush logs and streams."""
    mlflow = sys.modules.get("mlflow")
    if mlflow is not None and mlflow.active_run() is not None:
        mlflow.end_run(status="FINISHED" if code == 0 else "FAILED")
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _day(value: str | None, folder_attr: str = "validated_dir") -> Any:
    from pipelines.io import parse_date, partition_files

    if value:
        return parse_date(value)
    days = list(partition_files(getattr(_settings(), folder_attr)))
    if not days:
        raise PipelineError("no day found; pass --date YYYY-MM-DD")
    return days[-1]
