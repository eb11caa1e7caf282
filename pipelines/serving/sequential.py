"""An always-valid sequential test for promotion on live outcomes (pure functions).

Once labels mature, each entity scored by both the champion and the challenger gives one paired
difference of log loss ``d = logloss(champion) - logloss(challenger)`` (the mean over the
entity's requests that share one label: :mod:`pipelines.serving.outcomes`), positive when the
challenger was closer to the truth. We want to know whether the mean of ``d`` is above 0, and we
look after every batch of outcomes, so the test must hold however often it is looked at.

The test is a *bet* against "the challenger is no better" (Waudby-Smith and Ramdas, "Estimating
means of bounded random variables by betting", JRSS-B 2023). Scores are clipped to
``[EPS, 1 - EPS]``, so one row's log loss is at most ``LOSS_BOUND = -log(EPS)`` and every
difference lies in ``[-LOSS_BOUND, LOSS_BOUND]``. A bettor starts with capital 1 and stakes a
fraction ``lam_t`` of it on each outcome: ``K_t = prod (1 + lam_i d_i)``, with ``lam_i`` chosen
from the outcomes *before* ``i`` (the running mean over the running second moment, "aGRAPA")
and kept in ``[0, BET_CAP / LOSS_BOUND]`` so that no outcome can take the capital to 0. If the
challenger is not better (the mean of each ``d`` given the past is <= 0), ``K`` is a
nonnegative supermartingale, and Ville's inequality gives ``P(K ever reaches 1/alpha) <= alpha``:
**promote when K_t >= 1/alpha**, and the false-promotion rate is at most ``alpha`` at any peeking
schedule, any stopping time, and for *any* distribution of the differences: no normal
approximation, so heavy tails and skew (a challenger that answers 0.0 now and then) cannot
break it. A second bettor on ``-d`` rejects a challenger shown to be worse, at the same level.
Neither needs a warm-up for validity; ``min_outcomes`` only keeps a decision off a handful.

A rollout that shows nothing after ``max_outcomes`` outcomes ends: the challenger is not shown
better, the champion stays (``stop``). bench/sequential_bench.py measures the false promotions
of the A/A cases and the outcomes a real gain needs (BENCHMARKS.md); tests/unit/serving/
test_sequential.py checks them in the suite.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

Decision = Literal["promote", "reject", "stop", "continue"]
EPS = 1e-6  # scores are clipped to [EPS, 1 - EPS]: a row's log loss is at most -log(EPS)
LOSS_BOUND = -math.log(EPS)  # 13.8155...: every paired difference lies within +/- this
BET_CAP = 0.9  # the largest stake, as a share of what the worst outcome could take: 1 + lam d >= 0.1


def log_loss_terms(scores: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Per-row log loss of probabilities ``scores`` against 0/1 ``labels``."""
    p = np.clip(np.asarray(scores, dtype="float64"), EPS, 1 - EPS)
    y = np.asarray(labels, dtype="float64")
    return -(y * np.log(p) + (1 - y) * np.log1p(-p))


def bets(d: np.ndarray) -> np.ndarray:
    """The stake on each outcome of each row of ``d`` (rollouts x outcomes), from the outcomes
    before it only: ``mean / (var + mean^2)`` of the past (one prior outcome of 0 with variance
    1 steadies the first bets), clipped to ``[0, BET_CAP / LOSS_BOUND]``."""
    d = np.atleast_2d(np.asarray(d, dtype="float64"))
    zeros = np.zeros((d.shape[0], 1))
    s1 = np.concatenate([zeros, np.cumsum(d, axis=1)[:, :-1]], axis=1)
    s2 = np.concatenate([zeros, np.cumsum(d * d, axis=1)[:, :-1]], axis=1)
    k = np.arange(d.shape[1], dtype="float64")  # outcomes seen before each one
    mean = s1 / (k + 1)
    second = (1.0 + s2) / (k + 1)  # var + mean^2, with the prior outcome
    return np.clip(mean / second, 0.0, BET_CAP / LOSS_BOUND)


def log_capital(d: np.ndarray) -> np.ndarray:
    """log K_t after each outcome of a bettor that the mean of ``d`` is above 0 (rows: rollouts)."""
    d = np.clip(np.atleast_2d(np.asarray(d, dtype="float64")), -LOSS_BOUND, LOSS_BOUND)
    return np.cumsum(np.log1p(bets(d) * d), axis=1)


def first_crossing(d: np.ndarray, alpha: float, min_outcomes: int) -> tuple[np.ndarray, np.ndarray]:
    """For a (rollouts x outcomes) matrix of differences, the first outcome count at which each
    rollout's evidence would promote and would reject when checked after every outcome
    (-1: never). The vectorised form of :func:`decide`, for simulations."""
    d = np.atleast_2d(np.asarray(d, dtype="float64"))
    threshold = math.log(1 / alpha)
    ok = np.arange(1, d.shape[1] + 1) >= min_outcomes

    def first(mask: np.ndarray) -> np.ndarray:
        hit = mask.any(axis=1)
        return np.where(hit, mask.argmax(axis=1) + 1, -1)

    return first((log_capital(d) >= threshold) & ok), first((log_capital(-d) >= threshold) & ok)


def outcome_of(promote_at: np.ndarray, reject_at: np.ndarray, max_outcomes: int) -> tuple[np.ndarray, np.ndarray]:
    """The decision each rollout ends with (``1`` promote, ``-1`` reject, ``0`` stop at the
    horizon or still running) and the outcome count it ends at, from :func:`first_crossing`."""
    big = np.iinfo(np.int64).max
    p = np.where((promote_at > 0) & (promote_at <= max_outcomes), promote_at, big)
    r = np.where((reject_at > 0) & (reject_at <= max_outcomes), reject_at, big)
    code = np.where(p < r, 1, np.where(r < p, -1, 0))
    return code, np.where(code == 1, p, np.where(code == -1, r, max_outcomes))


@dataclass(frozen=True)
class Verdict:
    decision: Decision
    outcomes: int  # outcomes judged (at most max_outcomes)
    at: int  # the outcome count the decision was reached at (0: none yet)
    mean_diff: float
    evidence_for: float  # the promotion bettor's capital (promote at 1 / alpha)
    evidence_against: float  # the rejection bettor's capital (reject at 1 / alpha)
    alpha: float
    max_outcomes: int

    @property
    def text(self) -> str:
        what = {
            "promote": "the challenger's log loss is lower than the champion's",
            "reject": "the challenger's log loss is higher than the champion's",
            "stop": f"no difference shown within serve.max_outcomes {self.max_outcomes} outcomes: the champion stays",
            "continue": "no difference shown yet: keep watching",
        }[self.decision]
        where = f" at outcome {self.at}" if self.at else ""
        return (
            f"{self.decision}: {what} (mean log-loss gain {self.mean_diff:+.5f} on {self.outcomes} outcomes; "
            f"evidence for {self.evidence_for:.3g}, against {self.evidence_against:.3g}{where}; "
            f"a side decides at 1/alpha = {1 / self.alpha:.3g})"
        )


def decide(diffs: np.ndarray, alpha: float, min_outcomes: int, max_outcomes: int) -> Verdict:
    """Promote when the promotion bettor's capital has reached ``1/alpha`` (false promotion
    <= alpha), reject when the rejection bettor's has, stop when ``max_outcomes`` outcomes showed
    neither, else continue. ``diffs`` are all outcomes so far, oldest first; the first crossing
    counts, so calling after every batch equals checking after every outcome."""
    d = np.asarray(diffs, dtype="float64")[:max_outcomes]
    t = len(d)
    if t == 0:
        return Verdict("continue", 0, 0, 0.0, 1.0, 1.0, alpha, max_outcomes)
    promote_at, reject_at = first_crossing(d[None, :], alpha, min_outcomes)
    code, at = outcome_of(promote_at, reject_at, max_outcomes)
    decision: Decision = {1: "promote", -1: "reject", 0: "stop"}[int(code[0])]
    if decision == "stop" and t < max_outcomes:
        decision = "continue"
    end = int(at[0]) if decision in ("promote", "reject") else t
    k_for = float(np.exp(log_capital(d[:end])[0, -1]))
    k_against = float(np.exp(log_capital(-d[:end])[0, -1]))
    at_ = end if decision != "continue" else 0
    return Verdict(decision, t, at_, float(d[:end].mean()), k_for, k_against, alpha, max_outcomes)


def extreme_count(scores: np.ndarray, extreme: float) -> int:
    """Scores below ``extreme``, above ``1 - extreme``, or not finite."""
    s = np.asarray(scores, dtype="float64")
    return int((~np.isfinite(s) | (s < extreme) | (s > 1 - extreme)).sum())
