"""The online prediction log: every online prediction, appended to date partitions.

Parquet files cannot be appended to, so each day is a folder of part files written atomically
(``<serve.predictions_dir>/<YYYY-MM-DD>/part-<ms>-<pid>-<seq>.parquet``), at most every
``serve.log_flush_seconds``. A part has the columns of a batch predictions partition (id,
timestamp, score, model name/version/run id, scoring date) plus ``request_id``, ``variant``
(champion, canary, shadow) and ``latency_ms``; the drift and live-performance jobs read them
beside data/predictions/ (pipelines/monitoring/). A killed server loses at most the rows of
its last interval, never leaves a half-written part; the temporary file of a part it was
writing is removed, once over an hour old, by a later sweep of that day's folder (each server
sweeps the day it writes and the day before, at most once an hour). A write itself does not
list the day's folder, which holds thousands of parts by the evening.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

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


class PredictionLog:
    """A buffer of rows flushed to part files by :meth:`flush` (the server calls it on a timer)."""

    def __init__(self, folder: Path, id_col: str, timestamp_col: str) -> None:
        self.folder = folder
        self.id_col = id_col
        self.timestamp_col = timestamp_col
        self._rows: list[tuple[Any, ...]] = []
        self._lock = threading.Lock()
        self._seq = 0
        self.written = 0
        self._swept: dict[str, float] = {}  # day -> when this log last cleared its folder of stale temporaries

    def append(self, request_id: str, ids: list[Any] | None, variant: str, model_name: str, version: str, run_id: str,
               scores: Any, latency_ms: float) -> None:
        """Buffer one request's predictions (cheap: no I/O on the response path)."""
        now = datetime.now(UTC)
        n = len(scores)
        idv = ids if ids is not None else [None] * n
        rows = [
            (request_id, None if i is None else str(i), now, variant, model_name, version, run_id, float(s), latency_ms)
            for i, s in zip(idv, scores, strict=True)
        ]
        with self._lock:
            self._rows.extend(rows)

    def flush(self) -> int:
        """Write the buffered rows, one part per day; returns how many were written."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        with self._lock:
            rows, self._rows = self._rows, []
        if not rows:
            return 0
        by_day: dict[str, list[tuple[Any, ...]]] = {}
        for r in rows:
            by_day.setdefault(r[2].date().isoformat(), []).append(r)
        for day, part in by_day.items():
            cols = list(zip(*part, strict=True))
            table = pa.table(
                {
                    "request_id": pa.array(cols[0], pa.string()),
                    self.id_col: pa.array(cols[1], pa.string()),
                    self.timestamp_col: pa.array(cols[2], pa.timestamp("us", tz="UTC")),
                    "variant": pa.array(cols[3], pa.string()),
                    "model_name": pa.array(cols[4], pa.string()),
                    "model_version": pa.array(cols[5], pa.string()),
                    "model_run_id": pa.array(cols[6], pa.string()),
                    "score": pa.array(cols[7], pa.float64()),
                    "latency_ms": pa.array(cols[8], pa.float64()),
                    "scoring_date": pa.array([day] * len(part), pa.string()),
                }
            )
            self._seq += 1
            dest = self.folder / day / f"part-{int(cols[2][0].timestamp() * 1000)}-{os.getpid()}-{self._seq:06d}.parquet"
            with atomic_path(dest, sweep=False) as tmp:  # each part a new name: a per-write sweep finds nothing
                pq.write_table(table, tmp)
            self._sweep(date.fromisoformat(day))
        self.written += len(rows)
        return len(rows)

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

