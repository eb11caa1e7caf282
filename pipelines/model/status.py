"""What the registry and the project hold now: champion, challenger, recent versions and their
verdicts, and where the latest outputs are (`status`, `status --json`)."""

from __future__ import annotations

from typing import Any

from pipelines.config import Settings
from pipelines.io import partition_files, read_json
from pipelines.model.champion import current_alias
from pipelines.model.registry import champion_history, mlflow_client
from pipelines.tracking import tag_bool


def _describe(settings: Settings, client: Any, alias: str) -> dict[str, Any] | None:
    mv = current_alias(settings, alias)
    if mv is None:
        return None
    run = client.get_run(mv.run_id) if mv.run_id else None
    metrics = run.data.metrics if run else {}
    return {
        "version": str(mv.version),
        "run_id": mv.run_id,
        "holdout_roc_auc": metrics.get("holdout_roc_auc"),
        "train_roc_auc": metrics.get("train_roc_auc"),
        "gate_passed": tag_bool(mv.tags.get("gate_passed")),
        "gate_reasons": mv.tags.get("gate_reasons"),
        "data_md5": mv.tags.get("data_md5"),
        "git_commit": mv.tags.get("git_commit"),
    }


def _recent(client: Any, name: str) -> list[dict[str, Any]]:
    """The last five versions with their aliases and verdicts (none when the model is unknown)."""
    from mlflow.exceptions import MlflowException

    try:
        versions = client.search_model_versions(f"name='{name}'", max_results=200)
        alias_of = client.get_registered_model(name).aliases  # search results carry no aliases
    except MlflowException:
        versions, alias_of = [], {}
    return [
        {
            "version": str(v.version),
            "aliases": sorted(a for a, ver in alias_of.items() if str(ver) == str(v.version)),
            "gate_passed": tag_bool(v.tags.get("gate_passed")),
            "gate_reasons": v.tags.get("gate_reasons"),
            "rolled_back": v.tags.get("rolled_back"),
        }
        for v in sorted(versions, key=lambda v: int(v.version), reverse=True)[:5]
    ]


def _latest(folder: Any, pattern: str = "*") -> str | None:
    files = sorted(p for p in folder.glob(pattern) if not p.name.startswith(".")) if folder.is_dir() else []
    return str(files[-1]) if files else None


def status(settings: Settings) -> dict[str, Any]:
    """Champion, challenger, and where the latest outputs are."""
    from pipelines.tracking import tracking_uri

    client = mlflow_client(settings)
    name = settings.params.project.model_name
    decision_path = settings.reports_dir / "gate" / "decision.json"
    quarantine = settings.quarantine_dir
    return {
        "recent_versions": _recent(client, name),
        "tracking_uri": tracking_uri(settings),
        "model_name": name,
        "champion": _describe(settings, client, "champion"),
        "challenger": _describe(settings, client, "challenger"),
        "champion_history": champion_history(client, name),
        "last_gate_decision": read_json(decision_path) if decision_path.is_file() else None,
        "validated_days": len(partition_files(settings.validated_dir)),
        "quarantined_days": sorted(p.name for p in quarantine.iterdir()) if quarantine.is_dir() else [],
        "latest_predictions": _latest(settings.predictions_dir, "*.parquet"),
        "latest_drift_report": _latest(settings.reports_dir / "drift", "*.html"),
        "latest_validation_report": _latest(settings.reports_dir / "validation", "20*.json"),
    }
