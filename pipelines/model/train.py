"""Train the candidate: a full scikit-learn Pipeline (preprocessing inside) tracked in MLflow.

The run records params, metrics, the git commit, the DVC hash of its training data, library
versions, and the model with its signature and an input example. A sample of the training
features is logged as the drift reference for this model version.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import Pipeline

from pipelines.config import BINARY_CLASSES, DataParams, Settings, TrainParams
from pipelines.errors import PipelineError
from pipelines.io import file_md5, read_frame, read_json, write_json
from pipelines.model.features import model_input
from pipelines.model.parts import CategoryCoder
from pipelines.telemetry import step_succeeded
from pipelines.tracking import dvc_experiment

# skops refuses unknown types on load; these are the ones we reviewed: HistGradientBoosting's
# trees, the functools.partial(check_array, ...) its native categorical support stores, and our
# own CategoryCoder (pipelines/model/parts.py; the pipelines package must be importable to load).
SKOPS_TRUSTED_TYPES = [
    "pipelines.model.parts.CategoryCoder",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "functools.partial",
    "sklearn.utils.validation.check_array",
]


def build_model(data: DataParams, tp: TrainParams) -> Pipeline:
    """The model: ordinal-coded categoricals handled natively by boosted trees, numericals as
    they are (NaN handled natively). Unknown categories at serving time become missing values.

    Native categorical support instead of one-hot, and CategoryCoder instead of OrdinalEncoder,
    keep preprocessing cheap at scoring time (BENCHMARKS.md).
    """
    pre = ColumnTransformer(
        [
            ("cat", CategoryCoder(), data.categorical)
        ],
        remainder="passthrough",
        verbose_feature_names_out=False,
    )
    clf = HistGradientBoostingClassifier(
        learning_rate=tp.learning_rate,
        max_iter=tp.max_iter,
        max_depth=tp.max_depth,
        min_samples_leaf=tp.min_samples_leaf,
        l2_regularization=tp.l2_regularization,
        categorical_features=list(range(len(data.categorical))),  # the encoder's columns come first
        early_stopping=False,  # deterministic: no random validation split
        random_state=tp.seed,
    )
    return Pipeline([("preprocess", pre), ("classifier", clf)])


def fit(train: pd.DataFrame, data: DataParams, tp: TrainParams) -> tuple[Pipeline, float]:
    """Fit on a labelled frame; return the model and its training ROC AUC (pure)."""
    y = train[data.target]
    if y.isna().any():
        raise PipelineError(f"training labels contain {int(y.isna().sum())} missing values in {data.target!r}")
    if y.nunique() < BINARY_CLASSES:
        raise PipelineError(f"training labels in {data.target!r} have a single class; cannot train")
    from threadpoolctl import threadpool_limits

    X = model_input(train, data)
    # A fixed thread count (params.yaml train.threads): the fit must not depend on the machine.
    with threadpool_limits(limits=tp.threads):
        model = build_model(data, tp).fit(X, y.astype("int64"))
    auc = float(roc_auc_score(y, model.predict_proba(X)[:, 1]))
    return model, auc


def permutation_importance_by_feature(
    model: Pipeline, X: pd.DataFrame, y: pd.Series, seed: int, threads: int, repeats: int = 5
) -> dict[str, float] | None:
    """ROC AUC the model loses when each feature is shuffled (mean of ``repeats``), on a labelled
    sample; None when the sample has a single class (no AUC). Shuffling one feature at a time
    understates features that stand in for each other (correlated ones share the credit).
    Seeded and on fixed threads, so the profile, and its hash, are reproducible."""
    from sklearn.inspection import permutation_importance
    from threadpoolctl import threadpool_limits

    if y.nunique() < BINARY_CLASSES:
        return None
    with threadpool_limits(limits=threads):
        res = permutation_importance(
            model, X, y.astype("int64"), scoring="roc_auc", n_repeats=repeats, random_state=seed, n_jobs=1
        )
    return {c: float(v) for c, v in zip(X.columns, res.importances_mean, strict=True)}


def train(settings: Settings) -> dict[str, Any]:
    """Train on data/training/train.parquet, log everything to MLflow, write models/candidate.json."""
    import mlflow
    from mlflow.models import infer_signature

    from pipelines.failpoint import failpoint
    from pipelines.model.profile import profile_sha256
    from pipelines.tracking import library_versions, owner_tag, setup_mlflow, tag_text

    d, tp = settings.params.data, settings.params.train
    train_path = settings.training_dir / "train.parquet"
    train_df = read_frame(train_path)
    window = read_json(settings.training_dir / "window.json")
    model, train_auc = fit(train_df, d, tp)

    setup_mlflow(settings)
    X = model_input(train_df, d)
    sample = X.head(200)
    signature = infer_signature(sample, model.predict_proba(sample))
    ref_path, profile = _reference_and_profile(settings, model, X)
    lineage = _lineage(settings, train_path, window)
    with mlflow.start_run(run_name="train") as run:
        experiment = dvc_experiment()
        mlflow.set_tags({
            **lineage, "git_dirty": tag_text(lineage["git_dirty"]),  # MLflow tags are text: "true"/"false"
            **library_versions(), **owner_tag(), "step": "train", **({"dvc_experiment": experiment} if experiment else {}),
        })
        mlflow.log_params({**tp.model_dump(), "train_rows": len(train_df), "features": ",".join(d.features)})
        mlflow.log_metrics({"train_roc_auc": train_auc})
        info = mlflow.sklearn.log_model(
            model,
            name="model",
            signature=signature,
            input_example=X.head(5),
            skops_trusted_types=SKOPS_TRUSTED_TYPES,
            pip_requirements=_pip_requirements(),
        )
        mlflow.log_artifact(str(ref_path), artifact_path="reference")
        mlflow.log_dict(profile, "reference/profile.json")
        mlflow.set_tag("drift_profile_sha256", profile_sha256(profile))
        mlflow.log_dict(window, "training_window.json")
        failpoint("train")  # the run is open, the model logged, candidate.json not yet written
    candidate = {
        "run_id": run.info.run_id,
        "model_uri": info.model_uri,
        "model_id": info.model_id,
        "train_roc_auc": round(train_auc, 6),
        "drift_profile_sha256": profile_sha256(profile),
        **lineage,
    }
    write_json(candidate, settings.models_dir / "candidate.json")
    write_json({"train_roc_auc": round(train_auc, 6), "train_rows": len(train_df)}, settings.path("metrics", "train.json"))
    if dvc_experiment() is None:  # an experiment is not the production pipeline running
        step_succeeded(settings, "train")
    return candidate


def _reference_and_profile(settings: Settings, model: Pipeline, X: pd.DataFrame) -> tuple[Path, dict[str, Any]]:
    """The drift reference sample of the training features (written to models/reference.parquet)
    and the frozen drift profile of this model version (pipelines/model/profile.py)."""
    from pipelines.model.profile import build_profile

    d, tp = settings.params.data, settings.params.train
    reference = X.sample(n=min(settings.params.prepare.reference_rows, len(X)), random_state=tp.seed)
    ref_path = settings.models_dir / "reference.parquet"
    ref_path.parent.mkdir(parents=True, exist_ok=True)
    reference.to_parquet(ref_path, index=False)
    # Importance on held-out rows: on training rows it overstates what the model overfits.
    holdout = read_frame(settings.training_dir / "holdout.parquet")
    probe = holdout.sample(n=min(settings.params.prepare.reference_rows, len(holdout)), random_state=tp.seed)
    importance = permutation_importance_by_feature(model, model_input(probe, d), probe[d.target], tp.seed, tp.threads)
    return ref_path, build_profile(X, model.predict_proba(X)[:, 1], d, settings.params.drift.n_bins, importance)


def _lineage(settings: Settings, train_path: Path, window: dict[str, Any]) -> dict[str, Any]:
    """What the candidate was made from: code commit, data and holdout hashes, params, lock, window."""
    from pipelines.tracking import git_commit, lock_sha256, params_md5

    return {
        **git_commit(settings),
        "data_md5": file_md5(train_path),
        "holdout_md5": file_md5(settings.training_dir / "holdout.parquet"),
        "params_md5": params_md5(settings),
        "lock_sha256": lock_sha256(settings),
        "train_days": f"{window['train_days'][0]}..{window['train_days'][-1]}",
        "holdout_days": f"{window['holdout_days'][0]}..{window['holdout_days'][-1]}",
        # what the drift job reads to refresh a champion that learned a shift from its first days
        "window_follows_shift": window.get("follows_shift") or "",
        "train_day_count": str(len(window["train_days"])),
    }


def _pip_requirements() -> list[str]:
    """Pin the serving environment to the training one (and skip MLflow's slow inference)."""
    from importlib.metadata import version

    return [f"{p}=={version(p)}" for p in ("scikit-learn", "pandas", "numpy", "skops", "mlflow")]
