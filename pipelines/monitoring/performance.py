"""Real performance once labels mature: the concept-drift signal drift on inputs cannot give.

When the labels of an earlier day arrive, join them with that day's predictions and compute the
model's real ROC AUC, log loss and default rate. Each value is logged on the run of the model
version that produced the predictions, with the day as the step and timestamp, so the MLflow UI
shows one time series per model version (metric ``live_roc_auc``).
"""

from __future__ import annotations

import logging
import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipelines.config import BINARY_CLASSES, Settings
from pipelines.data.prepare import binary_labels
from pipelines.engine import choose_engine, engine_name
from pipelines.errors import PipelineError
from pipelines.io import check_not_quarantined, day_parts, find_partition, partition_files, read_frame, read_json, write_json
from pipelines.telemetry import Sample, publish, step_succeeded

DAY_DIR = re.compile(r"^\d{4}-\d{2}-\d{2}$")

log = logging.getLogger(__name__)


def live_metrics(scores: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """ROC AUC, log loss and default rate of one day's predictions (pure)."""
    from sklearn.metrics import log_loss, roc_auc_score

    if len(labels) == 0:
        raise PipelineError("no prediction matches a label")
    out = {"live_default_rate": float(labels.mean()), "live_mean_score": float(scores.mean()), "live_rows": float(len(labels))}
    if len(np.unique(labels)) == BINARY_CLASSES:
        out["live_roc_auc"] = float(roc_auc_score(labels, scores))
        out["live_log_loss"] = float(log_loss(labels, np.clip(scores, 1e-7, 1 - 1e-7), labels=[0, 1]))
    return out


SERVED = ("batch", "champion", "canary")  # predictions a client received (not shadow or off-path scores)


def day_predictions(settings: Settings, day: date) -> pd.DataFrame:
    """A day's predictions: the batch partition and the online server's log (serve.predictions_dir),
    with a ``variant`` column (``batch`` for batch rows) and ids as text."""
    d = settings.params.data
    cols = [d.id_col, "score", "model_version", "model_run_id"]
    frames = []
    batch = settings.predictions_dir / f"{day.isoformat()}.parquet"
    if batch.is_file():
        frames.append(read_frame(batch)[cols].assign(variant="batch"))
    frames += [read_frame(p, [*cols, "variant"]) for p in day_parts(settings.online_predictions_dir, day)]
    if not frames:
        check_not_quarantined(settings, day)
        raise PipelineError(
            f"no predictions for {day} ({batch} missing, nothing in {settings.online_predictions_dir / day.isoformat()})"
        )
    out = pd.concat(frames, ignore_index=True)
    out = out[out[d.id_col].notna()]
    out[d.id_col] = out[d.id_col].astype(str)
    return out


def predicted_days(settings: Settings) -> list[date]:
    """Days with batch or online predictions."""
    online = settings.online_predictions_dir
    days = set(partition_files(settings.predictions_dir))
    if online.is_dir():
        days |= {
            date.fromisoformat(p.name)
            for p in online.iterdir()
            if p.is_dir() and DAY_DIR.match(p.name) and day_parts(online, date.fromisoformat(p.name))
        }
    return sorted(days)


def performance(settings: Settings, day: date, engine: str | None = None) -> dict[str, Any]:
    """Join the day's predictions with its matured labels; log the metrics; write a summary.
    ``engine`` (default engine.name: local, spark, or auto by the predictions' row count) joins;
    the metrics are computed here from the joined rows either way
    (pipelines/monitoring/performance_spark.py)."""
    import mlflow

    from pipelines.tracking import setup_mlflow

    d = settings.params.data
    override = engine_name(engine) if engine else None  # a bad --engine fails before any work
    label_path = find_partition(settings.labels_dir, day)
    batch = settings.predictions_dir / f"{day.isoformat()}.parquet"
    parts = day_parts(settings.online_predictions_dir, day)
    engine = choose_engine(settings, [*([batch] if batch.is_file() else []), *parts], override)
    if label_path is not None and engine == "spark":
        from pipelines.monitoring.performance_spark import spark_join

        if not batch.is_file() and not parts:
            day_predictions(settings, day)  # the local engine's one-line error for a day with none
        joined, prediction_rows, online_rows = spark_join(settings, batch if batch.is_file() else None, parts, label_path)
    else:
        joined, prediction_rows, online_rows = local_join(settings, day, label_path)
    served = joined[joined["variant"].isin(SERVED)]  # what clients got; shadow rows only feed their model's series
    metrics = live_metrics(served["score"].to_numpy(dtype="float64"), served[d.target].to_numpy(dtype="int64"))
    setup_mlflow(settings)
    client = mlflow.MlflowClient()
    when = int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp() * 1000)
    runs = sorted(joined["model_run_id"].unique())
    for run_id in runs:  # one series per model version (normally one version per day)
        mine = joined[joined["model_run_id"] == run_id]
        m = live_metrics(mine["score"].to_numpy(dtype="float64"), mine[d.target].to_numpy(dtype="int64"))
        for key, value in m.items():
            client.log_metric(run_id, key, value, timestamp=when, step=day.toordinal())
    summary = {
        "day": day.isoformat(),
        "model_versions": sorted(served["model_version"].astype(str).unique()),
        "matched_rows": len(served),
        "prediction_rows": prediction_rows,
        "online_rows": online_rows,
        **{k: round(v, 6) for k, v in metrics.items()},
        "engine": engine,
    }
    write_json(summary, settings.reports_dir / "performance" / f"{day.isoformat()}.json")
    return summary


def local_join(settings: Settings, day: date, label_path: Path | None) -> tuple[pd.DataFrame, int, int]:
    """The local engine: the day's predictions joined with its labels (pandas), the served
    prediction rows and the online ones."""
    d = settings.params.data
    pred = day_predictions(settings, day)
    if label_path is None:
        raise PipelineError(f"labels for {day} have not matured yet (nothing in {settings.labels_dir})")
    labels = read_frame(label_path)[[d.id_col, d.target]]
    labels[d.target] = binary_labels(labels[d.target], d.positive_label, d.target)
    labels[d.id_col] = labels[d.id_col].astype(str)
    joined = pred.merge(labels, on=d.id_col, how="inner")
    joined = joined[joined[d.target].notna()]
    return joined, int(pred["variant"].isin(SERVED).sum()), int((pred["variant"] != "batch").sum())


def measure_matured_days(settings: Settings, engine: str | None = None) -> list[dict[str, Any]]:
    """Real performance of every predicted day whose labels matured and is not measured yet
    (``engine``: as for :func:`performance`)."""
    done = {p.stem for p in (settings.reports_dir / "performance").glob("20*.json")}
    labelled = partition_files(settings.labels_dir)
    out = []
    for day in predicted_days(settings):
        if day in labelled and day.isoformat() not in done:
            res = performance(settings, day, engine)
            log.info(
                "%s: live ROC AUC %s on %s rows (model v%s)",
                day,
                res.get("live_roc_auc"),
                res["matched_rows"],
                res["model_versions"],
            )
            out.append({"day": res["day"], "live_roc_auc": res.get("live_roc_auc"), "rows": res["matched_rows"]})
    measured = sorted(done | {o["day"] for o in out})
    pp = settings.params.prepare
    overdue = overdue_labels(
        list(partition_files(settings.predictions_dir)), set(labelled), settings.params.simulate.label_delay_days,
        pp.window_days + pp.holdout_days,
    )
    if measured or overdue:  # the latest matured day's numbers stay published beside the overdue labels
        samples = performance_samples(settings, measured[-1]) if measured else []
        oldest = overdue[0].isoformat() if overdue else ""
        publish(settings, "performance", [*samples, ("pipelines_labels_overdue_days", {"oldest": oldest}, len(overdue))])
    if out:
        step_succeeded(settings, "performance")
    if not out:
        predicted = predicted_days(settings)
        waiting = [d for d in predicted if d not in labelled]
        log.info(
            "%s",
            f"nothing new to measure: {len(predicted)} predicted day(s), {len(predicted) - len(waiting)} with matured labels"
            + (" (all measured already)" if len(predicted) > len(waiting) else "")
            + f", {len(waiting)} waiting for labels"
            + (f" in {settings.labels_dir} (earliest: {min(waiting)})" if waiting else ""),
        )
    return out


def overdue_labels(predicted: list[date], labelled: set[date], delay: int, horizon: int) -> list[date]:
    """Batch-scored days whose labels should have matured by the latest scored day (``delay``
    days after their own) and have not, oldest first, over the last ``horizon`` days that were
    due (what a training window can still use) (pure). A label feed that stops shows here on the
    day the first missing label was due; a day with no batch is never overdue, and labels lost
    for good stop counting once they are older than any window."""
    if not predicted:
        return []
    due = max(predicted) - timedelta(days=delay)
    return [d for d in predicted if due - timedelta(days=horizon) < d <= due and d not in labelled]


def performance_samples(settings: Settings, day: str) -> list[Sample]:
    """The latest matured day's live AUC as metrics (pipelines/telemetry.py), beside the floor it
    is held to and the champion's holdout AUC: the same numbers the performance alarm reads."""
    from pipelines.model.champion import current_alias

    summary = read_json(settings.reports_dir / "performance" / f"{day}.json")
    champion = current_alias(settings, "champion")
    if champion is None or summary.get("live_roc_auc") is None or summary.get("model_versions") != [str(champion.version)]:
        return []  # a day another version scored is not the champion's (its floor and its alert are the champion's)
    version = {"champion_version": str(champion.version)}
    dp = settings.params.drift
    holdout = champion.tags.get("holdout_roc_auc")
    floors = [dp.min_live_roc_auc if dp.min_live_roc_auc > 0 else 0.0]
    if holdout is not None and dp.max_live_auc_drop < 1:
        floors.append(float(holdout) - dp.max_live_auc_drop)
    out: list[Sample] = [
        ("pipelines_live_auc", {"day": day, **version}, summary["live_roc_auc"]),
        ("pipelines_live_auc_floor", version, max(floors)),
    ]
    if holdout is not None:
        out.append(("pipelines_holdout_auc", version, float(holdout)))
    return out
