"""The online prediction log (pipelines/serving/predlog.py): the temporary file of a part that a
killed server was writing is removed by the next server's first write into that day, and a
write does not list the day's folder again (a busy day holds thousands of parts)."""

from __future__ import annotations

import os
import time
from datetime import datetime, timezone

import numpy as np
import pandas as pd

from pipelines.config import Settings
from pipelines.serving.predlog import PredictionLog


def test_a_killed_servers_temporary_part_is_removed_once_per_day(settings: Settings) -> None:
    d = settings.p.data
    day = datetime.now(timezone.utc).date().isoformat()  # the log partitions by the day a request arrived (UTC)
    folder = settings.online_predictions_dir / day
    folder.mkdir(parents=True)
    stale = folder / ".part-1-99-000007.parquet.abc123.tmp"  # what SIGKILL mid-write leaves
    fresh = folder / ".part-2-98-000001.parquet.def456.tmp"  # another server writing it right now
    for p in (stale, fresh):
        p.write_bytes(b"half a part")
    two_hours_ago = time.time() - 7200
    os.utime(stale, (two_hours_ago, two_hours_ago))

    log = PredictionLog(settings.online_predictions_dir, d.id_col, d.timestamp_col)
    log.append("r1", [1], "champion", "m", "3", "run3", np.array([0.25]), 1.0)
    assert log.flush() == 1
    assert not stale.exists() and fresh.exists()  # over an hour old: removed; a live writer's: kept
    parts = sorted(folder.glob("part-*.parquet"))
    assert len(parts) == 1 and pd.read_parquet(parts[0])["score"].tolist() == [0.25]

    later = folder / ".part-3-97-000002.parquet.0a0b0c.tmp"
    later.write_bytes(b"half a part")
    os.utime(later, (two_hours_ago, two_hours_ago))
    log.append("r2", [2], "champion", "m", "3", "run3", np.array([0.75]), 1.0)
    assert log.flush() == 1
    assert later.exists()  # the day was cleared once by this log: its writes no longer list the folder
    assert len(list(folder.glob("part-*.parquet"))) == 2
    # a new server (a new log) clears it at its first write into the day
    log2 = PredictionLog(settings.online_predictions_dir, d.id_col, d.timestamp_col)
    log2.append("r3", [3], "champion", "m", "3", "run3", np.array([0.5]), 1.0)
    assert log2.flush() == 1 and not later.exists()
