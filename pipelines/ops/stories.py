"""The failure stories users tell, as replayable simulator timelines with the guard each must trigger.

A story is a simulator scenario on a calendar: ``warmup_days`` of history (landed, validated,
labels maturing) before the first champion is trained, then ``days`` served days; the scenario's
failure runs from served day ``failure_at`` for ``failure_days`` days (None: to the end).
``params`` are the story's own settings, written into the replay project's params.yaml (each
replay is a project of its own); ``quick`` compresses the calendar for tests (labels mature in
days, not a week; a short training window) without changing what the story shows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pipelines.errors import PipelineError


@dataclass(frozen=True)
class Story:
    name: str
    scenario: str  # a simulator scenario (pipelines/data/simulate.py)
    guard: str  # the guard the story must trigger
    summary: str
    days: int  # served days, default
    failure_at: int  # first served day of the failure (0-based)
    failure_days: int | None = None  # how long the failure lasts (None: to the end)
    retrain_at: tuple[int, ...] = ()  # served days a training run is triggered by hand/schedule
    params: dict[str, Any] = field(default_factory=dict)
    quick_days: int = 20
    quick_failure_at: int = 3
    quick_retrain_at: tuple[int, ...] = ()
    quick_params: dict[str, Any] = field(default_factory=dict)
    rows: int = 2000
    quick_rows: int = 1500

    def calendar(self, quick: bool, days: int | None) -> dict[str, Any]:
        """The replay's calendar and settings: served days, failure window, retrain days, params."""
        params = {**BASE_PARAMS, **self.params, **(QUICK_PARAMS if quick else {}), **(self.quick_params if quick else {})}
        served = days if days is not None else (self.quick_days if quick else self.days)
        if served < 1:
            raise PipelineError(f"--days must be at least 1, got {served}")
        window = params.get("prepare.window_days", 30) + params.get("prepare.holdout_days", 3)
        return {
            "days": served,
            "warmup_days": window + params.get("simulate.label_delay_days", 7),
            "failure_at": self.quick_failure_at if quick else self.failure_at,
            "failure_days": self.failure_days,
            "retrain_at": self.quick_retrain_at if quick else self.retrain_at,
            "params": params,
            "rows": self.quick_rows if quick else self.rows,
        }


# Every story: a short training window (a model learns the current regime, not a 30-day blend)
# and a retrain that waits for labels of the drifted days (before then it would learn the old
# regime only, and drift would fire again at once: a retrain loop).
BASE_PARAMS: dict[str, Any] = {
    "prepare.window_days": 10,
    "prepare.holdout_days": 3,
    "drift.min_labelled_drifted_days": 13,
    "drift.cooldown_days": 7,  # a retrain the gate blocked is retried a week later at the earliest
}
# The compressed calendar of --quick (tests): labels mature in 3 days, a 5-day window.
QUICK_PARAMS: dict[str, Any] = {
    "simulate.label_delay_days": 3,
    "prepare.window_days": 5,
    "prepare.holdout_days": 2,
    "drift.min_labelled_drifted_days": 7,
    # the same gate, judged with fewer resamples and timing rounds (a test's budget)
    "gate.bootstrap_samples": 300,
    "gate.latency_calls": 10,
    "gate.latency_rounds": 2,  # the quieter round is judged: one stall of a busy machine is not the model's
}

STORIES: dict[str, Story] = {
    s.name: s
    for s in (
        Story(
            name="login_policy",
            scenario="login_policy",
            guard="drift",
            summary=(
                "Stable months, then a login-policy change makes every counted login stand for three: "
                "logins_30d shifts, the old model's live AUC decays, drift fires, the brakes hold until "
                "the drifted days' labels matured, the retrain is promoted by the gate and live AUC recovers."
            ),
            days=60,
            failure_at=20,
            quick_days=19,
            quick_failure_at=3,
            # The gate's prediction-shift check compares the candidate's scores with the stale
            # champion's on today's batch: after a feature shift they differ by design (PSI ~0.8
            # measured), and the default 0.25 blocks every retrain. The story judges it at 1.5.
            params={"gate.max_prediction_psi": 1.5},
        ),
        Story(
            name="concept_shift",
            scenario="concept_drift",
            guard="performance",
            summary=(
                "After a shock the relationship between the features and default changes while the inputs "
                "look the same: PSI stays quiet, only live performance sees it. Low live AUC on k matured days "
                "requests a retrain under the same brakes; the gate promotes it and live AUC recovers."
            ),
            days=45,
            failure_at=15,
            quick_days=19,
            quick_failure_at=3,
            params={
                "drift.min_live_roc_auc": 0.6,
                "drift.max_live_auc_drop": 0.1,
                "gate.max_prediction_psi": 1.5,  # as in login_policy: the stale champion's scores are the wrong ones
            },
        ),
        Story(
            name="skew",
            scenario="skew",
            guard="validation",
            summary=(
                "A 30-day average is served as today's value for 4 days: "
                "validation blocks every such day, nothing is scored from it."
            ),
            days=20,
            failure_at=5,
            failure_days=4,
            quick_days=6,
            quick_failure_at=1,
        ),
        Story(
            name="null_spike",
            scenario="null_spike",
            guard="validation",
            summary=(
                "income goes from 1 % to 50 % nulls for 3 days: "
                "the days are quarantined, the champion keeps serving the good days."
            ),
            days=20,
            failure_at=5,
            failure_days=3,
            quick_days=6,
            quick_failure_at=1,
        ),
        Story(
            name="bad_retrain",
            scenario="label_flip",
            guard="gate",
            summary=(
                "The label feed arrives inverted for 4 days; the scheduled retrain learns from them, "
                "the gate blocks the candidate (challenger only) and the champion stays."
            ),
            days=25,
            failure_at=3,
            failure_days=4,
            retrain_at=(20,),
            quick_days=11,
            quick_failure_at=1,
            quick_retrain_at=(9,),
        ),
        Story(
            name="flapping",
            scenario="flapping",
            guard="brakes",
            summary=(
                "A flaky login counter pushes logins_30d's PSI over the threshold every other day: "
                "the brakes (k drifted days in a row) never let it start a retrain loop."
            ),
            days=30,
            failure_at=5,
            quick_days=8,
            quick_failure_at=1,
        ),
    )
}


def story(name: str) -> Story:
    if name not in STORIES:
        raise PipelineError(f"unknown story {name!r} ({', '.join(STORIES)})")
    return STORIES[name]
