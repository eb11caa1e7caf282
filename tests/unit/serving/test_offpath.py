"""Off-path scoring in its own process (pipelines/serving/offpath.py), with a real child process:
scores come back to the request they belong to, a model that raises fails only the request
that made it raise, a model that kills the child (or hangs) fails only that batch and the next
batch gets a new child, and a model that cannot be sent is refused without killing anything.
The models are stand-ins that misbehave on demand (the real ones: tests/integration/test_serving.py)."""

from __future__ import annotations

import os
import threading
import time

import numpy as np
import pytest

from pipelines.serving.offpath import OffpathScorer, OffpathUnavailable, score_jobs
from tests.support.rows import row


class Model:
    """predict_proba = income / 1e6; raises on income -1, kills its process on -2, sleeps on -3."""

    def predict_proba(self, X):
        income = X["income"].to_numpy(dtype="float64")
        if (income == -1).any():
            raise ValueError("income -1 is not allowed")
        if (income == -2).any():
            os._exit(9)
        if (income == -3).any():
            time.sleep(30)
        p = income / 1e6
        return np.column_stack([1 - p, p])


class Unpicklable(Model):
    def __init__(self) -> None:
        self.lock = threading.Lock()


@pytest.fixture
def scorer(settings):
    """A scorer over a real child process, closed (the child ended) after the test."""
    s = OffpathScorer(settings.params.data, 1000, 1)
    yield s
    s.close()


def test_scores_come_back_to_their_request_and_equal_scoring_in_process(settings, scorer: OffpathScorer) -> None:
    d = settings.params.data
    jobs = [[row(settings, i), row(settings, i + 0.5)] for i in range(50)]
    got = scorer.score("m", Model(), jobs)
    here = score_jobs(Model(), jobs, d, 1000)
    assert [g[0].tolist() for g in got] == [h[0].tolist() for h in here] == [[i / 1e6, (i + 0.5) / 1e6] for i in range(50)]
    assert len({g[1] for g in got}) == 1 and all(g[2] is None and g[3] == 50 for g in got)  # one call scored them all
    assert scorer.proc.pid != os.getpid() and scorer.starts == 1


def test_a_raising_model_fails_only_the_request_that_made_it_raise(settings, scorer: OffpathScorer) -> None:
    got = scorer.score("m", Model(), [[row(settings, 1)], [row(settings, -1)], [row(settings, 3)]])
    assert got[0][0].tolist() == [1e-6] and got[2][0].tolist() == [3e-6]
    assert got[1][0] is None and "income -1 is not allowed" in got[1][2]
    assert scorer.starts == 1  # the child lived on


def test_a_dead_or_hung_child_is_blamed_on_its_request_and_replaced(settings, scorer: OffpathScorer) -> None:
    # the child dies on a batch: a new one scores each request alone, so only the killer fails
    got = scorer.score("m", Model(), [[row(settings, 1)], [row(settings, -2)], [row(settings, 3)]])
    assert got[0][0].tolist() == [1e-6] and got[2][0].tolist() == [3e-6]
    assert got[1][0] is None and "off-path scorer process failed" in got[1][2]
    assert scorer.starts == 3  # the first child, one for the requests alone until the killer, one after it
    assert scorer.score("m", Model(), [[row(settings, 2)]])[0][0].tolist() == [2e-6]
    assert scorer.starts == 3
    hung = scorer.proc
    scorer.timeout_s = 3  # the child is warm now: only the model's call can take this long
    got = scorer.score("m", Model(), [[row(settings, -3)]])
    assert got[0][0] is None and "no answer in 3 s" in got[0][2]
    assert not hung.is_alive()  # killed, not left behind
    scorer.timeout_s = 60  # the next call starts a new child: its start is not the model's time
    assert scorer.score("m", Model(), [[row(settings, 4)]])[0][0].tolist() == [4e-6]
    assert scorer.starts == 4


def test_a_model_that_cannot_be_sent_is_refused_and_the_child_lives_on(settings, scorer: OffpathScorer) -> None:
    got = scorer.score("bad", Unpicklable(), [[row(settings, 1)]])
    assert got[0][0] is None and "cannot load this model" in got[0][2]
    assert scorer.score("m", Model(), [[row(settings, 5)]])[0][0].tolist() == [5e-6]
    assert scorer.starts == 1


def _score_in(q, data, r) -> None:
    scorer = OffpathScorer(data, 1000, 1)
    said = []
    for _ in range(2):
        try:
            scorer.score("m", Model(), [[r]])
            said.append(None)
        except OffpathUnavailable as exc:
            said.append(str(exc))
    q.put([*said, scorer.starts])


def test_a_child_that_cannot_start_is_unavailable_not_a_model_error_and_not_retried_at_once(settings) -> None:
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=_score_in, args=(q, settings.params.data, row(settings, 1)), daemon=True)
    p.start()
    why, again, starts = q.get(timeout=120)
    p.join(timeout=30)
    assert why.startswith("cannot start the off-path scorer process") and "daemonic" in why
    assert again == why and starts == 0
