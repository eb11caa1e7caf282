"""The sequential test on live outcomes, proven by simulation (pipelines/serving/sequential.py).

Each simulated rollout is a stream of outcomes: a default probability p per request (Beta(2, 8),
about the simulated default rate), a 0/1 label drawn from it, and two models' scores = p with
Gaussian noise on the logit. The per-request difference in log loss is what the server collects.
The test is checked after *every* outcome (continuous peeking, the strictest schedule).
"""

from __future__ import annotations

import numpy as np

from pipelines.serving.sequential import decide, first_crossing, log_loss_terms

ALPHA = 0.05
MIN_OUTCOMES = 100
PLANNED = 2000


def rollouts(rng: np.random.Generator, n: int, outcomes: int, champion_noise: float, challenger_noise: float) -> np.ndarray:
    """(n x outcomes) per-request log-loss differences, champion minus challenger."""
    p = rng.beta(2, 8, size=(n, outcomes))
    y = (rng.random((n, outcomes)) < p).astype("float64")
    logit = np.log(p / (1 - p))
    champion = 1 / (1 + np.exp(-(logit + rng.normal(0, champion_noise, (n, outcomes)))))
    challenger = 1 / (1 + np.exp(-(logit + rng.normal(0, challenger_noise, (n, outcomes)))))
    return log_loss_terms(champion, y) - log_loss_terms(challenger, y)


def test_a_a_with_continuous_peeking_keeps_false_promotions_at_or_below_alpha() -> None:
    rng = np.random.default_rng(17)
    promoted = rejected = total = 0
    naive = 0
    for _ in range(4):  # 2,000 rollouts of 2,000 outcomes, in chunks to bound memory
        d = rollouts(rng, 500, 2000, 0.5, 0.5)  # the same model twice: no real difference
        promote, reject = first_crossing(d, ALPHA, MIN_OUTCOMES, PLANNED)
        promoted += int((promote > 0).sum())
        rejected += int((reject > 0).sum())
        total += len(d)
        # what a fixed-sample z-test would do if checked as often: it "finds" a winner far too often
        t = np.arange(1, d.shape[1] + 1)
        mean = np.cumsum(d, axis=1) / t
        sd = np.sqrt(np.maximum(np.cumsum(d * d, axis=1) / t - mean**2, 1e-12))
        z = mean / (sd / np.sqrt(t))
        naive += int(((z > 1.96) & (t >= MIN_OUTCOMES)).any(axis=1).sum())
    assert promoted / total <= ALPHA, f"false promotions {promoted}/{total}"
    assert (promoted + rejected) / total <= ALPHA  # even counting both wrong decisions
    assert naive / total > 2 * ALPHA  # the reason for the confidence sequence: peeking breaks a fixed test


def test_a_stated_improvement_is_detected_within_a_stated_number_of_outcomes() -> None:
    """Challenger logit noise 0.5 against the champion's 1.0: a mean log-loss gain of about 0.05
    nats per request. Promoted within 1,500 outcomes in at least 90 % of rollouts; never rejected."""
    rng = np.random.default_rng(18)
    d = rollouts(rng, 500, 1500, 1.0, 0.5)
    assert 0.04 < d.mean() < 0.07  # the stated size of the improvement
    promote, reject = first_crossing(d, ALPHA, MIN_OUTCOMES, PLANNED)
    assert (promote > 0).mean() >= 0.9
    assert (reject > 0).sum() == 0
    # and a worse challenger is rejected the same way
    promote_w, reject_w = first_crossing(-d, ALPHA, MIN_OUTCOMES, PLANNED)
    assert (reject_w > 0).mean() >= 0.9 and (promote_w > 0).sum() == 0


def test_decide_matches_the_vectorised_form_and_waits_for_min_outcomes() -> None:
    rng = np.random.default_rng(3)
    d = rollouts(rng, 1, 1500, 1.0, 0.5)[0]
    promote, _ = first_crossing(d[None, :], ALPHA, MIN_OUTCOMES, PLANNED)
    t = int(promote[0])
    assert t > 0
    assert decide(d[: t - 1], ALPHA, MIN_OUTCOMES, PLANNED).decision == "continue"
    v = decide(d[:t], ALPHA, MIN_OUTCOMES, PLANNED)
    assert v.decision == "promote" and v.lower > 0 and "promote" in v.text
    few = decide(np.full(MIN_OUTCOMES - 1, 0.5) + rng.normal(0, 0.01, MIN_OUTCOMES - 1), ALPHA, MIN_OUTCOMES, PLANNED)
    assert few.decision == "continue" and few.lower > 0  # clear, but too few outcomes to decide
    assert decide(np.array([]), ALPHA, MIN_OUTCOMES, PLANNED).decision == "continue"
