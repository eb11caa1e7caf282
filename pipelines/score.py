"""Batch scoring with the champion: models:/<name>@champion, one row out per row in.

Reads only data/validated/<day>.parquet, so a batch that failed validation cannot be scored.
Every output row carries the model name, version and run id; the partition is written
atomically, so a killed job leaves the previous output for the day (if any) as it was.
"""

from __future__ import annotations

import sys
import time
from datetime import date
from typing import Any

import numpy as np
import pandas as pd

from pipelines.config import Settings
from pipelines.errors import PipelineError
from pipelines.features import model_input
from pipelines.io import read_frame, write_parquet


def predict_scores(model: Any, X: pd.DataFrame, chunk_rows: int) -> np.ndarray:
    """Probability of default for each row, in chunks (pure given the model)."""
    if len(X) == 0:
        return np.empty(0, dtype="float64")
    parts = [model.predict_proba(X.iloc[i : i + chunk_rows])[:, 1] for i in range(0, len(X), chunk_rows)]
    return np.concatenate(parts).astype("float64")


def score(settings: Settings, day: date) -> dict[str, Any]:
    """Score the validated batch of ``day`` with the champion; write data/predictions/<day>.parquet."""
    import mlflow

    from pipelines.evaluate import current_alias
    from pipelines.tracking import setup_mlflow

    d = settings.p.data
    src = settings.validated_dir / f"{day.isoformat()}.parquet"
    if not src.is_file():
        raise PipelineError(f"no validated batch for {day} ({src} missing): run `validate --date {day}` first")
    setup_mlflow(settings)
    champion = current_alias(settings, "champion")
    if champion is None:
        raise PipelineError(f"model {settings.p.project.model_name} has no champion yet: train and promote one first")
    batch = read_frame(src)
    X = model_input(batch, d)  # fails clearly, before any work, if a feature is missing
    started = time.perf_counter()
    model = mlflow.sklearn.load_model(f"models:/{settings.p.project.model_name}/{champion.version}")
    scores = predict_scores(model, X, settings.p.score.chunk_rows)
    out = pd.DataFrame(
        {
            d.id_col: batch[d.id_col].to_numpy(),
            d.timestamp_col: batch[d.timestamp_col].to_numpy(),
            "score": scores,
            "model_name": settings.p.project.model_name,
            "model_version": str(champion.version),
            "model_run_id": champion.run_id,
            "scoring_date": day.isoformat(),
        }
    )
    dest = write_parquet(out, settings.predictions_dir / f"{day.isoformat()}.parquet")
    seconds = time.perf_counter() - started
    summary = {
        "day": day.isoformat(),
        "rows": int(len(out)),
        "model_version": str(champion.version),
        "mean_score": round(float(scores.mean()), 6) if len(scores) else None,
        "seconds": round(seconds, 3),
        "rows_per_second": round(len(out) / seconds, 1) if seconds > 0 else None,
        "predictions": str(dest),
    }
    print(f"scored {summary['rows']} rows of {day} with v{champion.version} in {seconds:.2f}s", file=sys.stderr)
    return summary
