"""Log a hand-made candidate model, for the gate tests: `python .../craft_candidate.py <kind>`.

Run inside a test project (cwd = its root). It trains the project's real model on
data/training/train.parquet, changes it the way <kind> says, logs it to the project's MLflow
store like `pipelines train` would, and points models/candidate.json at it:

- slice:   better overall than a weak champion, but region=north's scores shuffled;
- shift:   the same ranking (same AUC everywhere) with scores pushed up: p ** 0.3;
- brittle: logistic regression whose one-hot encoder crashes on nulls and unseen categories.

The wrappers are defined here and saved with cloudpickle (by value), so loading them needs
nothing from this file. Only tests use this; the pipeline itself logs skops artifacts only.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder


class Wrapped(ClassifierMixin, BaseEstimator):
    def __init__(self, inner=None, kind: str = "") -> None:
        self.inner = inner
        self.kind = kind

    def fit(self, X, y):  # already fitted; sklearn API only
        return self

    @property
    def classes_(self):
        return self.inner.classes_

    def predict_proba(self, X):
        p = self.inner.predict_proba(X)[:, 1]
        if self.kind == "slice":
            north = np.flatnonzero((X["region"].astype(str) == "north").to_numpy())
            p = p.copy()
            p[north] = np.random.default_rng(len(X)).permutation(p[north])  # same scores, no ranking
        elif self.kind == "shift":
            p = p ** 0.3
        return np.column_stack([1 - p, p])

    def predict(self, X):
        return (self.predict_proba(X)[:, 1] >= 0.5).astype("int64")


def main(kind: str) -> None:
    import mlflow
    from mlflow.models import infer_signature

    from pipelines.config import load_settings
    from pipelines.io import read_frame
    from pipelines.model.features import model_input
    from pipelines.model.train import fit
    from pipelines.tracking import setup_mlflow

    settings = load_settings(Path("params.yaml"))
    d = settings.params.data
    train = read_frame(settings.training_dir / "train.parquet")
    X, y = model_input(train, d), train[d.target].astype("int64")
    if kind == "brittle":
        model = Pipeline(
            [
                ("pre", ColumnTransformer(
                    [("cat", OneHotEncoder(handle_unknown="error"), d.categorical)],
                    remainder=SimpleImputer(strategy="median"),
                )),
                ("clf", LogisticRegression(max_iter=500)),
            ]
        ).fit(X, y)
    else:
        model = Wrapped(fit(train, d, settings.params.train)[0], kind)
    setup_mlflow(settings)
    candidate_path = settings.models_dir / "candidate.json"
    candidate = json.loads(candidate_path.read_text())
    with mlflow.start_run(run_name=f"crafted-{kind}") as run:
        mlflow.set_tags({k: candidate[k] for k in ("git_commit", "data_md5", "holdout_md5", "params_md5", "train_days")}
                        | {"git_dirty": str(candidate["git_dirty"]).lower()})
        info = mlflow.sklearn.log_model(
            model, name="model", serialization_format="cloudpickle",
            signature=infer_signature(X.head(200), model.predict_proba(X.head(200))),
        )
    candidate.update(run_id=run.info.run_id, model_uri=info.model_uri, model_id=info.model_id)
    candidate_path.write_text(json.dumps(candidate, indent=2))
    print(json.dumps({"kind": kind, "run_id": run.info.run_id}))


if __name__ == "__main__":
    import os

    main(sys.argv[1])
    sys.stdout.flush()
    os._exit(0)  # skip interpreter teardown: pyarrow can abort there (pipelines/cli/__init__.py)
