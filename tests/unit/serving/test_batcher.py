"""The response path's dynamic batcher (pipelines/serving/batcher.py) on its own: scores come
back to the request they belong to, a model that kills its call (even with a BaseException)
fails only the requests of that call and the scorer lives on, the event loop can await a
request's future directly, and a request never waits on scorers that have stopped (the
shutdown scores what is still queued). The model here is a stand-in that misbehaves on demand;
the real models and the real server are tests/integration/test_serving.py's."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from pipelines.serving.batcher import Batcher
from pipelines.serving.metrics import Metrics
from tests.support.rows import row


class Model:
    """predict_proba = income / 1e6 per row; raises SystemExit on a row with income -1."""

    def predict_proba(self, X):
        if (X["income"] == -1).any():
            raise SystemExit("boom")
        p = X["income"].to_numpy(dtype="float64") / 1e6
        return np.column_stack([1 - p, p])


def started(settings) -> tuple[Batcher, threading.Event, list[threading.Thread]]:
    stop = threading.Event()
    b = Batcher(settings.params.data, 1000, 100, Metrics(), stop)
    threads = [threading.Thread(target=b.loop, daemon=True) for _ in range(2)]
    for t in threads:
        t.start()
    b.running = True
    return b, stop, threads


def test_each_request_gets_its_own_scores_and_a_crash_fails_only_its_own(settings) -> None:
    b, stop, threads = started(settings)
    model = Model()
    try:
        with ThreadPoolExecutor(16) as pool:
            got = list(pool.map(lambda i: b.score(model, [row(settings, i), row(settings, i + 0.5)])[0], range(200)))
        for i, scores in enumerate(got):
            assert scores.tolist() == [i / 1e6, (i + 0.5) / 1e6]
        with pytest.raises(RuntimeError, match="the model raised SystemExit"):
            b.score(model, [row(settings, -1)])

        def mixed(i: int) -> object:  # a crashing request among good ones, batched together
            try:
                return b.score(model, [row(settings, -1 if i == 50 else i)])[0].tolist()
            except RuntimeError as exc:
                return str(exc)

        with ThreadPoolExecutor(16) as pool:
            answers = list(pool.map(mixed, range(100)))
        assert answers[50] == "the model raised SystemExit: boom"
        assert all(a == [i / 1e6] for i, a in enumerate(answers) if i != 50)
        assert all(t.is_alive() for t in threads)  # the scorer lived on
        assert b.score(model, [row(settings, 7)])[0].tolist() == [7 / 1e6]
    finally:
        stop.set()


def test_a_request_never_waits_on_stopped_scorers(settings) -> None:
    b, stop, threads = started(settings)
    stop.set()
    for t in threads:
        t.join(timeout=5)
    # still marked running (the shutdown's window): the request is scored here, not stranded
    scores, _, shared, _ = b.score(Model(), [row(settings, 3)])
    assert scores.tolist() == [3 / 1e6] and shared == 1


def test_the_event_loop_awaits_the_scorers_directly_and_a_crash_reaches_only_its_request(settings) -> None:
    """What the server's handler does (Server.score_request): submit, then await the future."""
    import asyncio

    b, stop, _ = started(settings)
    model = Model()

    async def requests() -> list[object]:
        async def one(i: int) -> object:
            try:
                scores, _, _, _ = await asyncio.wrap_future(b.submit(model, [row(settings, -1 if i == 7 else i)]))
                return scores.tolist()
            except RuntimeError as exc:
                return str(exc)

        return await asyncio.gather(*(one(i) for i in range(40)))

    try:
        answers = asyncio.run(requests())
    finally:
        stop.set()
    assert answers[7] == "the model raised SystemExit: boom"
    assert all(a == [i / 1e6] for i, a in enumerate(answers) if i != 7)


def test_requests_queued_when_the_scorers_stop_are_scored_by_the_shutdown(settings) -> None:
    b, stop, threads = started(settings)
    stop.set()
    for t in threads:
        t.join(timeout=5)
    waiting = [b.submit(Model(), [row(settings, i)]) for i in range(3)]
    crashing = b.submit(Model(), [row(settings, -1)])
    assert not any(f.done() for f in [*waiting, crashing])  # nobody left to score them...
    b.drain()  # ...until the server's shutdown does
    assert [f.result(timeout=0)[0].tolist() for f in waiting] == [[0.0], [1 / 1e6], [2 / 1e6]]
    with pytest.raises(RuntimeError, match="the model raised SystemExit: boom"):
        crashing.result(timeout=0)


def test_a_request_cancelled_while_queued_does_not_fail_the_others_of_its_batch(settings) -> None:
    """The event loop cancels an awaited future when its task is cancelled (a server stopping
    with requests in flight): the scorer leaves that job out, the others get their scores."""
    stop = threading.Event()
    b = Batcher(settings.params.data, 1000, 100, Metrics(), stop)
    model = Model()
    jobs = [b.submit(model, [row(settings, i)]) for i in range(3)]  # queued before any scorer runs
    assert jobs[1].cancel()
    scorer = threading.Thread(target=b.loop, daemon=True)
    scorer.start()
    try:
        assert jobs[0].result(timeout=10)[0].tolist() == [0.0]
        assert jobs[2].result(timeout=10)[0].tolist() == [2 / 1e6]
        assert jobs[1].cancelled()
    finally:
        stop.set()
        scorer.join(timeout=5)


def test_a_bulk_request_does_not_hold_up_the_single_rows_queued_behind_it(settings) -> None:
    """The server's two lanes: while a 65-row request is in its model call (held there by the
    stand-in model), single-row requests are still answered; then the bulk one is. (One queue
    with one scorer thread fails this; the old two threads on one queue passed it too, at the
    cost measured in BENCHMARKS.md.)"""
    import asyncio
    import time

    from pipelines.serving.batcher import BULK_ROWS
    from pipelines.serving.engine import Server
    from pipelines.serving.models import Served, Variant

    release = threading.Event()

    class Held(Model):
        def predict_proba(self, X):
            if len(X) > BULK_ROWS:
                assert release.wait(30), "never released"
            return super().predict_proba(X)

    server = Server(settings)
    server.store.state = Served(champion=Variant("champion", "1", "run", "sha", Held(), {}, time.time()))
    server.start_scorers()

    async def traffic() -> tuple[list[object], list[float]]:
        bulk = asyncio.ensure_future(server.score_request([row(settings, i) for i in range(BULK_ROWS + 1)]))
        await asyncio.sleep(0.2)  # the bulk request is in its call now
        singles = [(await asyncio.wait_for(server.score_request([row(settings, 1000 + i)]), 10))[0]["predictions"]
                   for i in range(5)]
        assert not bulk.done()  # still held, and the singles were answered meanwhile
        release.set()
        body, _, _ = await asyncio.wait_for(bulk, 10)
        return singles, body["predictions"]

    try:
        singles, bulk = asyncio.run(traffic())
    finally:
        release.set()
        server.shutdown()
    assert singles == [[(1000 + i) / 1e6] for i in range(5)]
    assert bulk == [i / 1e6 for i in range(BULK_ROWS + 1)]


def test_a_request_queued_after_the_shutdown_drained_is_still_answered(settings) -> None:
    """The window between a request seeing its lane running (Server.score_request) and
    queueing on it: if the shutdown stops the scorers and drains the lanes in between, the
    request must not wait on a queue no one reads any more."""
    import time

    from pipelines.serving.engine import Server
    from pipelines.serving.models import Served, Variant

    server = Server(settings)
    server.store.state = Served(champion=Variant("champion", "1", "run", "sha", Model(), {}, time.time()))
    server.start_scorers()
    lane = server.requests.lane([row(settings, 1)])
    assert lane.running  # what the request saw
    server.shutdown()  # scorers stopped, lanes drained
    late = lane.submit(Model(), [row(settings, 4)])
    assert late.result(timeout=5)[0].tolist() == [4 / 1e6]
