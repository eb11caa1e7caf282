"""`make backfill` (scripts/backfill.sh) refuses an Airflow whose metadata database is SQLite, in
one line pointing to the docs: Airflow's backfill creation and its pause/unpause fail there with
"database is locked" while the scheduler runs. (tests/integration/test_replay_airflow.py
backfills through it on PostgreSQL.)"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def backfill(tmp_path: Path, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "PIPELINES_"))},
        "VENV": str(Path(sys.executable).parent.parent),
        "AIRFLOW_HOME": str(tmp_path / "airflow-home"),
        **extra,
    }
    return subprocess.run([str(REPO / "scripts/backfill.sh"), *args], env=env, capture_output=True, text=True, timeout=120)


def test_a_backfill_on_sqlite_is_refused_in_one_line(tmp_path: Path) -> None:
    out = backfill(tmp_path, "scoring", "2026-01-10", "2026-01-12", '{"scenario": "feature_drift"}')
    assert out.returncode == 2 and out.stdout == "", out
    [line] = out.stderr.splitlines()
    assert line.startswith("backfill refused: Airflow's metadata database is SQLite"), line
    assert "run Airflow on PostgreSQL" in line and line.endswith("see docs/operations/airflow.md#backfills"), line
    assert "## Backfills" in (REPO / "docs/operations/airflow.md").read_text().splitlines()
    assert not (tmp_path / "airflow-home" / "airflow.db").exists(), "the refusal touched the database"


def test_a_sqlite_database_set_in_the_environment_is_refused_too(tmp_path: Path) -> None:
    conn = f"sqlite:///{tmp_path / 'other.db'}"
    out = backfill(tmp_path, "scoring", "2026-01-10", "2026-01-12", AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=conn)
    assert out.returncode == 2 and out.stderr.startswith("backfill refused:"), out


def test_the_usage_line_when_a_day_is_missing(tmp_path: Path) -> None:
    out = backfill(tmp_path, "scoring", "2026-01-10", "")
    assert out.returncode == 2 and out.stderr.startswith("usage:") and len(out.stderr.splitlines()) == 1, out
