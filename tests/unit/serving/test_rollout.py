"""The rollout's stage machine and guardrails, and request parsing, on tiny inputs (no server)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from pipelines.config import ServeParams, load_settings
from pipelines.serving.payload import BadRequest, invocation_rows, load_json, rows_to_frame
from pipelines.serving.rollout import Rollout, bucket, score_psi

REPO = Path(__file__).resolve().parents[3]


def params(**kw: object) -> ServeParams:
    base = {"bake_seconds": 10, "min_requests": 5, "max_error_rate": 0.1, "p99_slo_ms": 50, "psi_min_pairs": 50}
    return ServeParams(**{**base, **kw})


def feed(r: Rollout, n: int, ok: bool = True, ms: float = 1.0) -> None:
    for _ in range(n):
        r.observe("challenger", r.version or "", ok, ms)
        r.observe("champion", "1", True, 1.0)


def test_stages_advance_only_after_bake_time_and_requests_then_complete() -> None:
    r = Rollout(params())
    r.start("2", now=0)
    assert r.stage == "shadow" and r.share == 0
    feed(r, 10)
    assert r.check(now=5) is None  # enough requests, not baked yet
    assert r.check(now=11)["action"] == "advance" and r.share == 5
    assert r.check(now=30) is None  # a new stage counts its own requests
    shares = []
    for step in range(4):
        feed(r, 5)
        rec = r.check(now=100 + 20 * step)
        shares.append(r.share)
    assert shares == [25, 50, 100, 100] and rec["action"] == "complete" and r.stage == "complete"


def test_a_breach_rejects_and_sets_the_canary_to_zero() -> None:
    r = Rollout(params(bake_seconds=0))
    r.start("2", now=0)
    feed(r, 5)
    r.check(now=1)
    assert r.share == 5
    feed(r, 8)
    feed(r, 2, ok=False)  # 2 of 10 failed: 20 % > 10 %
    rec = r.check(now=2)
    assert rec["action"] == "reject" and "error rate 20.0%" in rec["reason"]
    assert r.share == 0 and r.stage == "rejected" and not r.routes_to_challenger("anyone")
    assert r.check(now=3) is None  # a rejected rollout stays rejected


def test_latency_and_prediction_shift_guardrails() -> None:
    slow = Rollout(params(bake_seconds=0))
    slow.start("2", now=0)
    feed(slow, 3, ms=500)
    assert slow.check(now=1) is None  # too few calls to judge a p99: carried to the next window
    feed(slow, 3, ms=500)
    assert "p99 latency 500.0 ms" in slow.check(now=2)["reason"]
    busy = Rollout(params(bake_seconds=1000))  # everyone is slow: the machine, not the challenger
    busy.start("5", now=0)
    for _ in range(10):
        busy.observe("challenger", "5", True, 500)
        busy.observe("champion", "1", True, 450)
    assert busy.check(now=1) is None
    shifted = Rollout(params(bake_seconds=1000))
    shifted.start("3", now=0)
    rng = np.random.default_rng(0)
    champ = rng.beta(2, 8, 200)
    shifted.observe_pair("3", champ, champ**0.3)
    assert "prediction PSI" in shifted.check(now=1)["reason"]
    same = Rollout(params(bake_seconds=1000))
    same.start("4", now=0)
    same.observe_pair("4", champ, champ)
    same.observe_pair("other version", champ, champ**0.3)  # another challenger's scores are ignored
    assert same.check(now=1) is None and score_psi(champ, champ) == 0


def test_extreme_and_non_finite_scores_of_the_challenger_breach_the_guardrail() -> None:
    rng = np.random.default_rng(1)
    champ = rng.beta(2, 8, 400)
    zeros = Rollout(params(bake_seconds=1000))
    zeros.start("3", now=0)
    zeros.observe_pair("3", champ, np.where(np.arange(400) % 50 == 0, 0.0, champ))  # 2 % answered 0.0
    assert "extreme or non-finite scores (below 0.0001 or above 1 - 0.0001) on 2.00% of 400" in zeros.check(now=1)["reason"]
    nan = Rollout(params(bake_seconds=1000))
    nan.start("4", now=0)
    nan.observe_pair("4", champ, np.where(np.arange(400) % 40 == 0, np.nan, champ))
    assert "on 2.50% of 400" in nan.check(now=1)["reason"]
    few = Rollout(params(bake_seconds=1000))  # 1 in 400, and the champion's own are no breach
    few.start("5", now=0)
    both = np.where(np.arange(400) % 40 == 0, 1.0, champ)
    few.observe_pair("5", both, np.where(np.arange(400) == 1, np.nan, both))
    assert few.check(now=1) is None


def test_operator_actions_and_sticky_buckets() -> None:
    r = Rollout(params(bake_seconds=0))
    r.start("2", now=0)
    assert r.act("pause", now=1)["action"] == "pause"
    feed(r, 10)
    assert r.check(now=2) is None  # paused: no advance
    assert r.act("advance", now=3)["stage"] == "canary"
    r.act("resume", now=4)
    assert r.act("abort", now=5, reason="bad smell")["reason"] == "aborted by an operator: bad smell"
    with pytest.raises(ValueError, match="no rollout in progress"):
        r.act("advance", now=6)
    ids = [str(i) for i in range(2000)]
    at5 = {i for i in ids if bucket(i, "v2") < 5}
    at25 = {i for i in ids if bucket(i, "v2") < 25}
    assert at5 < at25 and 50 < len(at5) < 150 and 400 < len(at25) < 600  # sticky and about the share


def test_payload_formats_give_the_same_rows_and_bad_ones_name_the_field() -> None:
    d = load_settings(REPO / "params.yaml").params.data
    row = dict.fromkeys(d.numerical, 1.0) | dict.fromkeys(d.categorical, "x")
    cols = list(row)
    forms = [
        {"dataframe_records": [row, row]},
        {"dataframe_split": {"columns": cols, "data": [[row[c] for c in cols]] * 2}},
        {"inputs": {c: [row[c], row[c]] for c in cols}},
        {"instances": [row, row]},
    ]
    frames = [rows_to_frame(invocation_rows(f), d, 10) for f in forms]
    for f in frames[1:]:
        assert f.equals(frames[0])
    with pytest.raises(BadRequest, match="empty body") as e:
        load_json(b"  ", 10)
    assert e.value.status == 400
    with pytest.raises(BadRequest, match="max_batch_rows") as e:
        rows_to_frame([row] * 11, d, 10)
    assert e.value.status == 413
    with pytest.raises(BadRequest, match=f"'{d.numerical[0]}' must be a number"):
        rows_to_frame([{**row, d.numerical[0]: "1"}], d, 10)
    with pytest.raises(BadRequest, match=f"missing feature '{d.categorical[0]}'"):
        rows_to_frame([{k: v for k, v in row.items() if k != d.categorical[0]}], d, 10)
    with pytest.raises(BadRequest, match="exactly one of"):
        invocation_rows(json.loads('{"dataframe_records": [], "inputs": []}'))
    nulls = rows_to_frame([{**row, d.numerical[0]: None}], d, 10)
    assert np.isnan(nulls[d.numerical[0]].iloc[0])  # null is missing, as the model handles it
