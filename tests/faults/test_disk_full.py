"""A full disk while writing a prediction partition, a validated batch and a drift report (a
real, small tmpfs mounted over the folder), and while DVC fills its cache: one clear error, the
previous file intact, and no partial or hidden file left once the next run succeeds."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.support.project import Project

pytestmark = pytest.mark.integration
DAY = "2026-01-14"


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@contextmanager
def full_disk(folder: Path, free_bytes: int = 2048) -> Iterator[None]:
    """Mount a small tmpfs over ``folder`` (keeping its files) and fill it up to ``free_bytes``."""
    if shutil.which("mount") is None:
        pytest.skip("no mount command: cannot make a real full disk here")
    keep = folder.with_name(folder.name + ".keep")
    shutil.copytree(folder, keep)
    size = sum(p.stat().st_size for p in keep.rglob("*") if p.is_file()) + 64 * 1024
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], capture_output=True, text=True)
    if mounted.returncode != 0:
        shutil.rmtree(keep)
        pytest.skip(f"cannot mount a small tmpfs here (needs root): {mounted.stderr.strip()}")
    try:
        shutil.copytree(keep, folder, dirs_exist_ok=True)
        stat = shutil.disk_usage(folder)
        (folder / "filler").write_bytes(b"\0" * max(stat.free - free_bytes, 0))
        yield
    finally:
        subprocess.run(["umount", str(folder)], check=True)
        shutil.rmtree(keep)


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*") if p.name.startswith(".") or p.name.endswith(".tmp"))


@pytest.fixture(scope="module")
def proj(trained: Project) -> Project:
    trained.cli("score", "--date", DAY)
    trained.cli("drift", "--date", DAY)
    return trained


@pytest.mark.parametrize(
    "what, folder, command, output",
    [
        ("prediction partition", "data/predictions", ["score", "--date", DAY], f"{DAY}.parquet"),
        ("validated batch", "data/validated", ["validate", "--date", DAY], f"{DAY}.parquet"),
        ("drift report", "data/reports/drift", ["drift", "--date", DAY], f"{DAY}.html"),
    ],
)
def test_a_full_disk_is_one_line_and_loses_nothing(
    proj: Project, what: str, folder: str, command: list[str], output: str, record
) -> None:
    target = proj.root / folder
    before = digest(target / output)
    with full_disk(target):
        res = proj.cli(*command, ok=False)
        lines = res.stderr.strip().splitlines()
        assert res.returncode == 1, res.stderr[-2000:]
        assert lines[-1].startswith("error: cannot write") and "No space left on device" in lines[-1], res.stderr[-2000:]
        assert "Traceback" not in res.stderr
        assert digest(target / output) == before, f"the previous {what} changed"
        assert not leftovers(target), leftovers(target)
    assert not (proj.root / "data" / "quarantine" / DAY).exists(), "a full disk is not a failed validation"
    proj.cli(*command)  # space again: the same command succeeds and leaves nothing behind
    assert not leftovers(target) and (target / output).is_file()
    record(
        f"disk full writing a {what} (tmpfs)",
        1,
        "one line `cannot write ...: No space left on device`; previous file byte-identical; the next run succeeds",
        "nothing",
    )


def test_a_full_dvc_cache_fails_clearly_and_recovers(proj: Project, record) -> None:
    cache = proj.root / ".dvc" / "cache"
    proj.set_param("train.seed", 7)
    with full_disk(cache, free_bytes=1024):
        res = proj.run(sys.executable, "-m", "dvc", "repro", ok=False)
        assert res.returncode != 0
        assert "No space left on device" in res.stdout + res.stderr, (res.stdout + res.stderr)[-2000:]
    ok = proj.run(sys.executable, "-m", "dvc", "repro")
    status = proj.run(sys.executable, "-m", "dvc", "status")
    assert "up to date" in status.stdout, status.stdout + ok.stdout[-1000:]
    record(
        "disk full in the DVC cache during `dvc repro` (tmpfs)",
        1,
        "DVC fails naming ENOSPC; the next `dvc repro` completes and `dvc status` is clean",
        "nothing",
    )
