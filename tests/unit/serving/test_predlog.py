"""The online prediction log (pipelines/serving/predlog.py): the temporary file of a part that a
killed server was writing is removed by a later server's sweep (of the day it writes and the day
before), and a write does not list the day's folder again within the hour (a busy day holds
thousands of parts); the server logs each answered row's model inputs beside its score."""

from __future__ import annotations

import os
import time
from datetime import timedelta

import numpy as np
import pandas as pd
import pytest

from pipelines.config import Settings
from pipelines.errors import PipelineError
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

    log = PredictionLog(settings.online_predictions_dir, d)
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
    log2 = PredictionLog(settings.online_predictions_dir, d)
    log2.append("r3", [3], "champion", "m", "3", "run3", np.array([0.5]), 1.0)
    assert log2.flush() == 1 and not later.exists()


class Income:
    """A stand-in model: predict_proba = income / 1e6 per row; its first call takes 0.3 s, so
    the requests sent meanwhile queue up and are scored together."""

    def __init__(self) -> None:
        self.calls = 0

    def predict_proba(self, X):
        self.calls += 1
        if self.calls == 1:
            import time

            time.sleep(0.3)
        p = X["income"].to_numpy(dtype="float64") / 1e6
        return np.column_stack([1 - p, p])


def test_the_server_logs_each_answered_rows_inputs_from_the_frame_it_scored(settings: Settings) -> None:
    """The drift job checks a day served only online from the log: each served row carries the
    model's features as the request sent them (nulls as nulls), whether its request was scored
    alone or batched with others; an off-path row (a shadow's) carries nulls, and every part has
    the same schema."""
    import asyncio
    import time

    import pyarrow.parquet as pq

    from pipelines.serving.engine import Server
    from pipelines.serving.models import Served, Variant
    from tests.support.rows import row

    d = settings.params.data
    today = after_a_coming_midnight(60)
    server = Server(settings)
    model = Income()
    server.store.state = Served(champion=Variant("champion", "1", "run1", "sha", model, {}, time.time()))
    server.start_scorers()

    def request(i: int, n: int) -> list[dict]:
        rows = [{**row(settings, 1000 * i + k), d.id_col: f"e{i}-{k}"} for k in range(n)]
        rows[0][d.numerical[0]] = None  # JSON null
        rows[-1][d.categorical[0]] = None
        rows[-1]["age"] = 30.5 + i
        return rows

    sent = {i: request(i, n) for i, n in enumerate([1, 3, 2, 70, 1, 5, 4])}  # 70 rows: the bulk lane

    async def traffic() -> None:
        await asyncio.gather(*(server.score_request(rows) for rows in sent.values()))  # batched together

    try:
        asyncio.run(traffic())
        server.predlog.flush()
        server.predlog.append("off", ["e0-0"], "shadow", "m", "2", "run2", np.array([0.5]), 1.0)  # no inputs
    finally:
        server.shutdown()  # flushes the shadow row: a part of its own
    parts = sorted((settings.online_predictions_dir / today.isoformat()).glob("part-*.parquet"))
    assert model.calls < len(sent)  # some requests shared a frame: their rows start inside it
    assert len(parts) == 2 and pq.read_schema(parts[0]) == pq.read_schema(parts[1])
    logged = pd.concat([pd.read_parquet(p) for p in parts], ignore_index=True)
    served = logged[logged["variant"] == "champion"].set_index(d.id_col)
    want = pd.DataFrame([r for rows in sent.values() for r in rows]).set_index(d.id_col)
    assert len(served) == len(want) and served["request_id"].nunique() == len(sent)
    got = served.loc[want.index]
    for c in d.numerical:
        assert got[c].dtype == "float64"
        assert np.array_equal(got[c].to_numpy(), want[c].to_numpy(dtype="float64"), equal_nan=True), c
    for c in d.categorical:
        assert got[c].tolist() == want[c].tolist(), c
    assert got["score"].tolist() == [x / 1e6 for x in want["income"]]
    shadow = logged[logged["variant"] == "shadow"]
    assert len(shadow) == 1 and shadow[d.features].isna().all(axis=None)
    clash = d.model_copy(update={"numerical": [*d.numerical, "score"]})  # a feature named as a log column
    with pytest.raises(PipelineError, match="feature 'score' has the name of a prediction log column"):
        PredictionLog(settings.online_predictions_dir, clash)
