"""Process-wide settings the harness puts back between two test files (tests/conftest.py)."""

from __future__ import annotations

import os
import sys

# MLflow's settings are process-wide: `mlflow.set_tracking_uri` keeps the URI in a module global and
# also exports MLFLOW_TRACKING_URI, which every later CLI subprocess inherits. A test file that sets
# them (or PIPELINES_SERVER_URL and the like) would hand its store to whichever file runs next in
# the same process. Between two files, both go back to what the session started with: ENV_AT_START,
# read when tests/conftest.py imports this module, before any test runs.
_ENV_PREFIXES = ("MLFLOW_", "PIPELINES_")
ENV_AT_START = {k: v for k, v in os.environ.items() if k.startswith(_ENV_PREFIXES)}


def restore_process_settings() -> list[str]:
    """Put MLflow's URIs (the globals and the environment) and the PIPELINES_ variables back as the
    session found them; the names of the variables that had changed."""
    changed = sorted(k for k in {*os.environ, *ENV_AT_START}
                     if k.startswith(_ENV_PREFIXES) and os.environ.get(k) != ENV_AT_START.get(k))
    for key in changed:
        if key in ENV_AT_START:
            os.environ[key] = ENV_AT_START[key]
        else:
            del os.environ[key]
    tracking = sys.modules.get("mlflow.tracking._tracking_service.utils")
    if tracking is not None:
        tracking._tracking_uri = None  # type: ignore[attr-defined]  # get_tracking_uri() falls back to the environment
    registry = sys.modules.get("mlflow.tracking._model_registry.utils")
    if registry is not None:
        registry._registry_uri = None  # type: ignore[attr-defined]
    fluent = sys.modules.get("mlflow.tracking.fluent")
    if fluent is not None:  # set_experiment's id (of the last file's store): the next file sets its own
        fluent._active_experiment_id = None  # type: ignore[attr-defined]
    return changed
