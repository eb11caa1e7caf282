"""The evaluation gate: candidate and champion judged on the same fresh holdout.

Both models are evaluated with ``mlflow.models.evaluate`` (the metrics land in MLflow). The
absolute floor is MLflow's own ``MetricThreshold`` through ``validate_evaluation_results``.
The regression bound is checked explicitly: MetricThreshold's ``min_absolute_change`` must be
positive (it demands an improvement), so it cannot express "at most 0.01 worse".

A failed gate is not an error: the decision record says why, and `promote` registers the
candidate as challenger only.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from pipelines.config import Settings
from pipelines.features import model_input
from pipelines.io import read_frame, read_json, write_json


def current_alias(settings: Settings, alias: str) -> Any | None:
    """The registered model version behind an alias, or None if there is none yet."""
    from mlflow.exceptions import MlflowException

    import mlflow

    client = mlflow.MlflowClient()
    try:
        return client.get_model_version_by_alias(settings.p.project.model_name, alias)
    except MlflowException as exc:
        if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND", "INVALID_PARAMETER_VALUE"):
            return None
        raise


def _evaluate(model_uri: str, data: pd.DataFrame, target: str) -> Any:
    import mlflow

    return mlflow.models.evaluate(
        model_uri,
        data,
        targets=target,
        model_type="classifier",
        evaluators="default",
        evaluator_config={"log_explainer": False, "log_model_explainability": False},
    )


def decide(candidate_auc: float, champion_auc: float | None, min_auc: float, max_regression: float) -> list[dict[str, Any]]:
    """The regression check as data (pure); the absolute floor is checked by MLflow."""
    if champion_auc is None:
        return []
    floor = champion_auc - max_regression
    return [
        {
            "check": "roc_auc_vs_champion",
            "value": round(candidate_auc, 6),
            "threshold": f">= champion {champion_auc:.6f} - {max_regression}",
            "passed": candidate_auc >= floor,
        }
    ]


def evaluate(settings: Settings) -> dict[str, Any]:
    """Evaluate candidate and champion on the holdout; write the decision record."""
    import mlflow
    from mlflow.models import MetricThreshold
    from mlflow.models.evaluation.validation import ModelValidationFailedException

    from pipelines.tracking import setup_mlflow

    d, g = settings.p.data, settings.p.gate
    setup_mlflow(settings)
    candidate = read_json(settings.models_dir / "candidate.json")
    holdout = read_frame(settings.training_dir / "holdout.parquet")
    eval_df = model_input(holdout, d)
    eval_df[d.target] = holdout[d.target].astype("int64").to_numpy()

    champion = current_alias(settings, "champion")
    with mlflow.start_run(run_id=candidate["run_id"]):
        with mlflow.start_run(run_name="gate-candidate", nested=True):
            cand_result = _evaluate(candidate["model_uri"], eval_df, d.target)
        champ_result = None
        if champion is not None:
            with mlflow.start_run(run_name=f"gate-champion-v{champion.version}", nested=True):
                champ_result = _evaluate(f"models:/{settings.p.project.model_name}/{champion.version}", eval_df, d.target)

    cand_auc = float(cand_result.metrics["roc_auc"])
    champ_auc = float(champ_result.metrics["roc_auc"]) if champ_result is not None else None
    checks: list[dict[str, Any]] = []
    try:
        mlflow.validate_evaluation_results(
            {"roc_auc": MetricThreshold(threshold=g.min_roc_auc, greater_is_better=True)}, cand_result
        )
        floor_ok, floor_msg = True, "passed"
    except ModelValidationFailedException as exc:
        floor_ok, floor_msg = False, str(exc).strip().splitlines()[-1]
    checks.append(
        {"check": "roc_auc_min", "value": round(cand_auc, 6), "threshold": f">= {g.min_roc_auc}", "passed": floor_ok, "detail": floor_msg}
    )
    checks += decide(cand_auc, champ_auc, g.min_roc_auc, g.max_roc_auc_regression)
    passed = all(c["passed"] for c in checks)
    decision = {
        "passed": passed,
        "verdict": "promote to champion" if passed else "register as challenger only",
        "reasons": [f"{c['check']}: {c['value']} (needs {c['threshold']})" for c in checks if not c["passed"]],
        "checks": checks,
        "candidate": {"run_id": candidate["run_id"], "model_uri": candidate["model_uri"], "roc_auc": round(cand_auc, 6)},
        "champion": None
        if champion is None
        else {"version": str(champion.version), "run_id": champion.run_id, "roc_auc": round(champ_auc or 0.0, 6)},
        "holdout_rows": int(len(holdout)),
        "lineage": {k: candidate[k] for k in ("git_commit", "git_dirty", "data_md5", "holdout_md5", "params_md5")},
    }
    client = mlflow.MlflowClient()
    client.log_dict(candidate["run_id"], decision, "gate/decision.json")
    client.set_tag(candidate["run_id"], "gate_passed", str(passed).lower())
    client.log_metric(candidate["run_id"], "holdout_roc_auc", cand_auc)
    write_json(decision, settings.reports_dir / "gate" / "decision.json")
    write_json(
        {"candidate_roc_auc": round(cand_auc, 6), "champion_roc_auc": None if champ_auc is None else round(champ_auc, 6), "passed": passed},
        settings.path("metrics", "gate.json"),
    )
    return decision
