"""Seeded generator of daily credit-default batches, with the failures we must catch.

Why simulate: no real data set can be downloaded here, and a generator lets tests inject each
production failure on a known day. Every day is generated from its own seed (params seed + the
day), so any day can be regenerated identically, and the same day is identical whatever the
scenario until ``scenario_start``.

Each day produces two files, like a real feed with delayed ground truth:
  data/raw/<day>.parquet     id, event timestamp, 13 features, no label
  data/labels/<day>.parquet  id and the default label, written only once it has matured
                             (``label_delay_days`` after the event, counted from the last
                             simulated day, which plays "today").
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from pipelines.config import Scenario, Settings
from pipelines.data.year import YEARS, events_on
from pipelines.errors import PipelineError
from pipelines.io import parse_date, write_parquet

SCENARIOS = (
    "stable", "feature_drift", "concept_drift", "data_quality", "skew",
    # the replayed failure stories (pipelines/ops/stories.py)
    "login_policy", "null_spike", "label_flip", "flapping",
    # every story on one calendar (pipelines/data/year.py)
    "year", "year_short",
)
# Scenarios with a world of their own, in force on every day (before the failure too), so a
# story's stable months and its failure come from the same population. The other scenarios
# leave the stable world alone: their days before ``scenario_start`` equal `stable` days.
WORLDS = ("login_policy", "null_spike")
REGIONS = ["north", "south", "east", "west", "central"]
PRODUCTS = ["basic", "gold", "platinum"]
EMPLOYMENT = ["employed", "self_employed", "unemployed", "retired", "student"]


@dataclass(frozen=True)
class DayFrames:
    batch: pd.DataFrame  # what lands in production: no label
    labels: pd.DataFrame  # id + label, available only after the delay


def _rng(seed: int, day: date, stream: int) -> np.random.Generator:
    return np.random.default_rng([seed, day.toordinal(), stream])


ID_POPULATION = 9_000_000


def _customers(rng: np.random.Generator, day: date, n: int) -> dict[str, np.ndarray]:
    """One day's customers as they really are (the draws, in a fixed order, are the seed's)."""
    c: dict[str, Any] = {}
    # Distinct ids drawn from 9 M (the draws every seed has always given), or from twice the rows
    # when a day is bigger than that, so any row count works.
    c["customer_id"] = rng.choice(max(ID_POPULATION, 2 * n), size=n, replace=False).astype("int64") + 1_000_000
    seconds = np.sort(rng.integers(0, 86_400, size=n))
    c["event_ts"] = pd.Timestamp(datetime(day.year, day.month, day.day)) + pd.to_timedelta(seconds, unit="s")
    c["age"] = np.clip(rng.normal(42, 13, n), 18, 90).astype("int64")
    c["income"] = np.round(rng.lognormal(np.log(55_000), 0.5, n), 2)
    c["tenure"] = np.clip(((c["age"] - 18) * 12 * rng.random(n)).astype("int64"), 0, 480)
    c["credit_limit"] = np.round(np.clip(c["income"] * rng.uniform(0.1, 0.4, n), 500, 100_000), 0)
    c["utilization"] = np.round(rng.beta(2, 5, n), 4)
    activity = rng.gamma(2.0, 0.5, n)
    c["true_logins"] = rng.poisson(25 * activity)
    c["avg_spend"] = np.round(c["credit_limit"] * c["utilization"] / 30 * rng.uniform(0.8, 1.2, n), 2)
    c["txn_count"] = rng.poisson(10 + 0.5 * c["true_logins"])
    c["days_since"] = np.clip(rng.exponential(15, n), 0, 120).astype("int64")
    c["late"] = np.clip(rng.poisson(0.3 + 1.5 * c["utilization"] ** 2), 0, 12).astype("int64")
    c["region"] = rng.choice(REGIONS, n, p=[0.25, 0.25, 0.2, 0.2, 0.1])
    c["product"] = rng.choice(PRODUCTS, n, p=[0.6, 0.3, 0.1])
    c["employment"] = rng.choice(EMPLOYMENT, n, p=[0.6, 0.15, 0.08, 0.1, 0.07])
    c["label_noise"] = rng.random(n)
    return c


def _risk(c: dict[str, np.ndarray]) -> np.ndarray:
    """Log-odds of default. It depends on the customer's real behaviour (true logins), not on
    how logins are counted: a login-policy change moves the feature but not the risk."""
    return (
        -3.0
        + 3.0 * c["utilization"]
        + 0.45 * c["late"]
        + 0.012 * c["days_since"]
        - 0.025 * c["true_logins"]
        - 0.5 * np.log(c["income"] / 55_000)
        + np.select([c["employment"] == "unemployed", c["employment"] == "student"], [0.9, 0.4], 0.0)
        + np.where(c["product"] == "platinum", -0.4, 0.0)
    )


def _world(
    scenario: Scenario, wrng: np.random.Generator, c: dict[str, np.ndarray], out: dict[str, np.ndarray], z: np.ndarray
) -> np.ndarray:
    """The population of a story (every day, before and during the failure); return the risk."""
    if scenario == "login_policy":
        # Tuned (old model ~0.82 before the policy change, ~0.75 after it, a retrained one ~0.83):
        # active customers (over ~25 real logins a month) default far less, a threshold the
        # policy change moves to ~8 counted logins.
        active = 1 / (1 + np.exp(-(c["true_logins"] - 25.0) / 3.0))
        z = 1.15 * (z + 0.025 * c["true_logins"]) - 3.2 * active + 0.6
    elif scenario == "null_spike":
        out["income"][wrng.random(len(z)) < 0.01] = np.nan  # the usual ~1 % of missing incomes
    return z


def _apply_scenario(
    scenario: Scenario, srng: np.random.Generator, c: dict[str, np.ndarray], out: dict[str, np.ndarray], z: np.ndarray
) -> np.ndarray:
    """Inject the scenario's failure into the served columns ``out`` (or the risk); return the risk."""
    n = len(z)
    if scenario == "login_policy":
        # A login-policy change (remembered sessions): each counted login now stands for about
        # three real ones. The customers (and their risk) are unchanged; the feature is not.
        out["logins_30d"] = (c["true_logins"] // 3).astype("int64")
    elif scenario == "flapping":
        # A flaky counter loses logins, more on alternate days: logins_30d's PSI swings around
        # the 0.2 threshold (~0.3 on even days, ~0.05 on odd ones), never two days above in a row.
        keep = 0.65 if c["event_ts"][0].toordinal() % 2 == 0 else 0.85
        out["logins_30d"] = srng.binomial(c["true_logins"], keep).astype("int64")
    elif scenario == "null_spike":
        out["income"][srng.random(n) < 0.5] = np.nan  # ~1 % -> 50 % missing, nothing else wrong
    elif scenario == "feature_drift":
        # A login-policy change (longer sessions) cuts counted logins to about a third.
        out["logins_30d"] = srng.binomial(c["true_logins"], 0.35).astype("int64")
    elif scenario == "concept_drift":
        # Same inputs, new relationship: utilisation and logins now point the other way.
        z = (
            -2.0
            - 2.5 * c["utilization"]
            + 0.03 * c["true_logins"]
            - 0.5 * np.log(c["income"] / 55_000)
            + np.where(c["product"] == "basic", 0.6, -0.3)
        )
    elif scenario == "skew":
        # Training-serving skew: the serving job sends today's spend where the model was
        # trained on the 30-day average (same mean, half the days zero, far wider spread).
        out["avg_spend_30d"] = np.round(c["avg_spend"] * 2.0 * srng.exponential(1.0, n) * (srng.random(n) < 0.5), 2)
    elif scenario == "data_quality":
        out["income"][srng.random(n) < 0.5] = np.nan  # null spike: ~1 % -> 50 %
        out["age"][srng.random(n) < 0.03] = 150  # out of range
        out["utilization"][srng.random(n) < 0.02] = -0.5  # out of range
    return z


def generate_day(
    day: date,
    rows: int,
    seed: int,
    scenario: Scenario = "stable",
    scenario_start: date | None = None,
    scenario_end: date | None = None,
) -> DayFrames:
    """Generate one day's batch and labels (pure: same arguments, same frames). The scenario's
    failure applies on [``scenario_start``, ``scenario_end``) (open ends: always)."""
    c = _customers(_rng(seed, day, 0), day, rows)
    z = _risk(c)
    out: dict[str, np.ndarray] = {
        "age": c["age"].copy(),
        "income": c["income"].astype("float64"),
        "credit_limit": c["credit_limit"],
        "utilization": c["utilization"].copy(),
        "logins_30d": c["true_logins"].astype("int64"),
        "avg_spend_30d": c["avg_spend"],
    }
    if scenario in YEARS:
        return _year_day(day, scenario, seed, scenario_start, c, out, z)
    if scenario in WORLDS:
        z = _world(scenario, _rng(seed, day, 2), c, out, z)
    failing = (
        scenario != "stable"
        and (scenario_start is None or day >= scenario_start)
        and (scenario_end is None or day < scenario_end)
    )
    if failing:
        z = _apply_scenario(scenario, _rng(seed, day, 1), c, out, z)
    return _frames(c, out, z, flip=failing and scenario == "label_flip")


def _year_day(
    day: date, year: str, seed: int, start: date | None, c: dict[str, np.ndarray], out: dict[str, np.ndarray], z: np.ndarray
) -> DayFrames:
    """One day of a year (pipelines/data/year.py): the login-policy world throughout, and the
    events in force on the day, in calendar order."""
    z = _world("login_policy", _rng(seed, day, 2), c, out, z)
    offset = (day - start).days if start is not None else -1
    kinds = [e.kind for e in events_on(year, offset)]
    for kind in kinds:
        if kind == "flapping":  # a flaky counter loses logins of whatever is counted, on alternate days
            keep = 0.55 if day.toordinal() % 2 == 0 else 1.0
            out["logins_30d"] = _rng(seed, day, 1).binomial(out["logins_30d"], keep).astype("int64")
        elif kind in ("login_policy", "null_spike", "skew", "concept_drift"):
            z = _apply_scenario(kind, _rng(seed, day, 1), c, out, z)  # type: ignore[arg-type]
    frames = _frames(c, out, z, flip="label_flip" in kinds)
    if "new_column" in kinds:  # a schema change upstream: one more column...
        frames.batch["referral_code"] = (c["customer_id"] % 7).astype("int64")
    if "renamed_column" in kinds:  # ...or one under a new name
        frames.batch.rename(columns={"tenure_months": "tenure"}, inplace=True)
    return frames


def no_batch(day: date, scenario: str, scenario_start: date | None, kind: str = "outage") -> bool:
    """Whether the feed lands nothing on ``day`` (a year's upstream outage), or, with ``kind``
    "label_stop", no label for it ever (the label feed stopped)."""
    if scenario not in YEARS or scenario_start is None:
        return False
    return any(e.kind == kind for e in events_on(scenario, (day - scenario_start).days))


def _frames(c: dict[str, np.ndarray], out: dict[str, np.ndarray], z: np.ndarray, flip: bool) -> DayFrames:
    """The day's batch (served columns) and labels (drawn from the risk ``z``; inverted when the
    label feed is corrupted)."""
    label = (c["label_noise"] < 1 / (1 + np.exp(-z))).astype("int64")
    if flip:
        # A corrupted label feed: the ground truth of the whole day arrives inverted.
        label = 1 - label
    batch = pd.DataFrame(
        {
            "customer_id": c["customer_id"],
            "event_ts": c["event_ts"],
            "age": out["age"],
            "income": out["income"],
            "credit_limit": out["credit_limit"],
            "utilization": out["utilization"],
            "logins_30d": out["logins_30d"],
            "avg_spend_30d": out["avg_spend_30d"],
            "txn_count_30d": c["txn_count"].astype("int64"),
            "days_since_last_payment": c["days_since"],
            "num_late_payments_12m": c["late"],
            "tenure_months": c["tenure"],
            "region": c["region"].astype(object),
            "product": c["product"].astype(object),
            "employment": c["employment"].astype(object),
        }
    )
    labels = pd.DataFrame({"customer_id": c["customer_id"], "default": label})
    return DayFrames(batch=batch, labels=labels)


def simulate(
    settings: Settings,
    start: str | None = None,
    days: int | None = None,
    scenario: Scenario | None = None,
    scenario_start: str | None = None,
    rows: int | None = None,
    scenario_end: str | None = None,
) -> dict[str, object]:
    """Write daily batches for [start, start+days) and every label matured by the last day.

    Idempotent: a file whose bytes would not change is left untouched. ``scenario_end``: first
    day the scenario no longer applies (default: never ends).
    """
    sp = settings.params.simulate
    if settings.params.data.source != "simulated":
        raise PipelineError(
            f"data.source is {settings.params.data.source!r} in params.yaml: simulate writes only when it is "
            "'simulated', never into your own data folders"
        )
    first = parse_date(start or sp.start)
    n_days = days if days is not None else sp.days
    if n_days < 1:
        raise PipelineError(f"days must be at least 1, got {n_days}")
    scen: Scenario = scenario or sp.scenario
    if scen not in SCENARIOS:
        raise PipelineError(f"unknown scenario {scen!r} ({', '.join(SCENARIOS)})")
    sc_start_raw = scenario_start if scenario_start is not None else sp.scenario_start
    sc_start = parse_date(sc_start_raw) if sc_start_raw else first
    sc_end = parse_date(scenario_end) if scenario_end else None
    n_rows = rows if rows is not None else sp.rows_per_day
    if n_rows < 1:
        raise PipelineError(f"rows per day must be at least 1, got {n_rows}")
    delay = sp.label_delay_days
    last = first + timedelta(days=n_days - 1)

    written_batches = []
    for day in (first + timedelta(days=i) for i in range(n_days)):
        if not no_batch(day, scen, sc_start):  # an upstream outage lands nothing
            write_parquet(generate_day(day, n_rows, sp.seed, scen, sc_start, sc_end).batch, settings.raw_dir / f"{day}.parquet")
            written_batches.append(day)

    # Labels mature `delay` days after the event; "today" is the last simulated day.
    written_labels = []
    day = first - timedelta(days=delay)
    while day <= last - timedelta(days=delay):
        if (settings.raw_dir / f"{day.isoformat()}.parquet").is_file() and not no_batch(day, scen, sc_start, "label_stop"):
            frames = generate_day(day, n_rows, sp.seed, scen, sc_start, sc_end)
            write_parquet(frames.labels, settings.labels_dir / f"{day.isoformat()}.parquet")
            written_labels.append(day)
        day += timedelta(days=1)

    return {
        "scenario": scen,
        "batches": [d.isoformat() for d in written_batches],
        "labels": [d.isoformat() for d in written_labels],
        "raw_dir": str(settings.raw_dir),
        "labels_dir": str(settings.labels_dir),
    }
