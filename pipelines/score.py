"""Batch scoring with the champion (and the challenger in shadow), streamed and atomic.

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

import hashlib
import os
import sys
import time
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipelines.config import Settings
from pipelines.errors import PipelineError
from pipelines.features import model_input
from pipelines.io import atomic_path

NUMERIC_ARROW = ("int", "uint", "float", "double", "decimal")


def predict_scores(model: Any, X: pd.DataFrame, chunk_rows: int) -> np.ndarray:
    """Probability of default for each row, in chunks (pure given the model)."""
    if len(X) == 0:
        return np.empty(0, dtype="float64")
    parts = [model.predict_proba(X.iloc[i : i + chunk_rows])[:, 1] for i in range(0, len(X), chunk_rows)]
    return np.concatenate(parts).astype("float64")


def thread_limit(threads: int) -> Any:
    """OpenMP/BLAS threads for predict_proba: ``threads`` > 0 caps them, 0 keeps the library
    default (every core). HistGradientBoosting's predict is a parallel region per tree whose
    barrier waits for the slowest thread: on a worker whose cores are taken by other tasks that
    was measured ~100x slower (a 1,000-row batch in 4 s instead of 30 ms), so a shared Airflow
    worker should cap it (params.yaml score.threads)."""
    from contextlib import nullcontext

    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=min(threads, os.cpu_count() or threads)) if threads > 0 else nullcontext()


def artifact_sha256(model_dir: Path) -> str:
    """A hash of every file of a model artifact (paths and bytes, in a stable order)."""
    h = hashlib.sha256()
    for f in sorted(p for p in model_dir.rglob("*") if p.is_file()):
        h.update(f.relative_to(model_dir).as_posix().encode())
        with f.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


def load_verified(settings: Settings, alias: str) -> tuple[Any, Any, Any]:
    """(model, model version, signature) for an alias, after checking the artifact's hash."""
    import mlflow
    from mlflow.models import Model

    from pipelines.evaluate import current_alias

    name = settings.p.project.model_name
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
            f"{name} v{mv.version} ({alias}): artifact hash {actual[:12]} differs from the registered {recorded[:12]}; refusing to score"
        )
    return mlflow.sklearn.load_model(str(local)), mv, Model.load(str(local)).signature


def check_signature(schema: Any, signature: Any, settings: Settings, day: date) -> None:
    """Fail before any work if the batch lacks a model input or has it with the wrong type."""
    d = settings.p.data
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


def score(settings: Settings, day: date, progress: bool = True) -> dict[str, Any]:
    """Score the validated batch of ``day``: data/predictions/<day>.parquet (+ shadow)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from pipelines.tracking import setup_mlflow

    d, chunk_rows = settings.p.data, settings.p.score.chunk_rows
    name = settings.p.project.model_name
    src = settings.validated_dir / f"{day.isoformat()}.parquet"
    if not src.is_file():
        raise PipelineError(f"no validated batch for {day} ({src} missing): run `validate --date {day}` first")
    setup_mlflow(settings)
    model, champion, signature = load_verified(settings, "champion")
    if model is None:
        raise PipelineError(f"model {name} has no champion yet: train and promote one first")
    shadow, challenger, _ = load_verified(settings, "challenger")
    if challenger is not None and challenger.version == champion.version:
        shadow, challenger = None, None

    pf = pq.ParquetFile(src, read_dictionary=list(d.categorical), pre_buffer=False)  # bounded memory
    check_signature(pf.schema_arrow, signature, settings, day)
    total = pf.metadata.num_rows
    columns = [d.id_col, d.timestamp_col, *d.features]
    out_schema = pa.schema(
        [
            (d.id_col, pf.schema_arrow.field(d.id_col).type),
            (d.timestamp_col, pf.schema_arrow.field(d.timestamp_col).type),
            ("score", pa.float64()),
            ("model_name", pa.string()),
            ("model_version", pa.string()),
            ("model_run_id", pa.string()),
            ("scoring_date", pa.string()),
        ]
    )
    dest = settings.predictions_dir / f"{day.isoformat()}.parquet"
    shadow_dest = settings.path("data", "predictions_shadow", f"{day.isoformat()}.parquet")
    started = time.perf_counter()
    done, score_sum = 0, 0.0
    hist = np.zeros(20, dtype="int64")
    diff_abs, diff_sum, flips, shadow_sum = 0.0, 0.0, 0, 0.0

    def table(batch: Any, scores: np.ndarray, mv: Any) -> Any:
        n = len(scores)
        return pa.table(
            {
                d.id_col: batch.column(d.id_col),
                d.timestamp_col: batch.column(d.timestamp_col),
                "score": pa.array(scores, pa.float64()),
                "model_name": pa.repeat(pa.scalar(name, pa.string()), n),
                "model_version": pa.repeat(pa.scalar(str(mv.version), pa.string()), n),
                "model_run_id": pa.repeat(pa.scalar(mv.run_id, pa.string()), n),
                "scoring_date": pa.repeat(pa.scalar(day.isoformat(), pa.string()), n),
            },
            schema=out_schema,
        )

    threads = settings.p.score.threads
    with thread_limit(threads), atomic_path(dest) as tmp, (atomic_path(shadow_dest) if shadow is not None else _null()) as shadow_tmp:
        writer = pq.ParquetWriter(tmp, out_schema)
        shadow_writer = pq.ParquetWriter(shadow_tmp, out_schema) if shadow is not None else None
        try:
            for batch in pf.iter_batches(batch_size=chunk_rows, columns=columns, use_threads=False):
                X = model_input(batch.to_pandas(), d)
                scores = model.predict_proba(X)[:, 1].astype("float64")
                writer.write_table(table(batch, scores, champion))
                if shadow is not None:
                    s2 = shadow.predict_proba(X)[:, 1].astype("float64")
                    shadow_writer.write_table(table(batch, s2, challenger))
                    diff = s2 - scores
                    diff_abs += float(np.abs(diff).sum())
                    diff_sum += float(diff.sum())
                    flips += int(((s2 >= 0.5) != (scores >= 0.5)).sum())
                    shadow_sum += float(s2.sum())
                done += len(scores)
                score_sum += float(scores.sum())
                hist += np.histogram(scores, bins=20, range=(0.0, 1.0))[0]
                if progress and total > chunk_rows:
                    rate = done / max(time.perf_counter() - started, 1e-9)
                    print(f"  scored {done:,}/{total:,} rows ({done / total:.0%}), {rate:,.0f} rows/s", file=sys.stderr, flush=True)
        finally:
            writer.close()
            if shadow_writer is not None:
                shadow_writer.close()
    seconds = time.perf_counter() - started
    summary: dict[str, Any] = {
        "day": day.isoformat(),
        "rows": int(done),
        "model_version": str(champion.version),
        "mean_score": round(score_sum / done, 6) if done else None,
        "score_p50": _quantile(hist, 0.5),
        "score_p90": _quantile(hist, 0.9),
        "seconds": round(seconds, 3),
        "threads": threads or "all",
        "rows_per_second": round(done / seconds, 1) if seconds > 0 else None,
        "predictions": str(dest),
    }
    if shadow is not None and done:
        summary["shadow"] = {
            "challenger_version": str(challenger.version),
            "predictions": str(shadow_dest),
            "mean_score": round(shadow_sum / done, 6),
            "mean_abs_diff": round(diff_abs / done, 6),
            "mean_diff": round(diff_sum / done, 6),
            "decision_flips_at_0.5": int(flips),
        }
    _log_summary(summary)
    print(
        f"scored {done:,} rows of {day} with v{champion.version} in {seconds:.2f}s"
        + (f" (shadow v{challenger.version}: mean |diff| {summary['shadow']['mean_abs_diff']})" if "shadow" in summary else ""),
        file=sys.stderr,
    )
    return summary


def _quantile(hist: np.ndarray, q: float) -> float | None:
    """Approximate quantile of scores from a 20-bin histogram on [0, 1] (bin upper edge)."""
    total = int(hist.sum())
    if total == 0:
        return None
    idx = int(np.searchsorted(np.cumsum(hist), q * total))
    return round((idx + 1) / len(hist), 3)


class _null:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def _log_summary(summary: dict[str, Any]) -> None:
    """One MLflow run per scoring job: row count, score distribution, duration, shadow diffs."""
    import mlflow

    metrics = {k: float(v) for k, v in summary.items() if isinstance(v, (int, float)) and v is not None and k != "threads"}
    for k, v in (summary.get("shadow") or {}).items():
        if isinstance(v, (int, float)):
            metrics[f"shadow_{k}"] = float(v)
    with mlflow.start_run(run_name=f"score-{summary['day']}"):
        mlflow.set_tags({"step": "score", "day": summary["day"], "model_version": summary["model_version"], "threads": str(summary["threads"])})
        mlflow.log_metrics(metrics)
