"""The champion store: the only code that finds and verifies the production model.

Everything that needs "the model in production" (scoring, drift, the skew check, the gate,
the registry's status) asks here:

- :func:`current_alias`: the registered version behind an alias (``champion``, ``challenger``);
- :func:`load_verified`: that version's scikit-learn Pipeline, loaded only after its artifact's
  hash matches the ``model_sha256`` recorded at registration;
- :func:`champion_profile`: its frozen drift profile, checked against its recorded hash;
- :func:`champion_reference`: its training reference sample.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from pipelines.config import Settings
from pipelines.errors import PipelineError
from pipelines.io import read_frame, tree_sha256


def current_alias(settings: Settings, alias: str) -> Any | None:
    """The registered model version behind an alias, or None if there is none yet."""
    import mlflow
    from mlflow.exceptions import MlflowException

    client = mlflow.MlflowClient()
    try:
        return client.get_model_version_by_alias(settings.params.project.model_name, alias)
    except MlflowException as exc:
        if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND", "INVALID_PARAMETER_VALUE"):
            return None
        raise


def artifact_sha256(model_dir: Path) -> str:
    """The hash registration records of a model artifact (every file, paths and bytes)."""
    return tree_sha256(model_dir)


def load_verified(settings: Settings, alias: str) -> tuple[Any, Any, Any]:
    """(model, model version, signature) for an alias, after checking the artifact's hash;
    (None, None, None) when the alias is not set."""
    import mlflow
    from mlflow.models import Model

    name = settings.params.project.model_name
    mv = current_alias(settings, alias)
    if mv is None:
        return None, None, None
    recorded = mv.tags.get("model_sha256")
    if not recorded:
        raise PipelineError(f"{name} v{mv.version} ({alias}) has no recorded artifact hash (model_sha256); re-register it")
    local = Path(mlflow.artifacts.download_artifacts(artifact_uri=f"models:/{name}/{mv.version}"))
    actual = artifact_sha256(local)
    if actual != recorded:
        raise PipelineError(
            f"{name} v{mv.version} ({alias}): artifact hash {actual[:12]} "
            f"differs from the registered {recorded[:12]}; refusing to score"
        )
    return mlflow.sklearn.load_model(str(local)), mv, Model.load(str(local)).signature


def _champion(settings: Settings) -> Any:
    champion = current_alias(settings, "champion")
    if champion is None:
        raise PipelineError(f"model {settings.params.project.model_name} has no champion yet: nothing to compare against")
    return champion


def champion_profile(settings: Settings) -> tuple[dict[str, Any], Any]:
    """The serving champion's frozen profile, checked against the hash recorded with it."""
    import mlflow
    from mlflow.exceptions import MlflowException

    from pipelines.model.profile import profile_sha256

    champion = _champion(settings)
    try:
        profile = mlflow.artifacts.load_dict(f"runs:/{champion.run_id}/reference/profile.json")
    except MlflowException as exc:
        raise PipelineError(
            f"champion v{champion.version} has no drift profile (reference/profile.json in run {champion.run_id}); "
            "it was trained before profiles existed: retrain it"
        ) from exc
    recorded = champion.tags.get("drift_profile_sha256")
    if recorded and recorded != profile_sha256(profile):
        raise PipelineError(f"the drift profile of v{champion.version} does not match its recorded hash")
    return profile, champion


def champion_reference(settings: Settings) -> tuple[pd.DataFrame, Any]:
    """The champion's training reference sample (for skew checks and report histograms)."""
    import mlflow

    champion = _champion(settings)
    local = mlflow.artifacts.download_artifacts(run_id=champion.run_id, artifact_path="reference/reference.parquet")
    return read_frame(Path(local)), champion
