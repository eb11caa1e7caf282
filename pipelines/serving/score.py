"""Batch scoring with the champion (and the challenger in shadow), streamed and atomic.

The champion comes from the champion store (pipelines/model/champion.py) and rows become model
input through the one feature function (pipelines/model/features.py), as in training and the gate.

- The champion is loaded once by alias; its artifact is hashed and checked against the
  ``model_sha256`` recorded at registration before any row is scored.
- The batch is checked against the model's signature (columns and types) before any work.
- Only data/validated/<day>.parquet is read, so a batch that failed validation cannot be
  scored; it is streamed in chunks (pyarrow), so memory is bounded by the chunk size.
- The output is written to a temporary file in the destination folder and renamed when
  complete: a killed job leaves the previous output for the day (if any) or none.
- With a ``challenger`` alias, the same chunks are scored by it into
  data/predictions_shadow/<day>.parquet and the differences are logged; the champion's
  output is never affected.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from contextlib import ExitStack, nullcontext
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import numpy as np

from pipelines.config import Settings
from pipelines.engine import choose_engine, engine_name
from pipelines.errors import PipelineError
from pipelines.io import atomic_path, check_not_quarantined
from pipelines.model.champion import load_verified
from pipelines.model.features import model_input, predict_scores
from pipelines.telemetry import step_succeeded

log = logging.getLogger(__name__)
NUMERIC_ARROW = ("int", "uint", "float", "double", "decimal")


def thread_limit(threads: int) -> Any:
    """OpenMP/BLAS threads for predict_proba: ``threads`` > 0 caps them, 0 keeps the library
    default (every core). HistGradientBoosting's predict is a parallel region per tree whose
    barrier waits for the slowest thread: on a worker whose cores are taken by other tasks that
    was measured ~100x slower (a 1,000-row batch in 4 s instead of 30 ms), so a shared Airflow
    worker should cap it (params.yaml score.threads)."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=min(threads, os.cpu_count() or threads)) if threads > 0 else nullcontext()


def check_signature(schema: Any, signature: Any, settings: Settings, day: date) -> None:
    """Fail before any work if the batch lacks a model input or has it with the wrong type."""
    d = settings.params.data
    fields = {f.name: str(f.type) for f in schema}
    wanted = [d.id_col, d.timestamp_col, *(signature.inputs.input_names() if signature else d.features)]
    missing = [c for c in wanted if c not in fields]
    mistyped = []
    for spec in signature.inputs.inputs if signature else []:
        arrow = fields.get(spec.name)
        if arrow is None:
            continue
        expects_number = str(spec.type).lower() in ("double", "float", "long", "integer", "datatype.double", "datatype.long")
        is_number = arrow.startswith(NUMERIC_ARROW)
        is_text = arrow in ("string", "large_string") or arrow.startswith("dictionary")
        if (expects_number and not is_number) or (not expects_number and not is_text and arrow != "null"):
            mistyped.append(f"{spec.name} ({arrow}, model expects {spec.type})")
    if missing or mistyped:
        parts = ([f"missing {missing}"] if missing else []) + ([f"mistyped {', '.join(mistyped)}"] if mistyped else [])
        raise PipelineError(f"batch {day} does not match the model signature: {'; '.join(parts)}")


@dataclass
class Tally:
    """Running figures of one scoring job: rows, score sum and histogram, shadow differences."""

    bins: int
    threshold: float
    rows: int = 0
    score_sum: float = 0.0
    hist: np.ndarray = field(init=False)
    diff_abs: float = 0.0
    diff_sum: float = 0.0
    flips: int = 0
    shadow_sum: float = 0.0

    def __post_init__(self) -> None:
        self.hist = np.zeros(self.bins, dtype="int64")

    def add(self, scores: np.ndarray, shadow: np.ndarray | None) -> None:
        if shadow is not None:
            diff = shadow - scores
            self.diff_abs += float(np.abs(diff).sum())
            self.diff_sum += float(diff.sum())
            self.flips += int(((shadow >= self.threshold) != (scores >= self.threshold)).sum())
            self.shadow_sum += float(shadow.sum())
        self.rows += len(scores)
        self.score_sum += float(scores.sum())
        self.hist += np.histogram(scores, bins=self.bins, range=(0.0, 1.0))[0]


def _output_schema(settings: Settings, arrow_schema: Any) -> Any:
    import pyarrow as pa

    d = settings.params.data
    return pa.schema(
        [
            (d.id_col, arrow_schema.field(d.id_col).type),
            (d.timestamp_col, arrow_schema.field(d.timestamp_col).type),
            ("score", pa.float64()),
            ("model_name", pa.string()),
            ("model_version", pa.string()),
            ("model_run_id", pa.string()),
            ("scoring_date", pa.string()),
        ]
    )


def _table(settings: Settings, schema: Any, batch: Any, scores: np.ndarray, mv: Any, day: date) -> Any:
    """One chunk of the predictions partition: ids, timestamps, scores and the model's lineage."""
    import pyarrow as pa

    d, n = settings.params.data, len(scores)
    return pa.table(
        {
            d.id_col: batch.column(d.id_col),
            d.timestamp_col: batch.column(d.timestamp_col),
            "score": pa.array(scores, pa.float64()),
            "model_name": pa.repeat(pa.scalar(settings.params.project.model_name, pa.string()), n),
            "model_version": pa.repeat(pa.scalar(str(mv.version), pa.string()), n),
            "model_run_id": pa.repeat(pa.scalar(mv.run_id, pa.string()), n),
            "scoring_date": pa.repeat(pa.scalar(day.isoformat(), pa.string()), n),
        },
        schema=schema,
    )


def _models(settings: Settings) -> tuple[Any, Any, Any, Any, Any]:
    """(champion model, champion version, its signature, shadow model or None, challenger version or None)."""
    model, champion, signature = load_verified(settings, "champion")
    if model is None:
        raise PipelineError(f"model {settings.params.project.model_name} has no champion yet: train and promote one first")
    shadow, challenger, _ = load_verified(settings, "challenger")
    if challenger is not None and challenger.version == champion.version:
        shadow, challenger = None, None
    return model, champion, signature, shadow, challenger


def score(settings: Settings, day: date, progress: bool = True, engine: str | None = None) -> dict[str, Any]:
    """Score the validated batch of ``day``: data/predictions/<day>.parquet (+ shadow).
    ``engine`` (default engine.name: local, spark, or auto by the batch's row count) computes
    the scores; the same writer writes them (pipelines/serving/score_spark.py)."""
    import pyarrow.parquet as pq

    from pipelines.failpoint import failpoint
    from pipelines.tracking import setup_mlflow

    d, sp = settings.params.data, settings.params.score
    override = engine_name(engine) if engine else None  # a bad --engine fails before any work
    src = settings.validated_dir / f"{day.isoformat()}.parquet"
    if not src.is_file():
        check_not_quarantined(settings, day)
        raise PipelineError(f"no validated batch for {day} ({src} missing): run `validate --date {day}` first")
    engine = choose_engine(settings, [src], override)
    setup_mlflow(settings)
    model, champion, signature, shadow, challenger = _models(settings)
    failpoint("score:loaded")  # the champion loaded and verified, no partition written yet

    pf = pq.ParquetFile(src, read_dictionary=list(d.categorical), pre_buffer=False)  # bounded memory
    check_signature(pf.schema_arrow, signature, settings, day)
    total, schema = pf.metadata.num_rows, _output_schema(settings, pf.schema_arrow)
    dest = settings.predictions_dir / f"{day.isoformat()}.parquet"
    shadow_dest = settings.shadow_predictions_dir / f"{day.isoformat()}.parquet"
    tally = Tally(sp.histogram_bins, sp.decision_threshold)
    started = time.perf_counter()
    with ExitStack() as stack:
        stack.enter_context(thread_limit(sp.threads))
        writer = stack.enter_context(pq.ParquetWriter(stack.enter_context(atomic_path(dest)), schema))
        shadow_writer = (
            stack.enter_context(pq.ParquetWriter(stack.enter_context(atomic_path(shadow_dest)), schema))
            if shadow is not None
            else None
        )
        if engine == "spark":
            from pipelines.serving.score_spark import spark_chunks

            chunks = spark_chunks(settings, pf, src, champion, challenger)
        else:
            chunks = local_chunks(settings, pf, model, shadow)
        for batch, scores, s2 in chunks:
            writer.write_table(_table(settings, schema, batch, scores, champion, day))
            if shadow_writer is not None and s2 is not None:
                shadow_writer.write_table(_table(settings, schema, batch, s2, challenger, day))
            tally.add(scores, s2)
            if progress and total > sp.chunk_rows:
                rate = tally.rows / max(time.perf_counter() - started, 1e-9)
                log.info("  scored %s/%s rows (%.0f%%), %s rows/s", f"{tally.rows:,}", f"{total:,}",
                         100 * tally.rows / total, f"{rate:,.0f}")
    summary = _summary(settings, day, tally, time.perf_counter() - started, champion, challenger, dest, shadow_dest)
    summary["engine"] = engine
    _log_summary(summary)
    step_succeeded(settings, "score")
    log.info(
        "scored %s rows of %s with v%s in %.2fs on %s%s", f"{tally.rows:,}", day, champion.version, summary["seconds"], engine,
        f" (shadow v{challenger.version}: mean |diff| {summary['shadow']['mean_abs_diff']})" if "shadow" in summary else "",
    )
    return summary


def local_chunks(settings: Settings, pf: Any, model: Any, shadow: Any) -> Iterator[tuple[Any, np.ndarray, np.ndarray | None]]:
    """The local engine: (a chunk of ``pf``, its champion scores, its shadow scores or None),
    streamed; memory is bounded by score.chunk_rows."""
    d, sp = settings.params.data, settings.params.score
    for batch in pf.iter_batches(batch_size=sp.chunk_rows, columns=[d.id_col, d.timestamp_col, *d.features], use_threads=False):
        X = model_input(batch.to_pandas(), d)
        s2 = predict_scores(shadow, X, sp.chunk_rows) if shadow is not None else None
        yield batch, predict_scores(model, X, sp.chunk_rows), s2


def _summary(
    settings: Settings, day: date, t: Tally, seconds: float, champion: Any, challenger: Any, dest: Any, shadow_dest: Any
) -> dict[str, Any]:
    done, threads = t.rows, settings.params.score.threads
    summary: dict[str, Any] = {
        "day": day.isoformat(),
        "rows": int(done),
        "model_version": str(champion.version),
        "mean_score": round(t.score_sum / done, 6) if done else None,
        "score_p50": _quantile(t.hist, 0.5),
        "score_p90": _quantile(t.hist, 0.9),
        "seconds": round(seconds, 3),
        "threads": threads or "all",
        "rows_per_second": round(done / seconds, 1) if seconds > 0 else None,
        "predictions": str(dest),
    }
    if challenger is not None and done:
        summary["shadow"] = {
            "challenger_version": str(challenger.version),
            "predictions": str(shadow_dest),
            "mean_score": round(t.shadow_sum / done, 6),
            "mean_abs_diff": round(t.diff_abs / done, 6),
            "mean_diff": round(t.diff_sum / done, 6),
            f"decision_flips_at_{t.threshold:g}": int(t.flips),
        }
    return summary


def _quantile(hist: np.ndarray, q: float) -> float | None:
    """Approximate quantile of scores from a histogram of equal bins on [0, 1] (bin upper edge)."""
    total = int(hist.sum())
    if total == 0:
        return None
    idx = int(np.searchsorted(np.cumsum(hist), q * total))
    return round((idx + 1) / len(hist), 3)


def _log_summary(summary: dict[str, Any]) -> None:
    """One MLflow run per scoring job: row count, score distribution, duration, shadow diffs."""
    import mlflow

    from pipelines.tracking import owner_tag

    metrics = {k: float(v) for k, v in summary.items() if isinstance(v, (int, float)) and v is not None and k != "threads"}
    for k, v in (summary.get("shadow") or {}).items():
        if isinstance(v, (int, float)):
            metrics[f"shadow_{k}"] = float(v)
    with mlflow.start_run(run_name=f"score-{summary['day']}"):
        mlflow.set_tags(
            {
                **owner_tag(),
                "step": "score",
                "day": summary["day"],
                "model_version": summary["model_version"],
                "threads": str(summary["threads"]),
                "engine": summary.get("engine", "local"),
            }
        )
        mlflow.log_metrics(metrics)
