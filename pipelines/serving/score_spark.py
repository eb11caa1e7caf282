"""Batch scoring on Spark: the project's own scoring call in ``mapInPandas``, the same bits.

Each Spark task turns its Arrow batches into pandas frames and calls ``model_input`` then
``predict_scores`` (pipelines/model/features.py), the functions the local engine, the gate and
the online server call: a score on Spark is the same float64 as a score here, by construction.

Why ``mapInPandas`` and not ``mlflow.pyfunc.spark_udf``: the UDF goes through the pyfunc wrapper
(its own input conversion and schema enforcement, ``predict`` rather than ``predict_proba``)
and so is not the project's scoring call; the gate and the local engine would judge one code
path and Spark would run another. ``mapInPandas`` runs exactly ours.

- The model travels as its registered artifact (the bytes the champion store verified on the
  driver), broadcast once; each Python worker process unpacks it, checks it against the
  recorded ``model_sha256`` again and loads it once (``_MODELS``, a cache per process, reused
  across tasks and days while Spark reuses its workers).
- Only ``_row`` (the row's position in the Parquet file, Spark's ``_metadata.row_index``) and
  the scores come back to the driver, as Arrow (16 bytes a row, 24 with a shadow: about 24 MB
  for a million rows); the batch itself never does. The driver sorts them by position and
  writes the partition through the same atomic writer as the local engine, reading ids and
  timestamps from the file in chunks: the same columns, types and row order as a local run.
  Collecting keeps the write atomic (one file renamed into place) at the price of the scores
  passing through the driver, which is fine for a day's scores; it is not a per-row stream.
- Executors score with one thread per task: Spark already runs one task per core.
"""

from __future__ import annotations

import atexit
import io
import shutil
import tarfile
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipelines.config import DataParams, Settings
from pipelines.engine import quoted, spark_reason, step_session
from pipelines.errors import PipelineError
from pipelines.model.features import model_input, predict_scores

_MODELS: dict[str, Any] = {}  # per Python worker process: artifact sha256 -> the loaded model
ROW = "_row"


def artifact_blob(settings: Settings, mv: Any) -> bytes:
    """The registered artifact of model version ``mv`` as an uncompressed tar (what executors unpack)."""
    import mlflow

    local = Path(mlflow.artifacts.download_artifacts(artifact_uri=f"models:/{settings.params.project.model_name}/{mv.version}"))
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        tar.add(local, arcname=".")
    return buf.getvalue()


def worker_model(sha: str, blob: bytes) -> Any:
    """The model of artifact ``sha``, loaded once per Python worker process and checked against
    its recorded hash after unpacking."""
    model = _MODELS.get(sha)
    if model is None:
        import mlflow

        from pipelines.model.champion import artifact_sha256

        folder = Path(tempfile.mkdtemp(prefix="pipelines-model-"))
        atexit.register(shutil.rmtree, folder, ignore_errors=True)  # the worker's copy goes with the worker
        with tarfile.open(fileobj=io.BytesIO(blob)) as tar:
            tar.extractall(folder, filter="data")  # the "data" filter refuses links and paths outside
        if artifact_sha256(folder) != sha:
            raise PipelineError(f"the model artifact unpacked on this executor does not match its hash {sha[:12]}")
        model = _MODELS[sha] = mlflow.sklearn.load_model(str(folder))
    return model


def scorer(data: DataParams, models: list[tuple[str, Any]], chunk_rows: int) -> Callable[..., Iterator[pd.DataFrame]]:
    """The function ``mapInPandas`` runs: each frame's rows scored by every model of ``models``
    ((sha256, broadcast artifact) pairs: champion, then the challenger in shadow)."""
    from threadpoolctl import threadpool_limits

    def score_frames(frames: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        loaded = [worker_model(sha, blob.value) for sha, blob in models]
        with threadpool_limits(limits=1):
            for frame in frames:
                X = model_input(frame, data)
                out = {ROW: frame[ROW].to_numpy(dtype="int64")}
                for i, model in enumerate(loaded):
                    out[f"score_{i}"] = predict_scores(model, X, chunk_rows)
                yield pd.DataFrame(out)

    return score_frames


def spark_scores(settings: Settings, src: Path, versions: list[Any]) -> list[np.ndarray]:
    """Scores of every row of the Parquet file ``src`` by each model version of ``versions``, in
    the file's row order, computed by Spark tasks with the project's scoring call."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import DoubleType, LongType, StructField, StructType

    d = settings.params.data
    spark = step_session(settings)
    models = []
    for mv in versions:
        sha = mv.tags.get("model_sha256")
        models.append((sha, spark.sparkContext.broadcast(artifact_blob(settings, mv))))
    schema = StructType([StructField(ROW, LongType()), *[StructField(f"score_{i}", DoubleType()) for i in range(len(models))]])
    try:
        df = spark.read.parquet(str(src))
        picked = df.select(F.col("_metadata.row_index").alias(ROW), *[df[quoted(c)] for c in d.features])
        table = picked.mapInPandas(scorer(d, models, settings.params.score.chunk_rows), schema).toArrow()
    except Exception as exc:  # AnalysisException, PythonException from a task, Py4JJavaError, ...
        raise PipelineError(f"spark could not score {src}: {spark_reason(exc)}") from exc
    finally:
        for _, blob in models:
            blob.unpersist()
    rows = table.column(ROW).to_numpy()
    order = np.argsort(rows, kind="stable")
    if not np.array_equal(rows[order], np.arange(len(rows))):
        raise PipelineError(f"spark returned {len(rows)} scores for {src}, not one per row")
    return [table.column(f"score_{i}").to_numpy()[order].astype("float64") for i in range(len(models))]


def spark_chunks(
    settings: Settings, pf: Any, src: Path, champion: Any, challenger: Any
) -> Iterator[tuple[Any, np.ndarray, np.ndarray | None]]:
    """(ids and timestamps of a chunk of ``pf``, its champion scores, its shadow scores or
    None), in the file's order, as the local engine yields them: the writer is the same."""
    d, chunk = settings.params.data, settings.params.score.chunk_rows
    scores = spark_scores(settings, src, [champion, *([challenger] if challenger is not None else [])])
    if len(scores[0]) != pf.metadata.num_rows:
        raise PipelineError(f"spark scored {len(scores[0])} rows of {src}, which has {pf.metadata.num_rows}")
    at = 0
    for batch in pf.iter_batches(batch_size=chunk, columns=[d.id_col, d.timestamp_col], use_threads=False):
        n = batch.num_rows
        yield batch, scores[0][at : at + n], (scores[1][at : at + n] if len(scores) > 1 else None)
        at += n
