"""The failure stories users tell, as replayable simulator timelines with the guard each must trigger.

A story is a simulator scenario on a calendar: ``warmup_days`` of history (landed, validated,
labels maturing) before the first champion is trained, then ``days`` served days; the scenario's
failure runs from served day ``failure_at`` for ``failure_days`` days (None: to the end).
``params`` are the story's own settings of the data's calendar and size (``simulate.*``), written
into the replay project's params.yaml (each replay is a project of its own): the product's
settings (prepare, drift, gate, train) are always the shipped ones. ``quick`` compresses the
calendar for tests (labels mature in days, not a week; a shorter warm-up) without changing
what the story shows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pipelines.data.year import BAD_RETRAIN_AT, SERVED_DAYS
from pipelines.errors import PipelineError
from pipelines.params import SimulateParams


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
    quick_scenario: str | None = None  # the compressed form's scenario, when it has its own calendar

    def calendar(self, quick: bool, days: int | None) -> dict[str, Any]:
        """The replay's calendar and settings: served days, failure window, retrain days, and the
        params it sets (the data's calendar and size only: the product's settings are shipped)."""
        params = {**self.params, **(QUICK_PARAMS if quick else {}), **(self.quick_params if quick else {})}
        check_overrides(params, f"story {self.name}")
        served = days if days is not None else (self.quick_days if quick else self.days)
        if served < 1:
            raise PipelineError(f"--days must be at least 1, got {served}")
        delay = params.get("simulate.label_delay_days", SimulateParams().label_delay_days)
        return {
            "scenario": (self.quick_scenario or self.scenario) if quick else self.scenario,
            "days": served,
            # labelled days for the first champion (a full window, or a short one in --quick), plus the label delay
            "warmup_days": (QUICK_WARMUP_LABELLED_DAYS if quick else WARMUP_LABELLED_DAYS) + delay,
            "failure_at": self.quick_failure_at if quick else self.failure_at,
            "failure_days": self.failure_days,
            "retrain_at": self.quick_retrain_at if quick else self.retrain_at,
            "params": params,
            "rows": self.quick_rows if quick else self.rows,
        }


# What decides (the training window, the brakes, the gate, the model) is never a story's:
# every story runs with the shipped params.yaml for these sections. A story sets only the data's
# calendar and size (simulate.*) and the report toggles; the timeline records every override.
PRODUCT_SECTIONS = ("prepare", "drift", "gate", "train")
REPORT_TOGGLES = ("validate.data_docs", "drift.html_report")


def product_overrides(params: dict[str, Any]) -> list[str]:
    """The settings among ``params`` ("section.key") that change what decides (pure)."""
    return sorted(k for k in params if k.partition(".")[0] in PRODUCT_SECTIONS and k not in REPORT_TOGGLES)


def check_overrides(params: dict[str, Any], who: str) -> None:
    """Refuse a story setting of the product's decisions (prepare, drift, gate, train), in one line."""
    bad = product_overrides(params)
    if bad:
        raise PipelineError(
            f"{who} overrides {', '.join(sorted(bad))}: stories run on the shipped settings of "
            f"{', '.join(PRODUCT_SECTIONS)} (only simulate.* and the report toggles may differ)"
        )


# Labelled days before the first champion: a full window and holdout of the shipped params.yaml
# (30 + 3). --quick trains the first champion on fewer (the window then grows as days mature).
WARMUP_LABELLED_DAYS = 33
QUICK_WARMUP_LABELLED_DAYS = 12
# The compressed calendar of --quick (tests): labels mature in 3 days, not a week.
QUICK_PARAMS: dict[str, Any] = {"simulate.label_delay_days": 3}

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
            quick_days=22,
            quick_failure_at=3,
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
            quick_days=22,
            quick_failure_at=3,
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
            quick_days=12,
            quick_failure_at=1,
            quick_retrain_at=(10,),  # the flipped days are all in the training window, none in the holdout
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
        Story(
            name="year",
            scenario="year",
            guard="all",
            summary=(
                "A year unattended, every story on one calendar (pipelines/data/year.py): a stable quarter, the "
                "login-policy shift, a null spike, training-serving skew, a concept shift seen only in live "
                "outcomes, an inverted label feed before a scheduled retrain, flapping drift and an upstream "
                "outage, all on the shipped settings: each failure alerts on the first day it can be seen, and "
                "the loop recovers by itself."
            ),
            days=SERVED_DAYS["year"],
            failure_at=0,
            retrain_at=(BAD_RETRAIN_AT["year"],),
            rows=1000,
            quick_scenario="year_short",
            quick_days=SERVED_DAYS["year_short"],
            quick_failure_at=0,
            quick_retrain_at=(BAD_RETRAIN_AT["year_short"],),
            quick_rows=1000,
        ),
    )
}


def story(name: str) -> Story:
    if name not in STORIES:
        raise PipelineError(f"unknown story {name!r} ({', '.join(STORIES)})")
    return STORIES[name]
