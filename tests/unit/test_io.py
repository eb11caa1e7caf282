from pathlib import Path

import pandas as pd
import pytest

from pipelines.errors import PipelineError
from pipelines.io import atomic_path, read_frame, write_parquet


def test_atomic_write_leaves_old_file_when_writer_fails(tmp_path: Path) -> None:
    dest = tmp_path / "x.parquet"
    write_parquet(pd.DataFrame({"a": [1]}), dest)
    with pytest.raises(RuntimeError), atomic_path(dest) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("killed")
    assert read_frame(dest)["a"].tolist() == [1]
    assert [p.name for p in tmp_path.iterdir()] == ["x.parquet"]


def test_unreadable_files_are_one_line_errors(tmp_path: Path) -> None:
    (tmp_path / "e.parquet").write_bytes(b"")
    with pytest.raises(PipelineError, match="empty file"):
        read_frame(tmp_path / "e.parquet")
    (tmp_path / "c.parquet").write_bytes(b"garbage")
    with pytest.raises(PipelineError, match="cannot read"):
        read_frame(tmp_path / "c.parquet")
    with pytest.raises(PipelineError, match="unsupported file type"):
        (tmp_path / "d.xlsx").write_bytes(b"x")
        read_frame(tmp_path / "d.xlsx")


def test_temp_files_left_by_a_killed_writer_are_cleaned_on_the_next_write(tmp_path: Path) -> None:
    import os
    import time

    dest = tmp_path / "2026-01-20.parquet"
    stale = tmp_path / ".2026-01-20.parquet.abc123.tmp"  # what SIGKILL mid-write leaves
    fresh = tmp_path / ".2026-01-20.parquet.def456.tmp"  # maybe a writer still at work
    other = tmp_path / ".2026-01-21.parquet.abc123.tmp"  # another day's: not ours to touch
    for p in (stale, fresh, other):
        p.write_bytes(b"half")
    old = time.time() - 2 * 3600
    os.utime(stale, (old, old))
    os.utime(other, (old, old))
    write_parquet(pd.DataFrame({"a": [1]}), dest)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([dest.name, fresh.name, other.name])


def test_atomic_writes_get_the_umask_mode_not_mkstemps_0600(tmp_path: Path) -> None:
    import os
    import stat

    from pipelines.io import write_json

    old = os.umask(0o022)
    try:
        write_json({"a": 1}, tmp_path / "shared.json")
        write_parquet(pd.DataFrame({"a": [1]}), tmp_path / "shared.parquet")
        os.umask(0o077)
        write_json({"a": 1}, tmp_path / "private.json")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "shared.json").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "shared.parquet").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "private.json").stat().st_mode) == 0o600


def test_reading_the_umask_never_sets_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Setting the umask to read it would, for an instant, give a file another thread creates
    (the server's requests, while its prediction log is written) the wrong mode."""
    import os

    from pipelines import io

    old = os.umask(0o027)
    try:
        def refuse(mask: int) -> int:
            raise AssertionError(f"os.umask({mask:o}) called while reading the umask")

        monkeypatch.setattr(io.os, "umask", refuse)
        assert io._umask() == 0o027
    finally:
        monkeypatch.undo()
        os.umask(old)
