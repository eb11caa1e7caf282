"""File I/O at the edges: date partitions, atomic writes, safe Parquet/CSV reads.

Every write goes to a temporary file in the destination folder and is renamed into place,
so a killed process never leaves a half-written partition.

Parquet is read with ``use_threads=False``: with pyarrow 25 a threaded read in a short-lived
process sometimes aborts at interpreter exit (see pipelines/cli/__init__.py for the full story).
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import re
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from pipelines.errors import PipelineError, first_line

if TYPE_CHECKING:
    from pipelines.config import Settings

DATE_RE = re.compile(r"^(\d{4}-\d{2}-\d{2})\.(parquet|csv)$")


def parse_date(value: str) -> date:
    """Parse YYYY-MM-DD or raise a one-line error."""
    try:
        return date.fromisoformat(str(value))
    except ValueError as exc:
        raise PipelineError(f"not a date (expected YYYY-MM-DD): {value!r}") from exc


def partition_files(folder: Path) -> dict[date, Path]:
    """Map each day to its file in a folder of <YYYY-MM-DD>.parquet|csv files (Parquet wins)."""
    found: dict[date, Path] = {}
    if not folder.is_dir():
        return found
    for f in sorted(folder.iterdir()):
        m = DATE_RE.match(f.name)
        if m and f.is_file():
            d = date.fromisoformat(m.group(1))
            if d not in found or f.suffix == ".parquet":
                found[d] = f
    return dict(sorted(found.items()))


PART_GLOB = "part-*.parquet"  # a flush of the online prediction log (pipelines/serving/predlog.py)
COMPACTED_GLOB = "compact-*.parquet"  # a compaction of a closed day's log (pipelines/serving/compact.py)
HOLDS_KEY = b"pipelines.predlog.holds"  # compacted file's metadata: JSON list of the part names it holds
REPLACES_KEY = b"pipelines.predlog.replaces"  # ... and of the compacted files it replaces


def day_parts(folder: Path, day: date) -> list[Path]:
    """The files to read of one day of the online prediction log, ``<folder>/<YYYY-MM-DD>/``:
    its compacted files, then the parts no compacted file holds, each in name order; none when
    there is no folder. Every reader lists a day through this, so none reads a row twice or
    misses one while a compaction runs: a compacted file is renamed into place whole, names in
    its metadata the parts (and older compacted files) it holds, and these are deleted only a
    grace period later (``serve.compact_grace_seconds``), so a reader that listed them can open them."""
    d = folder / day.isoformat()
    if not d.is_dir():
        return []
    compacted = sorted(d.glob(COMPACTED_GLOB))
    covered: set[str] = set()
    for c in compacted:
        covered |= compacted_holds(c)
    return [p for p in [*compacted, *sorted(d.glob(PART_GLOB))] if p.name not in covered]


def compacted_holds(path: Path) -> set[str]:
    """The names a compacted log file holds (its parts and the compacted files it replaces),
    from its Parquet metadata; empty when it is gone (deleted because a newer one, older than
    the grace period and so already listed beside it, holds it all)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        meta = pq.read_schema(path).metadata or {}
    except FileNotFoundError:
        return set()
    except (pa.ArrowException, OSError) as exc:
        raise PipelineError(f"{path} is not a readable Parquet file: {first_line(exc)}") from exc
    return {*json.loads(meta.get(HOLDS_KEY, b"[]")), *json.loads(meta.get(REPLACES_KEY, b"[]"))}


def find_partition(folder: Path, day: date) -> Path | None:
    for suffix in (".parquet", ".csv"):
        p = folder / f"{day.isoformat()}{suffix}"
        if p.is_file():
            return p
    return None


def check_not_quarantined(settings: Settings, day: date) -> None:
    """Raise the one error every command gives for a day whose batch failed validation, when
    ``data/quarantine/<day>/`` exists: where its reasons are and how to bring the day back.
    Callers ask only when the file they need (raw or validated) is missing."""
    qdir = settings.quarantine_dir / day.isoformat()
    if not qdir.is_dir():
        return

    def shown(p: Path) -> str:
        return str(p.relative_to(settings.root)) if p.is_relative_to(settings.root) else str(p)

    names = sorted(f.name for f in qdir.iterdir() if DATE_RE.match(f.name))
    raw = settings.raw_dir / (names[0] if names else f"{day.isoformat()}.parquet")
    raise PipelineError(
        f"batch {day} is quarantined (failed validation): reasons in {shown(qdir / 'validation_result.json')}; "
        f"fix the source and re-deliver {shown(raw)}, then run validate --date {day}"
    )


def read_frame(path: Path, columns: list[str] | None = None) -> pd.DataFrame:
    """Read a Parquet or CSV file (only ``columns``, when given); unreadable files raise a
    one-line PipelineError."""
    if not path.is_file():
        raise PipelineError(f"file not found: {path}")
    if path.stat().st_size == 0:
        raise PipelineError(f"empty file: {path}")
    try:
        if path.suffix == ".parquet":
            return pd.read_parquet(path, columns=columns, use_threads=False)
        if path.suffix == ".csv":
            return pd.read_csv(path, usecols=columns)
    except Exception as exc:  # the reader's own message is what the user needs
        raise PipelineError(f"cannot read {path}: {first_line(exc)}") from exc
    raise PipelineError(f"unsupported file type {path.suffix!r} (use .parquet or .csv): {path}")


STALE_TMP_SECONDS = 3600


def _umask() -> int:
    """The process umask. Read from /proc on Linux: setting it to read it (and setting it back)
    would, for an instant, give files another thread creates meanwhile the wrong mode (the
    online server writes its prediction log from a thread while requests are served)."""
    try:
        status = Path("/proc/self/status").read_bytes()  # bytes: the Name: line may be any bytes
    except OSError:  # no /proc (not Linux): set it and back
        status = b""
    for line in status.splitlines():
        if line.startswith(b"Umask:"):
            return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def remove_stale_tmp(folder: Path, pattern: str) -> int:
    """Remove the hidden temporary files matching ``pattern`` in ``folder`` that are older than
    an hour (left by a process killed mid-write); how many were removed."""
    cutoff = time.time() - STALE_TMP_SECONDS
    removed = 0
    for stale in folder.glob(pattern):
        try:
            if stale.stat().st_mtime < cutoff:
                stale.unlink()
                removed += 1
        except FileNotFoundError:
            continue  # removed meanwhile
    return removed


@contextmanager
def atomic_path(dest: Path, sweep: bool = True) -> Iterator[Path]:
    """Yield a temporary path next to ``dest``; rename it onto ``dest`` only on success.

    A process killed mid-write (SIGKILL skips the cleanup below) leaves its hidden temporary
    file behind; the next write of the same ``dest`` removes those older than an hour. That
    look lists the folder: a writer of many new names in one folder (the prediction log's
    parts) passes ``sweep=False`` and calls :func:`remove_stale_tmp` itself, once.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    if sweep:
        remove_stale_tmp(dest.parent, f".{glob.escape(dest.name)}.*.tmp")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    except OSError as exc:
        raise PipelineError(f"cannot write {dest}: {first_line(exc)}") from exc
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        if tmp_path.exists():  # a writer may delete it to signal "nothing changed"
            os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp makes it 0600; give it what open() would
            os.replace(tmp_path, dest)
    except OSError as exc:  # a full disk, a quota, a read-only mount: one line; dest is untouched
        raise PipelineError(f"cannot write {dest}: {first_line(exc)}") from exc
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


@contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` (created if missing, never deleted) for the block.

    For short critical sections between processes (and threads) of one machine, or containers
    sharing a bind mount. The kernel drops the lock when its holder dies, SIGKILL included, so a
    crashed holder never leaves it stuck. Not for NFS.
    """
    import fcntl

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDONLY | os.O_CREAT, 0o666)  # the umask applies; flock needs no write access
    except OSError as exc:  # a read-only or foreign-owned folder: one line
        raise PipelineError(f"cannot lock {path}: {first_line(exc)}") from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the only descriptor of this open file releases its lock


def write_parquet(df: pd.DataFrame, dest: Path) -> Path:
    """Write a frame atomically; if ``dest`` already holds identical bytes, leave it untouched."""
    with atomic_path(dest) as tmp:
        df.to_parquet(tmp, index=False)
        if dest.is_file() and file_md5(dest) == file_md5(tmp):
            tmp.unlink()  # unchanged: keep the old file (and its mtime) so re-runs are no-ops
    return dest


def write_json(obj: Any, dest: Path) -> Path:
    with atomic_path(dest) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")
    return dest


def write_text(text: str, dest: Path) -> Path:
    with atomic_path(dest) as tmp:
        tmp.write_text(text)
    return dest


def _feed(h: Any, path: Path) -> Any:
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h


def file_digest(path: Path, algorithm: str = "md5") -> str:
    """Hex digest of a file's bytes (md5: the same value DVC records for a file output)."""
    return _feed(hashlib.new(algorithm), path).hexdigest()


def file_md5(path: Path) -> str:
    return file_digest(path, "md5")


def tree_sha256(folder: Path) -> str:
    """A hash of every file under ``folder`` (relative paths and bytes, in a stable order):
    what registration records of a model artifact and the champion store checks."""
    h = hashlib.sha256()
    for f in sorted(p for p in folder.rglob("*") if p.is_file()):
        h.update(f.relative_to(folder).as_posix().encode())
        _feed(h, f)
    return h.hexdigest()


def read_json(path: Path) -> Any:
    if not path.is_file():
        raise PipelineError(f"file not found: {path}")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise PipelineError(f"{path} is not valid JSON: {exc}") from exc
