"""The rollout of a challenger: shadow, canary stages, guardrails, and the decision record.

A challenger (the registry's ``challenger`` alias) first runs in **shadow**: it scores each
request off the response path. Then a **canary** share of entities (serve.canary_stages, in
percent) is answered by it, chosen by a hash of the entity id, so an entity stays on the same
side and the entities of a 5 % stage are still in at 25 %. A stage advances only after
``bake_seconds`` and ``min_requests`` requests answered (or shadowed) by the challenger.

Every ``check_seconds`` the **guardrails** judge the requests since the last check, challenger
against champion: error rate, p99 model latency against the SLO, and the PSI of the
challenger's scores against the champion's on the same requests, and the challenger's share of
extreme or non-finite scores beyond the champion's (serve.extreme_score, max_extreme_share). A
breach sets the canary to 0 %, tags the version ``rejected`` with the reason and logs the
decision (JSON and text) to the version's MLflow run.

Promotion needs live outcomes (:meth:`Rollout.judge`): the matured outcomes
(:mod:`pipelines.serving.outcomes`) go through the same extreme-score guardrail, then the
sequential test (:mod:`pipelines.serving.sequential`) promotes, rejects, or ends the rollout at
serve.max_outcomes; labels other than 0/1 hold the rollout (paused, with the reason) until they
are fixed. Every one of these is a recorded decision, with the counts of what was left out.

This module holds the state machine and the statistics (no I/O); the server feeds it and
acts on its decisions.
"""

from __future__ import annotations

import hashlib
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from pipelines.config import ServeParams
from pipelines.serving.sequential import decide, extreme_count

if TYPE_CHECKING:
    from pipelines.serving.outcomes import Outcomes

MIN_LATENCY_SAMPLES = 5  # fewer calls in a window say nothing about a p99
ACTIVE = ("shadow", "canary", "complete")
Stage = Literal["none", "shadow", "canary", "complete", "rejected", "promoted"]


def bucket(entity: Any, salt: str) -> float:
    """The entity's fixed place in [0, 100): sticky routing across requests and stages."""
    h = hashlib.blake2b(f"{salt}:{entity}".encode(), digest_size=8).digest()
    return int.from_bytes(h, "big") / 2**64 * 100


def p99(values: list[float]) -> float | None:
    return float(np.percentile(np.asarray(values, dtype="float64"), 99)) if values else None


def extreme_breach(champion: int, challenger: int, n: int, params: ServeParams) -> str:
    """The extreme-score guardrail on ``n`` paired requests: one readable line when the
    challenger's share of extreme or non-finite scores exceeds the champion's by more than
    serve.max_extreme_share (a log loss of up to 13.8 per such answer, or none at all), else ""."""
    if n < params.psi_min_pairs:
        return ""
    share, base = challenger / n, champion / n
    if share - base <= params.max_extreme_share:
        return ""
    return (
        f"extreme or non-finite scores (below {params.extreme_score:g} or above 1 - {params.extreme_score:g}) on "
        f"{share:.2%} of {n} paired requests against the champion's {base:.2%}: more than "
        f"serve.max_extreme_share {params.max_extreme_share:.2%} above it"
    )


def score_psi(reference: np.ndarray, current: np.ndarray, bins: int = 10) -> float:
    """PSI of ``current`` scores against ``reference`` scores, in bins at the reference's
    deciles (an empty bin counts as 1e-4, the convention of the drift job)."""
    edges = np.unique(np.quantile(reference, np.linspace(0, 1, bins + 1)[1:-1]))
    ref = np.bincount(np.searchsorted(edges, reference, side="right"), minlength=len(edges) + 1) / len(reference)
    cur = np.bincount(np.searchsorted(edges, current, side="right"), minlength=len(edges) + 1) / len(current)
    ref, cur = np.where(ref == 0, 1e-4, ref), np.where(cur == 0, 1e-4, cur)
    return float(np.sum((cur - ref) * np.log(cur / ref)))


@dataclass
class Window:
    """What the challenger and the champion did since the last check."""

    requests: dict[str, int] = field(default_factory=lambda: {"champion": 0, "challenger": 0})
    errors: dict[str, int] = field(default_factory=lambda: {"champion": 0, "challenger": 0})
    latency_ms: dict[str, list[float]] = field(default_factory=lambda: {"champion": [], "challenger": []})
    champion_scores: list[float] = field(default_factory=list)
    challenger_scores: list[float] = field(default_factory=list)


@dataclass
class Rollout:
    """The stage machine of one challenger version (thread-safe)."""

    params: ServeParams
    version: str | None = None
    stage: Stage = "none"
    index: int = -1  # position in canary_stages while in canary
    paused: bool = False
    stage_started: float = 0.0
    stage_requests: int = 0
    reason: str = ""
    window: Window = field(default_factory=Window)
    pairs_champion: list[float] = field(default_factory=list)
    pairs_challenger: list[float] = field(default_factory=list)
    history: list[dict[str, Any]] = field(default_factory=list)
    outcomes: dict[str, Any] = field(default_factory=dict)  # the last judged outcomes' counts
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def share(self) -> float:
        """Percent of entities the challenger answers now."""
        if self.stage == "complete":
            return 100.0  # the challenger keeps answering until the outcome test promotes or rejects it
        return float(self.params.canary_stages[self.index]) if self.stage == "canary" else 0.0

    def start(self, version: str | None, now: float) -> None:
        """A new challenger (or none): start its shadow stage afresh."""
        with self._lock:
            if version == self.version:
                return
            self.version = version
            self.stage = "shadow" if version else "none"
            self.index, self.paused, self.reason = -1, False, ""
            self.stage_started, self.stage_requests = now, 0
            self.window = Window()
            self.pairs_champion, self.pairs_challenger = [], []
            self.outcomes = {}
            if version:
                self._note(now, "shadow", f"challenger v{version} enters shadow")

    def routes_to_challenger(self, entity: Any) -> bool:
        share = self.share
        return share > 0 and entity is not None and bucket(entity, f"rollout-{self.version}") < share

    def observe(self, alias: str, version: str, ok: bool, latency_ms: float | None) -> None:
        """One model call; calls of a challenger other than the one in rollout are ignored.
        ``latency_ms`` None: counts for the error rate but is no latency sample: on the response
        path, a call that scored other requests too (the p99s compare calls of one request
        each); off the path, a request whose call was sampled already (one sample per call)."""
        with self._lock:
            if alias == "challenger" and version != self.version:
                return
            w = self.window
            w.requests[alias] += 1
            if not ok:
                w.errors[alias] += 1
            elif latency_ms is not None:
                w.latency_ms[alias].append(latency_ms)
            if alias == "challenger":
                self.stage_requests += 1

    def observe_pair(self, version: str, champion: np.ndarray, challenger: np.ndarray) -> None:
        """Scores of the same rows by both models (one of them off the response path)."""
        with self._lock:
            if version != self.version:
                return
            self.window.champion_scores.extend(map(float, champion))
            self.window.challenger_scores.extend(map(float, challenger))
            self.pairs_champion.extend(map(float, champion))
            self.pairs_challenger.extend(map(float, challenger))

    def guardrails(self, w: Window) -> list[str]:
        """Breaches in a window, one readable line each (empty: all held)."""
        p = self.params
        out = []
        n = w.requests["challenger"]
        if n:
            rate = w.errors["challenger"] / n
            if rate > p.max_error_rate:
                out.append(f"error rate {rate:.1%} on {n} requests is above serve.max_error_rate {p.max_error_rate:.1%}")
        lat = p99(w.latency_ms["challenger"])
        champ = p99(w.latency_ms["champion"])
        # over the SLO, and slower than the champion on the same machine at the same time (a machine
        # that is slow for everyone is not the challenger's fault)
        slower = champ is None or lat is None or lat > p.p99_vs_champion * champ
        if lat is not None and len(w.latency_ms["challenger"]) >= MIN_LATENCY_SAMPLES and lat > p.p99_slo_ms and slower:
            out.append(
                f"p99 latency {lat:.1f} ms is above the SLO serve.p99_slo_ms {p.p99_slo_ms:g} ms"
                + (f" (champion {champ:.1f} ms)" if champ is not None else "")
            )
        champ_pairs, chal_pairs = np.asarray(self.pairs_champion), np.asarray(self.pairs_challenger)
        breach = extreme_breach(
            extreme_count(champ_pairs, p.extreme_score), extreme_count(chal_pairs, p.extreme_score), len(chal_pairs), p
        )
        if breach:
            out.append(breach)
        finite = np.isfinite(champ_pairs) & np.isfinite(chal_pairs)
        if finite.sum() >= p.psi_min_pairs:
            psi = score_psi(champ_pairs[finite], chal_pairs[finite])
            if psi > p.max_prediction_psi:
                out.append(
                    f"prediction PSI {psi:.3f} against the champion's scores is above "
                    f"serve.max_prediction_psi {p.max_prediction_psi:g}"
                )
        return out

    def check(self, now: float) -> dict[str, Any] | None:
        """Judge the window since the last check; returns a decision when something changed
        (rejected, advanced, complete), else None."""
        with self._lock:
            w, self.window = self.window, Window()
            for alias, lat in w.latency_ms.items():  # too few calls for a p99: judge them with the next window's
                if len(lat) < MIN_LATENCY_SAMPLES:
                    self.window.latency_ms[alias] = lat
            if self.stage not in ("shadow", "canary"):
                return None
            breaches = self.guardrails(w)
            if breaches:
                self.stage, self.index, self.reason = "rejected", -1, "; ".join(breaches)
                return self._note(now, "reject", self.reason, window=w)
            if self.paused:
                return None
            baked = now - self.stage_started >= self.params.bake_seconds and self.stage_requests >= self.params.min_requests
            return self._advance(now, "bake time and requests met", w) if baked else None

    def act(self, action: str, now: float, reason: str = "") -> dict[str, Any]:
        """An operator's action: pause, resume, advance (skip the bake) or abort."""
        with self._lock:
            if self.stage not in ("shadow", "canary"):
                raise ValueError(f"no rollout in progress (stage {self.stage})")
            if action == "pause":
                self.paused = True
                return self._note(now, "pause", reason or "paused by an operator")
            if action == "resume":
                self.paused = False
                return self._note(now, "resume", reason or "resumed by an operator")
            if action == "advance":
                return self._advance(now, reason or "advanced by an operator", self.window)
            if action == "abort":
                self.stage, self.index, self.reason = "rejected", -1, f"aborted by an operator: {reason or 'no reason given'}"
                return self._note(now, "reject", self.reason)
            raise ValueError(f"unknown action {action!r}: pause, resume, advance or abort")

    def judge(self, outcomes: Outcomes, now: float) -> dict[str, Any] | None:
        """Judge the matured outcomes; returns the decision record when the rollout ends or
        holds, else None (keep watching; the counts are in :meth:`describe`). In order: labels
        other than 0/1 pause the rollout (an operator resumes it once they are fixed); the
        extreme-score guardrail rejects; the sequential test promotes, rejects, or stops the
        rollout at serve.max_outcomes (action ``reject``: the champion stays)."""
        p = self.params
        with self._lock:
            if self.stage not in ACTIVE or self.paused:
                return None
            counts = outcomes.summary()
            self.outcomes = counts
            if outcomes.label_problem:
                self.paused = True
                reason = f"sequential test on live outcomes held: {outcomes.label_problem}; fix them, then resume the rollout"
                rec = self._note(now, "pause", reason)
                rec["outcomes"] = counts
                return rec
            breach = extreme_breach(outcomes.extreme_champion, outcomes.extreme_challenger, outcomes.requests, p)
            if breach:
                self.stage, self.index, self.reason = "rejected", -1, f"live outcomes: {breach}"
                rec = self._note(now, "reject", self.reason)
                rec["outcomes"] = counts
                return rec
            verdict = decide(outcomes.diffs, p.alpha, p.min_outcomes, p.max_outcomes)
            if verdict.decision == "continue":
                return None
            promote = verdict.decision == "promote"
            self.stage, self.index = ("promoted" if promote else "rejected"), -1
            self.reason = f"sequential test on live outcomes: {verdict.text}"
            rec = self._note(now, "promote" if promote else "reject", self.reason)
            rec["outcomes"] = {**asdict(verdict), "text": verdict.text, **counts}
            return rec

    def _advance(self, now: float, why: str, w: Window) -> dict[str, Any]:
        stages = self.params.canary_stages
        if self.stage == "canary" and self.index == len(stages) - 1:
            self.stage = "complete"
            return self._note(
                now, "complete", f"{why}: 100 % canary held; promotion waits for the sequential test on live outcomes", window=w
            )
        self.stage, self.index = "canary", self.index + 1
        self.stage_started, self.stage_requests = now, 0
        return self._note(now, "advance", f"{why}: canary {stages[self.index]:g} %", window=w)

    def _note(self, now: float, action: str, reason: str, window: Window | None = None) -> dict[str, Any]:
        rec: dict[str, Any] = {
            "at": round(now, 3),
            "version": self.version,
            "action": action,
            "stage": self.stage,
            "canary_percent": self.share,
            "reason": reason,
        }
        if window is not None:
            rec["window"] = {
                "requests": dict(window.requests),
                "errors": dict(window.errors),
                "p99_ms": {k: p99(v) for k, v in window.latency_ms.items()},
            }
        self.history.append(rec)
        return rec

    def describe(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "stage": self.stage,
            "canary_percent": self.share,
            "paused": self.paused,
            "stage_requests": self.stage_requests,
            "paired_scores": len(self.pairs_champion),
            "outcomes": self.outcomes,
            "reason": self.reason,
            "history": self.history[-20:],
        }


def decision_text(rec: dict[str, Any], model_name: str) -> str:
    """The readable form of a rollout decision (logged beside its JSON)."""
    lines = [
        f"rollout of {model_name} v{rec['version']}: {rec['action'].upper()} "
        f"at {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(rec['at']))}",
        f"stage: {rec['stage']} (canary {rec['canary_percent']:g} %)",
        f"reason: {rec['reason']}",
    ]
    w = rec.get("window")
    if w:
        lines.append(f"window: requests {w['requests']}, errors {w['errors']}, p99 ms {w['p99_ms']}")
    return "\n".join(lines) + "\n"
