"""An always-valid sequential test for promotion on live outcomes (pure functions).

Once labels mature, each request scored by both the champion and the challenger (one serving,
the other off the response path) gives a paired difference of log loss
``d_i = logloss(champion_i) - logloss(challenger_i)``: positive when the challenger was closer
to the truth. We want to know whether the mean of ``d`` is above 0, and we look after every
batch of outcomes. A fixed-sample test checked that often promotes a no-better model far more
often than its alpha; a *confidence sequence* does not: its intervals hold simultaneously for
every sample size, so stopping the first time the interval clears 0 keeps the error <= alpha.

We use the asymptotic confidence sequence of Waudby-Smith, Arbour, Sinha, Kennedy and Ramdas
("Time-uniform central limit theory and asymptotic confidence sequences", 2021): Robbins'
normal mixture boundary with the running standard deviation plugged in,

    mean_t +/- sd_t * sqrt( 2 (t rho^2 + 1) / (t^2 rho^2) * log( sqrt(t rho^2 + 1) / alpha ) )

(two-sided, so each side errs with probability <= alpha / 2). ``rho`` only decides where the
sequence is tightest (``planned`` outcomes), never its validity. The guarantee is asymptotic,
hence ``min_outcomes`` before any decision; tests/unit/serving/test_sequential.py checks the
false-promotion rate by simulation with peeking after every outcome.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

Decision = Literal["promote", "reject", "continue"]
EPS = 1e-6  # scores are clipped to [EPS, 1 - EPS]: one overconfident miss cannot dominate


def log_loss_terms(scores: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Per-row log loss of probabilities ``scores`` against 0/1 ``labels``."""
    p = np.clip(np.asarray(scores, dtype="float64"), EPS, 1 - EPS)
    y = np.asarray(labels, dtype="float64")
    return -(y * np.log(p) + (1 - y) * np.log1p(-p))


def rho_for(planned: int, alpha: float) -> float:
    """The mixture width that makes the boundary tightest near ``planned`` outcomes."""
    a = -2 * math.log(alpha)
    return math.sqrt((a + math.log(a + 1)) / planned)


def radius(t: np.ndarray, sd: np.ndarray, alpha: float, rho: float) -> np.ndarray:
    """Half-width of the two-sided confidence sequence after ``t`` outcomes (vectorised)."""
    t = np.asarray(t, dtype="float64")
    r2t = t * rho * rho + 1.0
    return sd * np.sqrt(2.0 * r2t / (t * t * rho * rho) * np.log(np.sqrt(r2t) / alpha))


@dataclass(frozen=True)
class Verdict:
    decision: Decision
    outcomes: int
    mean_diff: float
    lower: float
    upper: float
    alpha: float

    @property
    def text(self) -> str:
        what = {
            "promote": "the challenger's log loss is lower than the champion's",
            "reject": "the challenger's log loss is higher than the champion's",
            "continue": "no difference proven yet: keep watching",
        }[self.decision]
        return (
            f"{self.decision}: {what} (mean log-loss gain {self.mean_diff:+.5f} on {self.outcomes} outcomes, "
            f"{100 * (1 - self.alpha):.0f}% confidence sequence [{self.lower:+.5f}, {self.upper:+.5f}])"
        )


def decide(diffs: np.ndarray, alpha: float, min_outcomes: int, planned: int) -> Verdict:
    """Promote if the whole confidence sequence for mean(d) is above 0, reject if below, else
    continue. Safe to call after every new batch of outcomes (``diffs`` = all so far)."""
    d = np.asarray(diffs, dtype="float64")
    t = len(d)
    if t == 0:
        return Verdict("continue", 0, 0.0, -math.inf, math.inf, alpha)
    mean = float(d.mean())
    sd = float(d.std(ddof=1)) if t > 1 else math.inf
    r = float(radius(np.array([t]), np.array([sd]), alpha, rho_for(planned, alpha))[0]) if t > 1 else math.inf
    lower, upper = mean - r, mean + r
    decision: Decision = "continue"
    if t >= min_outcomes:
        decision = "promote" if lower > 0 else "reject" if upper < 0 else "continue"
    return Verdict(decision, t, mean, lower, upper, alpha)


def first_crossing(d: np.ndarray, alpha: float, min_outcomes: int, planned: int) -> tuple[np.ndarray, np.ndarray]:
    """For a (rollouts x outcomes) matrix of differences, the first outcome count at which each
    rollout would promote and would reject when checked after every outcome (-1: never).
    The vectorised form of calling :func:`decide` after each outcome, for simulations."""
    d = np.asarray(d, dtype="float64")
    t = np.arange(1, d.shape[1] + 1, dtype="float64")
    s1 = np.cumsum(d, axis=1)
    s2 = np.cumsum(d * d, axis=1)
    mean = s1 / t
    with np.errstate(invalid="ignore", divide="ignore"):
        var = np.where(t > 1, (s2 - t * mean * mean) / np.maximum(t - 1, 1), np.inf)
    sd = np.sqrt(np.maximum(var, 0))
    r = radius(t, sd, alpha, rho_for(planned, alpha))
    ok = t >= min_outcomes
    promote = ((mean - r) > 0) & ok
    reject = ((mean + r) < 0) & ok

    def first(mask: np.ndarray) -> np.ndarray:
        hit = mask.any(axis=1)
        return np.where(hit, mask.argmax(axis=1) + 1, -1)

    return first(promote), first(reject)
