"""The online prediction log: every online prediction, appended to date partitions.

Parquet files cannot be appended to, so each day is a folder of part files written atomically
(``<serve.predictions_dir>/<YYYY-MM-DD>/part-<ms>-<pid>-<seq>.parquet``), at most every
``serve.log_flush_seconds``. A part has the columns of a batch predictions partition (id,
timestamp, score, model name/version/run id, scoring date) plus ``request_id``, ``variant``
(champion, canary, shadow, champion_offpath), ``latency_ms`` and the model's feature columns
as the request sent them (``data.numerical`` as float64, ``data.categorical`` as strings; null
on an off-path row, whose request's inputs are on its served row), so every part of every day
has one schema. The drift job checks a day's inputs from the served rows and the
live-performance job reads the scores (pipelines/monitoring/). A killed server loses at most
the rows of its last interval, never leaves a half-written part; the temporary file of a part
it was writing is removed, once over an hour old, by a later sweep of that day's folder (each
server sweeps the day it writes and the day before, at most once an hour). A write itself does
not list the day's folder, which holds thousands of parts by the evening. Once the day is
closed, pipelines/serving/compact.py merges its parts into a few files; readers list a day
through ``pipelines.io.day_parts``, which takes those files in the place of the parts they hold.

The response path only queues a reference per request (:meth:`PredictionLog.append`): the
feature columns are sliced from the columns the scorer already built the model's frame from
(pipelines/serving/payload.py ``columns_of``, one set per batch of requests) when the log is
flushed, off the response path, a slice per request and column.
"""

from __future__ import annotations

import itertools
import logging
import os
import threading
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from pipelines.config import DataParams
from pipelines.errors import PipelineError
from pipelines.io import STALE_TMP_SECONDS, atomic_path, remove_stale_tmp

log = logging.getLogger(__name__)
COLUMNS = [
    "request_id",
    "id",
    "timestamp",
    "variant",
    "model_name",
    "model_version",
    "model_run_id",
    "score",
    "latency_ms",
    "scoring_date",
]
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# a request's inputs: the columns its scorer built (payload.columns_of; a batch of requests share
# them), feature name -> array or list, and where the request's rows start in them
Inputs = tuple[dict[str, Any], int]


class PredictionLog:
    """A buffer of requests flushed to part files by :meth:`flush` (the server calls it on a timer)."""

    def __init__(self, folder: Path, data: DataParams) -> None:
        self.folder = folder
        self.id_col = data.id_col
        self.timestamp_col = data.timestamp_col
        self.numerical, self.categorical = list(data.numerical), list(data.categorical)
        taken = {*COLUMNS, data.id_col, data.timestamp_col} - {"id", "timestamp"}
        clash = [c for c in data.features if c in taken]
        if clash:
            raise PipelineError(f"feature {clash[0]!r} has the name of a prediction log column: rename it in data.*")
        self._requests: list[tuple[Any, ...]] = []
        self._lock = threading.Lock()
        self._seq = 0
        self.written = 0
        self._swept: dict[str, float] = {}  # day -> when this log last cleared its folder of stale temporaries

    def append(self, request_id: str, ids: list[Any] | None, variant: str, model_name: str, version: str, run_id: str,
               scores: Any, latency_ms: float, inputs: Inputs | None = None) -> None:
        """Buffer one request's predictions (cheap: no I/O and nothing per row on the response
        path). ``inputs``: the columns its rows were scored from (:data:`Inputs`); None (an
        off-path score) logs null features."""
        entry = (request_id, ids, datetime.now(UTC), variant, model_name, version, run_id, scores, latency_ms, inputs)
        with self._lock:
            self._requests.append(entry)

    def flush(self) -> int:
        """Write the buffered rows, one part per day; returns how many were written."""
        import pyarrow.parquet as pq

        with self._lock:
            requests, self._requests = self._requests, []
        if not requests:
            return 0
        by_day: dict[str, list[tuple[Any, ...]]] = {}
        for r in requests:
            by_day.setdefault(r[2].date().isoformat(), []).append(r)
        rows = 0
        for day, part in by_day.items():
            table = self.table(day, part)
            self._seq += 1
            dest = self.folder / day / f"part-{int(part[0][2].timestamp() * 1000)}-{os.getpid()}-{self._seq:06d}.parquet"
            with atomic_path(dest, sweep=False) as tmp:  # each part a new name: a per-write sweep finds nothing
                pq.write_table(table, tmp)
            self._sweep(date.fromisoformat(day))
            rows += table.num_rows
        self.written += rows
        return rows

    def table(self, day: str, part: list[tuple[Any, ...]]) -> Any:
        """One part's rows as a pyarrow Table of a fixed schema (the requests of ``day``)."""
        import pyarrow as pa

        counts = np.array([len(r[7]) for r in part], dtype="int64")
        n = int(counts.sum())

        def each(i: int) -> np.ndarray:  # a per-request value, one per row
            return np.repeat(np.array([r[i] for r in part], dtype=object), counts)

        micros = np.array([(r[2] - _EPOCH) // timedelta(microseconds=1) for r in part], dtype="int64")
        ids = [None if i is None else str(i) for r in part for i in (r[1] if r[1] is not None else [None] * len(r[7]))]
        columns = {
            "request_id": pa.array(each(0), pa.string()),
            self.id_col: pa.array(ids, pa.string()),
            self.timestamp_col: pa.array(np.repeat(micros, counts)).cast(pa.timestamp("us", tz="UTC")),
            "variant": pa.array(each(3), pa.string()),
            "model_name": pa.array(each(4), pa.string()),
            "model_version": pa.array(each(5), pa.string()),
            "model_run_id": pa.array(each(6), pa.string()),
            "score": pa.array(np.concatenate([np.asarray(r[7], dtype="float64") for r in part]), pa.float64()),
            "latency_ms": pa.array(np.repeat(np.array([r[8] for r in part], dtype="float64"), counts), pa.float64()),
            "scoring_date": pa.array([day] * n, pa.string()),
        }
        columns.update(self._features(part, counts))
        return pa.table(columns)

    def _features(self, part: list[tuple[Any, ...]], counts: np.ndarray) -> dict[str, Any]:
        """The feature columns of a part: each request's rows sliced from the columns its
        scorer built, requests scored together in one slice (no Python work per row)."""
        import pyarrow as pa

        spans: list[tuple[Any, int, int]] = []  # (columns or None, start, stop): rows of one scorer call in a row
        for r, k in zip(part, counts.tolist(), strict=True):
            columns, at = r[9] if r[9] is not None else (None, 0)
            if spans and spans[-1][0] is columns and (columns is None or spans[-1][2] == at):
                spans[-1] = (columns, spans[-1][1], spans[-1][2] + k)
            else:
                spans.append((columns, at, at + k))
        out = {}
        for col, numerical in [*((c, True) for c in self.numerical), *((c, False) for c in self.categorical)]:
            if numerical:
                values: Any = np.concatenate(
                    [np.full(b - a, np.nan) if cols is None else cols[col][a:b] for cols, a, b in spans]
                ).astype("float64", copy=False)
            else:
                values = list(itertools.chain.from_iterable([None] * (b - a) if cols is None else cols[col][a:b]
                                                            for cols, a, b in spans))
            # from_pandas: a NaN (JSON null) is a null, as pandas writes a batch's
            out[col] = pa.array(values, pa.float64() if numerical else pa.string(), from_pandas=True)
        return out

    def _sweep(self, day: date) -> None:
        """Clear the stale temporaries of a killed writer from ``day``'s folder and the day
        before's, each at most once an hour: a listing of a folder of thousands of parts."""
        now = time.monotonic()
        for d in (day, day - timedelta(days=1)):
            key = d.isoformat()
            if now - self._swept.get(key, -STALE_TMP_SECONDS) < STALE_TMP_SECONDS or not (self.folder / key).is_dir():
                continue
            self._swept[key] = now  # tried: not again within the hour, even if it failed
            try:
                remove_stale_tmp(self.folder / key, ".part-*.parquet.*.tmp")
            except OSError as exc:  # a file we may not remove: the parts are written all the same
                log.warning("cannot clear stale temporary parts in %s: %s", self.folder / key, exc)

