"""Compaction of the online prediction log: a closed day's parts merged into a few files.

The server writes a part per flush per worker (pipelines/serving/predlog.py): a day of steady
traffic leaves 43,200 of them, and every reader of the day (drift, live performance, the
rollout's outcomes) would open each one. Once the day is closed, :func:`compact` merges its
parts, in name order, into ``compact-<NNNNN>.parquet`` files of at most ``serve.compact_rows``
rows each (more when the day would otherwise need over :data:`MAX_FILES` files), parts of one
schema per file (a part written before the log carried the model's inputs keeps its own file,
so the readers leave it out as before). Each file is written to a temporary name and renamed
into place whole, and names in its Parquet key-value metadata the parts it holds
(``pipelines.io.HOLDS_KEY``) and any earlier compacted file it replaces: the readers' one
listing (``pipelines.io.day_parts``) takes the compacted files and the parts none of them
holds, so a reader never sees a row twice or misses one, even across a crash at any point.

The parts a compacted file holds are deleted only once that file is older than
``serve.compact_grace_seconds``, by a later run of the same day: a reader that listed the
folder before the compaction can still open what it listed. Runs of one day hold the day's
lock (a ``flock`` on ``<day>/.compact.lock``). A run finds nothing to merge on a compacted day
with no new part; a part flushed late is merged into a new compacted file by the next run.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from pipelines.config import Settings
from pipelines.errors import PipelineError, first_line
from pipelines.failpoint import failpoint
from pipelines.io import (
    COMPACTED_GLOB,
    HOLDS_KEY,
    PART_GLOB,
    REPLACES_KEY,
    atomic_path,
    compacted_holds,
    file_lock,
    remove_stale_tmp,
)

log = logging.getLogger(__name__)
MAX_FILES = 48  # most compacted files a closed day ends with, whatever its traffic
WRITE_ROWS = 65_536  # rows gathered from small parts before a row group is written
SEQ_RE = re.compile(r"^compact-(\d+)\.parquet$")
LOCK_NAME = ".compact.lock"


@dataclass
class Source:
    """One file to merge: a part, or an earlier compacted file (with the parts it holds)."""

    path: Path
    rows: int
    schema: Any  # pyarrow.Schema, without metadata
    parts: list[str] = field(default_factory=list)  # the part names whose rows it carries


def check_closed(day: date, now: datetime, flush_seconds: float) -> None:
    """Refuse a day that is not over: servers still write its parts until its end, plus a flush."""
    closes = datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(days=1, seconds=flush_seconds)
    if day > now.astimezone(UTC).date():
        raise PipelineError(f"{day} is in the future (today is {now.astimezone(UTC):%Y-%m-%d} UTC): nothing to compact")
    if now < closes:
        raise PipelineError(
            f"{day} is still open (now {now.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC): its prediction log is "
            f"compacted once the day is closed, from {closes:%Y-%m-%d %H:%M:%S} UTC"
        )


def compact(settings: Settings, day: date, now: datetime,
            progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Merge the closed ``day``'s prediction-log parts into a few compacted files, and delete
    the parts (and replaced compacted files) held by a compacted file older than the grace
    period. ``now`` is the wall clock (the CLI's and the task's); ``progress(done, total)`` is
    called as parts are merged. Returns counts: parts merged, rows, files written, files
    removed, files the day's readers open."""
    sp = settings.params.serve
    check_closed(day, now, sp.log_flush_seconds)
    folder = settings.online_predictions_dir / day.isoformat()
    out: dict[str, Any] = {"day": day.isoformat(), "merged_parts": 0, "rows": 0, "written": 0, "removed": 0}
    if not folder.is_dir():
        return {**out, "files": 0, "reason": f"no prediction log for {day} in {folder.parent}: nothing to compact"}
    with file_lock(folder / LOCK_NAME):
        remove_stale_tmp(folder, ".compact-*.parquet.*.tmp")  # of a run killed mid-write, over an hour old
        out["removed"] = remove_covered(folder, now, sp.compact_grace_seconds)
        live, parts = _listing(folder)
        if not parts:
            reason = "compacted already, no new part" if live else "no part to compact"
            return {**out, "files": len(live), "reason": reason}
        out.update(_merge(folder, live, parts, sp.compact_rows, progress))
        out["removed"] += remove_covered(folder, now, sp.compact_grace_seconds)
        live, parts = _listing(folder)
    return {**out, "files": len(live) + len(parts)}


def _merge(folder: Path, live: list[Path], parts: list[Path], budget: int,
           progress: Callable[[int, int], None] | None) -> dict[str, Any]:
    """Write the compacted files of ``parts`` (and of the ``live`` compacted files too, when the
    day would otherwise end with more than :data:`MAX_FILES`)."""
    sources = [_source(p, [p.name]) for p in parts]
    plan = _plan(sources, budget)
    if len(live) + len(plan) > MAX_FILES:  # too many files: rewrite the compacted ones with the new parts
        sources = [_source(c, sorted(compacted_holds(c) - _replaced(c))) for c in live] + sources
        live = []
        plan = _plan(sources, budget)
    total = sum(s.rows for s in sources)
    while len(live) + len(plan) > MAX_FILES and budget < total:  # a busy day: bigger files
        budget *= 2
        plan = _plan(sources, budget)
    seq = _next_seq(folder)
    done = 0

    def tick() -> None:
        nonlocal done
        done += 1
        if progress is not None and (done % 5000 == 0 or done == len(parts)):
            progress(done, len(parts))

    for k, files in enumerate(plan):
        _write(folder / f"compact-{seq + k:05d}.parquet", files, tick)
    rewritten = f" and {len(sources) - len(parts)} compacted file(s)" if len(sources) > len(parts) else ""
    return {"merged_parts": done, "rows": total, "written": len(plan),
            "reason": f"merged {len(parts)} part(s){rewritten} into {len(plan)} file(s)"}


def _listing(folder: Path) -> tuple[list[Path], list[Path]]:
    """The day's compacted files no other one replaces, and its parts none holds (name order)."""
    compacted = sorted(folder.glob(COMPACTED_GLOB))
    covered: set[str] = set()
    for c in compacted:
        covered |= compacted_holds(c)
    return [c for c in compacted if c.name not in covered], sorted(p for p in folder.glob(PART_GLOB) if p.name not in covered)


def _replaced(path: Path) -> set[str]:
    import pyarrow.parquet as pq

    return set(json.loads((pq.read_schema(path).metadata or {}).get(REPLACES_KEY, b"[]")))


def _source(path: Path, parts: list[str]) -> Source:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        meta = pq.read_metadata(path)
        schema = meta.schema.to_arrow_schema().remove_metadata()
    except (pa.ArrowException, OSError) as exc:
        raise PipelineError(
            f"{path} is not a readable Parquet file: {first_line(exc)}; move it aside to compact the day"
        ) from exc
    return Source(path, meta.num_rows, schema, parts)


def _plan(sources: list[Source], budget: int) -> list[list[Source]]:
    """The files to write: sources of one schema each, in order within a schema, at most
    ``budget`` rows each (a single larger source alone)."""
    groups: list[list[Source]] = []
    for s in sources:
        group = next((g for g in groups if g[0].schema.equals(s.schema)), None)
        if group is None:
            groups.append([s])
        else:
            group.append(s)
    plan: list[list[Source]] = []
    for group in groups:
        current: list[Source] = []
        rows = 0
        for s in group:
            if current and rows + s.rows > budget:
                plan.append(current)
                current, rows = [], 0
            current.append(s)
            rows += s.rows
        plan.append(current)
    return plan


def _next_seq(folder: Path) -> int:
    seqs = [int(m.group(1)) for p in folder.glob(COMPACTED_GLOB) if (m := SEQ_RE.match(p.name))]
    return max(seqs, default=0) + 1


def _write(dest: Path, files: list[Source], tick: Callable[[], None]) -> None:
    """Write one compacted file atomically: the sources' rows in order, in row groups of about
    :data:`WRITE_ROWS`, its metadata naming the parts it holds and the compacted files it replaces."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    holds = [n for s in files for n in s.parts]
    replaces = [s.path.name for s in files if not s.path.name.startswith("part-")]
    schema = files[0].schema.with_metadata({HOLDS_KEY: json.dumps(holds).encode(), REPLACES_KEY: json.dumps(replaces).encode()})
    if dest.exists():  # never: the name is one past every compacted file's, under the day's lock
        raise PipelineError(f"{dest} exists already: another compaction of the day is running without the lock")
    with atomic_path(dest, sweep=False) as tmp:
        with pq.ParquetWriter(tmp, schema) as writer:
            pending: list[Any] = []
            rows = 0
            for s in files:
                if s.path.name.startswith("part-"):
                    tick()
                for batch in pq.ParquetFile(s.path).iter_batches(batch_size=WRITE_ROWS, use_threads=False):
                    pending.append(pa.Table.from_batches([batch]).cast(files[0].schema))
                    rows += batch.num_rows
                    if rows >= WRITE_ROWS:
                        writer.write_table(pa.concat_tables(pending))
                        pending, rows = [], 0
            if pending:
                writer.write_table(pa.concat_tables(pending))
        failpoint("compact:written")  # the temporary file complete, not renamed
    failpoint("compact:renamed")  # a compacted file in place, its parts still there


def remove_covered(folder: Path, now: datetime, grace_seconds: float) -> int:
    """Delete the files (parts, replaced compacted files) held by a compacted file of ``folder``
    last written over ``grace_seconds`` before ``now``; how many were deleted."""
    cutoff = now.timestamp() - grace_seconds
    removed = 0
    for c in sorted(folder.glob(COMPACTED_GLOB)):
        try:
            old = c.stat().st_mtime <= cutoff
        except FileNotFoundError:
            continue
        if not old:
            continue
        for name in sorted(compacted_holds(c)):
            try:
                (folder / name).unlink()
                removed += 1
            except FileNotFoundError:
                continue  # removed by an earlier run
            failpoint("compact:removing")
    return removed
