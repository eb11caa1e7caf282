"""Live outcomes of a rollout (pipelines/serving/outcomes.py) from a real prediction log: pairs
of the same request by both versions, joined with matured labels, and the server's cache (a
day is read again only when its log grew or its labels changed)."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

from pipelines.serving.outcomes import paired_outcomes
from pipelines.serving.predlog import PredictionLog
from pipelines.serving.sequential import log_loss_terms
from tests.support.clock import after_a_coming_midnight


def log_requests(settings, log: PredictionLog, start: int, n: int) -> None:
    for i in range(start, start + n):
        log.append(f"r{i}", [f"e{i}"], "champion", "m", "1", "run1", np.array([0.2]), 1.0)
        log.append(f"r{i}", [f"e{i}"], "shadow", "m", "2", "run2", np.array([0.7]), 1.0)
    log.flush()


def test_pairs_join_labels_and_a_day_is_read_again_only_when_it_changed(settings) -> None:
    today = after_a_coming_midnight().isoformat()  # the day the log writes the requests into (UTC)
    d = settings.params.data
    log = PredictionLog(settings.online_predictions_dir, d)
    log_requests(settings, log, 0, 10)
    settings.labels_dir.mkdir(parents=True, exist_ok=True)
    labels = settings.labels_dir / f"{today}.parquet"
    pd.DataFrame({d.id_col: [f"e{i}" for i in range(20)], d.target: [1] * 20}).to_parquet(labels, index=False)

    cache: dict = {}
    got = paired_outcomes(settings, "1", "2", cache)
    y = np.ones(10)
    want = log_loss_terms(np.full(10, 0.2), y) - log_loss_terms(np.full(10, 0.7), y)
    assert np.array_equal(got, want) and got.mean() > 0  # the challenger was right more often
    assert paired_outcomes(settings, "1", "2").tolist() == got.tolist()  # no cache: the same answer

    # a cached day is not read again: an unchanged log answers from the cache (proved by a part
    # whose content changed behind its back, which only a re-read would see)
    part = next((settings.online_predictions_dir / today).glob("part-*.parquet"))
    frame = pd.read_parquet(part)
    frame["score"] = 0.5
    frame.to_parquet(part, index=False)
    assert paired_outcomes(settings, "1", "2", cache).tolist() == got.tolist()
    assert len(paired_outcomes(settings, "1", "2")) == 10 and paired_outcomes(settings, "1", "2")[0] != got[0]

    # the log grew: read again (the new pairs and the changed part are in)
    log_requests(settings, log, 10, 5)
    assert len(paired_outcomes(settings, "1", "2", cache)) == 15
    # the labels changed: read again
    pd.DataFrame({d.id_col: [f"e{i}" for i in range(20)], d.target: [0] * 20}).to_parquet(labels, index=False)
    os.utime(labels, ns=(labels.stat().st_atime_ns, labels.stat().st_mtime_ns + 10**9))
    assert (paired_outcomes(settings, "1", "2", cache)[10:] < 0).all()  # label 0: the champion's 0.2 beats 0.7
    # other versions: nothing paired
    assert len(paired_outcomes(settings, "1", "3", cache)) == 0
