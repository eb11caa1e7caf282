"""The online prediction log (pipelines/serving/predlog.py): the temporary file of a part that a
killed server was writing is removed by a later server's sweep (of the day it writes and the day
before), and a write does not list the day's folder again within the hour (a busy day holds
thousands of parts)."""

from __future__ import annotations

import os
import time
from datetime import timedelta

import numpy as np
import pandas as pd

from pipelines.config import Settings
from pipelines.serving.predlog import PredictionLog
from tests.support.clock import after_a_coming_midnight


def test_a_killed_servers_temporary_part_is_swept_at_most_once_an_hour(settings: Settings) -> None:
    today = after_a_coming_midnight()  # the log partitions by the day a request arrived (UTC)
    d = settings.params.data
    folder = settings.online_predictions_dir / today.isoformat()
    yesterday = settings.online_predictions_dir / (today - timedelta(days=1)).isoformat()
    folder.mkdir(parents=True)
    yesterday.mkdir()
    stale = folder / ".part-1-99-000007.parquet.abc123.tmp"  # what SIGKILL mid-write leaves
    fresh = folder / ".part-2-98-000001.parquet.def456.tmp"  # another server writing it right now
    stale_yesterday = yesterday / ".part-0-99-000006.parquet.fed987.tmp"  # killed just before midnight
    for p in (stale, fresh, stale_yesterday):
        p.write_bytes(b"half a part")
    two_hours_ago = time.time() - 7200
    for p in (stale, stale_yesterday):
        os.utime(p, (two_hours_ago, two_hours_ago))

    log = PredictionLog(settings.online_predictions_dir, d.id_col, d.timestamp_col)
    log.append("r1", [1], "champion", "m", "3", "run3", np.array([0.25]), 1.0)
    assert log.flush() == 1
    assert not stale.exists() and not stale_yesterday.exists()  # over an hour old: removed
    assert fresh.exists()  # a live writer's: kept
    parts = sorted(folder.glob("part-*.parquet"))
    assert len(parts) == 1 and pd.read_parquet(parts[0])["score"].tolist() == [0.25]

    later = folder / ".part-3-97-000002.parquet.0a0b0c.tmp"
    later.write_bytes(b"half a part")
    os.utime(later, (two_hours_ago, two_hours_ago))
    log.append("r2", [2], "champion", "m", "3", "run3", np.array([0.75]), 1.0)
    assert log.flush() == 1
    assert later.exists()  # swept by this log within the hour: its writes do not list the folder again
    assert len(list(folder.glob("part-*.parquet"))) == 2
    # a new server (a new log) sweeps at its first write
    log2 = PredictionLog(settings.online_predictions_dir, d.id_col, d.timestamp_col)
    log2.append("r3", [3], "champion", "m", "3", "run3", np.array([0.5]), 1.0)
    assert log2.flush() == 1 and not later.exists()
