"""False promotions and power of the sequential test on live outcomes, by simulation.

    .venv/bin/python bench/sequential_bench.py [--rollouts 10000] [--calibrate]

Every simulated rollout is a stream of entities at a default rate of about 0.2: a probability
p ~ Beta(2, 8), a 0/1 label drawn from it, and each model's score = p with Gaussian noise on the
logit (or a transform of it). The test is checked after *every* outcome, up to the product's
horizon (serve.max_outcomes), with the product's settings (params.yaml). The A/A cases have equal
expected log loss (clipped at 1e-6, as the product computes it), so any promotion is false:

- ``identical``: the same model twice (logit noise 0.5 each);
- ``overconfident``: a challenger with no noise but an overconfident logit (x ``SHARP``) against
  a noisy calibrated champion (noise 1.0);
- ``zeros 2.3 %`` / ``zeros 1 %``: a challenger that answers exactly 0.0 on that share of
  requests (a log loss of 13.8 when the label is 1) and is better elsewhere (noise 0.5 against
  the champion's, ``CHAMPION_NOISE``: about 1.0 and 0.75);
- ``4 scorings``: identical models, each entity scored 4 times (a little noise per scoring) with
  one label.

The power case is a challenger with noise 0.5 against a champion with 1.0: a mean log-loss gain of
about 0.05 nats per outcome. Each case is also judged by the baseline, the asymptotic confidence
sequence of Waudby-Smith et al. (2021) on per-request differences (two-sided 0.05, 100 outcomes
first, tightest at 2,000), for comparison. Prints a Markdown table (BENCHMARKS.md).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pipelines.serving.sequential import EPS, first_crossing, log_loss_terms, outcome_of  # noqa: E402

SHARP = 1.841  # overconfident logit scale with the expected log loss of a calibrated model with noise 1.0
CHAMPION_NOISE = {0.023: 0.992, 0.01: 0.752}  # champion noise with the expected log loss of noise 0.5 plus that share of zeros
SCORINGS = 4  # requests per entity in the "4 scorings" case
CASES = ("identical", "overconfident", "zeros 2.3 %", "zeros 1 %", "4 scorings")


@dataclass(frozen=True)
class Sim:
    """One case's rollouts (rows) as the product sees them (one paired difference per entity)
    and as a per-request test would (one per request)."""

    entity_diffs: np.ndarray  # rollouts x entities
    challenger_extreme: np.ndarray  # rollouts x entities: the entity's extreme challenger scores
    champion_extreme: np.ndarray
    requests: np.ndarray  # rollouts x entities: requests per entity
    request_diffs: np.ndarray  # rollouts x requests


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-x))


def simulate(case: str, rng: np.random.Generator, n: int, entities: int, extreme_score: float) -> Sim:
    """``n`` rollouts of ``entities`` outcomes each of one case (an A/A case, or ``gain``)."""
    p = rng.beta(2, 8, size=(n, entities))
    y = (rng.random((n, entities)) < p).astype("float64")
    logit = np.log(p / (1 - p))

    def noisy(s: float) -> np.ndarray:
        return _sigmoid(logit + rng.normal(0, s, logit.shape))

    def zeros(share: float, scores: np.ndarray) -> np.ndarray:
        return np.where(rng.random(scores.shape) < share, 0.0, scores)

    k = 1
    if case == "identical":
        champion, challenger = noisy(0.5), noisy(0.5)
    elif case == "overconfident":
        champion, challenger = noisy(1.0), _sigmoid(SHARP * logit)
    elif case == "zeros 2.3 %":
        champion, challenger = noisy(CHAMPION_NOISE[0.023]), zeros(0.023, noisy(0.5))
    elif case == "zeros 1 %":
        champion, challenger = noisy(CHAMPION_NOISE[0.01]), zeros(0.01, noisy(0.5))
    elif case == "gain":
        champion, challenger = noisy(1.0), noisy(0.5)
    elif case == "4 scorings":  # each model's own view of the entity, and a little noise per scoring
        k = SCORINGS
        base_c, base_h = logit + rng.normal(0, 0.5, logit.shape), logit + rng.normal(0, 0.5, logit.shape)
        champion = _sigmoid(base_c[:, :, None] + rng.normal(0, 0.1, (n, entities, k)))
        challenger = _sigmoid(base_h[:, :, None] + rng.normal(0, 0.1, (n, entities, k)))
    else:
        raise ValueError(f"unknown case {case!r}")
    champion = champion.reshape(n, entities, k)
    challenger = challenger.reshape(n, entities, k)
    yy = y[:, :, None]
    per_request = log_loss_terms(champion, yy) - log_loss_terms(challenger, yy)

    def extreme(s: np.ndarray) -> np.ndarray:
        return ((s < extreme_score) | (s > 1 - extreme_score)).sum(axis=2)

    return Sim(
        entity_diffs=per_request.mean(axis=2),
        challenger_extreme=extreme(challenger),
        champion_extreme=extreme(champion),
        requests=np.full((n, entities), k),
        request_diffs=per_request.reshape(n, entities * k),
    )


def guardrail_at(sim: Sim, max_share: float, min_pairs: int) -> np.ndarray:
    """The first entity count at which the extreme-score guardrail breaches (-1: never): the
    challenger's share of extreme scores above the champion's by more than ``max_share``, judged
    once ``min_pairs`` paired requests are in."""
    req = np.cumsum(sim.requests, axis=1)
    excess = (np.cumsum(sim.challenger_extreme, axis=1) - np.cumsum(sim.champion_extreme, axis=1)) / req
    breach = (excess > max_share) & (req >= min_pairs)
    return np.where(breach.any(axis=1), breach.argmax(axis=1) + 1, -1)


def product_decisions(sim: Sim, alpha: float, min_outcomes: int, max_outcomes: int,
                      guard: tuple[float, int] | None) -> tuple[np.ndarray, np.ndarray]:
    """Each rollout's decision under the product's rule (1 promote, -1 reject, 0 stop) and the
    outcome it ends at; ``guard`` (max share, min pairs): the extreme-score guardrail too."""
    d = sim.entity_diffs[:, :max_outcomes]
    promote_at, reject_at = first_crossing(d, alpha, min_outcomes)
    if guard is not None:  # a breach rejects: it ends the rollout like a rejection by the test
        g = guardrail_at(Sim(d, sim.challenger_extreme[:, :max_outcomes], sim.champion_extreme[:, :max_outcomes],
                             sim.requests[:, :max_outcomes], sim.request_diffs), *guard)
        reject_at = np.where((g > 0) & ((reject_at < 0) | (g < reject_at)), g, reject_at)
    return outcome_of(promote_at, reject_at, max_outcomes)


def asymptotic_promotions(d: np.ndarray, alpha: float = 0.05, min_outcomes: int = 100, planned: int = 2000) -> np.ndarray:
    """Baseline: the first outcome at which the asymptotic confidence sequence of Waudby-Smith et
    al. (2021), two-sided ``alpha`` with the running standard deviation, lies above 0 (-1: never)."""
    t = np.arange(1, d.shape[1] + 1, dtype="float64")
    mean = np.cumsum(d, axis=1) / t
    with np.errstate(invalid="ignore", divide="ignore"):
        var = np.where(t > 1, (np.cumsum(d * d, axis=1) - t * mean * mean) / np.maximum(t - 1, 1), np.inf)
    a = -2 * math.log(alpha)
    rho = math.sqrt((a + math.log(a + 1)) / planned)
    r2t = t * rho * rho + 1.0
    radius = np.sqrt(np.maximum(var, 0)) * np.sqrt(2.0 * r2t / (t * t * rho * rho) * np.log(np.sqrt(r2t) / alpha))
    hit = ((mean - radius) > 0) & (t >= min_outcomes)
    return np.where(hit.any(axis=1), hit.argmax(axis=1) + 1, -1)


def clopper_pearson_upper(k: int, n: int, level: float = 0.95) -> float:
    """Upper end of the two-sided ``level`` Clopper-Pearson interval of a binomial rate."""
    from scipy.stats import beta

    return 1.0 if k >= n else float(beta.ppf(1 - (1 - level) / 2, k + 1, n - k))


def calibrate() -> None:
    """Solve SHARP and CHAMPION_NOISE for equal expected log loss (common random numbers)."""
    rng = np.random.default_rng(0)
    p = rng.beta(2, 8, 4_000_000)
    y = (rng.random(p.shape) < p).astype("float64")
    logit = np.log(p / (1 - p))
    z, u = rng.normal(0, 1, p.shape), rng.random(p.shape)

    def loss(s: np.ndarray) -> float:
        return float(log_loss_terms(s, y).mean())

    def solve(f: Callable[[float], float], lo: float, hi: float) -> float:
        for _ in range(40):
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if f(mid) < 0 else (lo, mid)
        return (lo + hi) / 2

    noise1 = loss(_sigmoid(logit + z))
    sharp = solve(lambda k: loss(_sigmoid(k * logit)) - noise1, 1.0, 3.0)
    z2 = rng.normal(0, 1, p.shape)
    noise = {}
    for share in (0.023, 0.01):
        target = loss(np.where(u < share, 0.0, _sigmoid(logit + 0.5 * z)))
        noise[share] = round(solve(lambda s, t=target: loss(_sigmoid(logit + s * z2)) - t, 0.5, 1.5), 3)
    print(f"SHARP = {sharp:.3f}; CHAMPION_NOISE = {noise} (EPS {EPS:g})")


def main() -> None:
    from pipelines.config import load_settings

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rollouts", type=int, default=10_000, help="rollouts per case")
    ap.add_argument("--chunk", type=int, default=500, help="rollouts simulated at once (memory)")
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--calibrate", action="store_true", help="solve the cases' constants for equal expected loss")
    ap.add_argument("--cases", nargs="*", default=[*CASES, "gain"], help="the cases to run (default: all, then gain)")
    args = ap.parse_args()
    if args.calibrate:
        calibrate()
        return
    sp = load_settings(REPO / "params.yaml").params.serve
    guard = (sp.max_extreme_share, sp.psi_min_pairs)
    rng = np.random.default_rng(args.seed)
    print(f"alpha {sp.alpha}, min_outcomes {sp.min_outcomes}, max_outcomes {sp.max_outcomes}, "
          f"extreme_score {sp.extreme_score}, max_extreme_share {sp.max_extreme_share}; {args.rollouts} rollouts per case\n")
    print("| case | baseline: asymptotic CS per request | ours, test alone | ours, with the guardrail "
          "| 95 % upper end (ours) | ours: rejected / stopped at the horizon |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for case in args.cases:
        t0 = time.perf_counter()
        base = alone = product = rejected = stopped = 0
        ends: list[np.ndarray] = []
        base_ends: list[np.ndarray] = []
        for start in range(0, args.rollouts, args.chunk):
            n = min(args.chunk, args.rollouts - start)
            sim = simulate(case, rng, n, sp.max_outcomes, sp.extreme_score)
            b = asymptotic_promotions(sim.request_diffs[:, : sp.max_outcomes])
            base += int((b > 0).sum())
            base_ends.append(b[b > 0])
            a, _ = product_decisions(sim, sp.alpha, sp.min_outcomes, sp.max_outcomes, None)
            alone += int((a == 1).sum())
            code, at = product_decisions(sim, sp.alpha, sp.min_outcomes, sp.max_outcomes, guard)
            product += int((code == 1).sum())
            rejected += int((code == -1).sum())
            stopped += int((code == 0).sum())
            ends.append(at[code == 1])
        n = args.rollouts
        if case == "gain":
            at, bat = np.concatenate(ends), np.concatenate(base_ends)
            print(f"\npower: a mean log-loss gain of about 0.05 nats: promoted in {product / n:.1%} of {n} rollouts "
                  f"(baseline {base / n:.1%}); outcomes to promotion: median {np.median(at):.0f}, "
                  f"90th percentile {np.percentile(at, 90):.0f} (baseline {np.median(bat):.0f} and "
                  f"{np.percentile(bat, 90):.0f}); rejected {rejected}, stopped {stopped} ({time.perf_counter() - t0:.1f} s)")
            continue
        print(f"| {case} | {base / n:.2%} | {alone / n:.2%} | {product / n:.2%} | "
              f"{clopper_pearson_upper(product, n):.2%} | {rejected / n:.1%} / {stopped / n:.1%} |", flush=True)


if __name__ == "__main__":
    main()
