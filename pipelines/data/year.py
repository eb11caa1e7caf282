"""A year of the simulated feed: every failure story on one calendar (pure).

The ``year`` scenario (and its compressed form, ``year_short``) chains the stories of
pipelines/ops/stories.py on the days after ``scenario_start``: a stable quarter, then the
login-policy shift (for good), a null spike, training-serving skew, a concept shift seen only
in live outcomes (for good), a label feed that arrives inverted before a scheduled retrain,
flapping drift, a label feed that stops, an upstream outage (no batch at all), and a schema
change upstream (a new column, then a renamed one; each reverted after a day or two). Each event names the alert that must
reach a person, and the day it first can: the day it starts, or, for what only labels show,
once the first affected day's labels matured.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Event:
    kind: str  # login_policy | null_spike | skew | concept_drift | label_flip | flapping | label_stop | outage
    #            | new_column | renamed_column
    start: int  # first served day (offset from scenario_start)
    days: int | None  # how long it lasts (None: for good)
    alert: str  # the alert that must reach a person
    seen_by_labels: bool = False  # detectable only once the first affected day's labels matured
    note: str = ""

    def active(self, offset: int) -> bool:
        return offset >= self.start and (self.days is None or offset < self.start + self.days)


YEARS: dict[str, tuple[Event, ...]] = {
    "year": (
        Event("login_policy", 90, None, "PipelinesDriftDetected", note="each counted login stands for three"),
        Event("null_spike", 140, 3, "PipelinesDayQuarantined", note="income 1 % -> 50 % null"),
        Event("skew", 160, 4, "PipelinesDayQuarantined", note="today's spend served as the 30-day average"),
        Event("concept_drift", 190, None, "PipelinesLiveAucUnderFloor", True, "the features mean something else"),
        Event("label_flip", 250, 4, "PipelinesRetrainBlocked", note="the label feed arrives inverted"),
        Event("flapping", 285, 20, "PipelinesDriftDetected", note="a flaky login counter, every other day"),
        Event("outage", 320, 3, "AirflowTaskFailed", note="no batch lands"),
        Event("label_stop", 335, 14, "PipelinesLabelsOverdue", True, "the label feed stops for two weeks"),
        Event("new_column", 355, 2, "PipelinesDayQuarantined", note="upstream adds a column"),
        Event("renamed_column", 358, 2, "PipelinesDayQuarantined", note="upstream renames tenure_months"),
    ),
    "year_short": (
        Event("login_policy", 15, None, "PipelinesDriftDetected", note="each counted login stands for three"),
        Event("null_spike", 30, 2, "PipelinesDayQuarantined", note="income 1 % -> 50 % null"),
        Event("skew", 33, 2, "PipelinesDayQuarantined", note="today's spend served as the 30-day average"),
        Event("concept_drift", 36, None, "PipelinesLiveAucUnderFloor", True, "the features mean something else"),
        Event("label_flip", 52, 4, "PipelinesRetrainBlocked", note="the label feed arrives inverted"),
        Event("flapping", 64, 6, "PipelinesDriftDetected", note="a flaky login counter, every other day"),
        Event("label_stop", 64, 5, "PipelinesLabelsOverdue", True, "the label feed stops for five days"),
        Event("outage", 71, 3, "AirflowTaskFailed", note="no batch lands"),
        Event("new_column", 74, 1, "PipelinesDayQuarantined", note="upstream adds a column"),
        Event("renamed_column", 75, 1, "PipelinesDayQuarantined", note="upstream renames tenure_months"),
    ),
}
# The scheduled training run that learns from the inverted labels (all in its window, none in its
# holdout), which the gate must block.
BAD_RETRAIN_AT = {"year": 265, "year_short": 62}
SERVED_DAYS = {"year": 365, "year_short": 76}


def events_on(year: str, offset: int) -> list[Event]:
    """The events in force on served day ``offset`` of ``year`` (none before the first served day)."""
    return [e for e in YEARS[year] if e.active(offset)] if offset >= 0 else []
