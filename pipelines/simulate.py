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

import numpy as np
import pandas as pd

from pipelines.config import Scenario, Settings
from pipelines.errors import PipelineError
from pipelines.io import parse_date, write_parquet

SCENARIOS = ("stable", "feature_drift", "concept_drift", "data_quality", "skew")
REGIONS = ["north", "south", "east", "west", "central"]
PRODUCTS = ["basic", "gold", "platinum"]
EMPLOYMENT = ["employed", "self_employed", "unemployed", "retired", "student"]


@dataclass(frozen=True)
class DayFrames:
    batch: pd.DataFrame  # what lands in production: no label
    labels: pd.DataFrame  # id + label, available only after the delay


def _rng(seed: int, day: date, stream: int) -> np.random.Generator:
    return np.random.default_rng([seed, day.toordinal(), stream])


def generate_day(
    day: date,
    rows: int,
    seed: int,
    scenario: Scenario = "stable",
    scenario_start: date | None = None,
) -> DayFrames:
    """Generate one day's batch and labels (pure: same arguments, same frames)."""
    rng = _rng(seed, day, 0)
    n = rows
    active = scenario != "stable" and (scenario_start is None or day >= scenario_start)

    customer_id = rng.choice(9_000_000, size=n, replace=False).astype("int64") + 1_000_000
    seconds = np.sort(rng.integers(0, 86_400, size=n))
    event_ts = pd.Timestamp(datetime(day.year, day.month, day.day)) + pd.to_timedelta(seconds, unit="s")
    age = np.clip(rng.normal(42, 13, n), 18, 90).astype("int64")
    income = np.round(rng.lognormal(np.log(55_000), 0.5, n), 2)
    tenure = np.clip(((age - 18) * 12 * rng.random(n)).astype("int64"), 0, 480)
    credit_limit = np.round(np.clip(income * rng.uniform(0.1, 0.4, n), 500, 100_000), 0)
    utilization = np.round(rng.beta(2, 5, n), 4)
    activity = rng.gamma(2.0, 0.5, n)
    true_logins = rng.poisson(25 * activity)
    avg_spend = np.round(credit_limit * utilization / 30 * rng.uniform(0.8, 1.2, n), 2)
    txn_count = rng.poisson(10 + 0.5 * true_logins)
    days_since = np.clip(rng.exponential(15, n), 0, 120).astype("int64")
    late = np.clip(rng.poisson(0.3 + 1.5 * utilization**2), 0, 12).astype("int64")
    region = rng.choice(REGIONS, n, p=[0.25, 0.25, 0.2, 0.2, 0.1])
    product = rng.choice(PRODUCTS, n, p=[0.6, 0.3, 0.1])
    employment = rng.choice(EMPLOYMENT, n, p=[0.6, 0.15, 0.08, 0.1, 0.07])
    label_noise = rng.random(n)

    # The label depends on the customer's real behaviour (true logins), not on how logins
    # are counted: a login-policy change moves the feature but not the risk.
    z = (
        -3.0
        + 3.0 * utilization
        + 0.45 * late
        + 0.012 * days_since
        - 0.025 * true_logins
        - 0.5 * np.log(income / 55_000)
        + np.select([employment == "unemployed", employment == "student"], [0.9, 0.4], 0.0)
        + np.where(product == "platinum", -0.4, 0.0)
    )
    logins = true_logins.astype("int64")
    income_out = income.astype("float64")
    age_out = age.copy()
    util_out = utilization.copy()
    if active:
        srng = _rng(seed, day, 1)
        if scenario == "feature_drift":
            # A login-policy change (longer sessions) cuts counted logins to about a third.
            logins = srng.binomial(true_logins, 0.35).astype("int64")
        elif scenario == "concept_drift":
            # Same inputs, new relationship: utilisation and logins now point the other way.
            z = (
                -2.0
                - 2.5 * utilization
                + 0.03 * true_logins
                - 0.5 * np.log(income / 55_000)
                + np.where(product == "basic", 0.6, -0.3)
            )
        elif scenario == "skew":
            # Training-serving skew: the serving job sends today's spend where the model was
            # trained on the 30-day average (same mean, half the days zero, far wider spread).
            avg_spend = np.round(avg_spend * 2.0 * srng.exponential(1.0, n) * (srng.random(n) < 0.5), 2)
        elif scenario == "data_quality":
            income_out[srng.random(n) < 0.5] = np.nan  # null spike: ~1 % -> 50 %
            age_out[srng.random(n) < 0.03] = 150  # out of range
            util_out[srng.random(n) < 0.02] = -0.5  # out of range
    label = (label_noise < 1 / (1 + np.exp(-z))).astype("int64")

    batch = pd.DataFrame(
        {
            "customer_id": customer_id,
            "event_ts": event_ts,
            "age": age_out,
            "income": income_out,
            "credit_limit": credit_limit,
            "utilization": util_out,
            "logins_30d": logins,
            "avg_spend_30d": avg_spend,
            "txn_count_30d": txn_count.astype("int64"),
            "days_since_last_payment": days_since,
            "num_late_payments_12m": late,
            "tenure_months": tenure,
            "region": region.astype(object),
            "product": product.astype(object),
            "employment": employment.astype(object),
        }
    )
    labels = pd.DataFrame({"customer_id": customer_id, "default": label})
    return DayFrames(batch=batch, labels=labels)


def simulate(
    settings: Settings,
    start: str | None = None,
    days: int | None = None,
    scenario: Scenario | None = None,
    scenario_start: str | None = None,
    rows: int | None = None,
) -> dict[str, object]:
    """Write daily batches for [start, start+days) and every label matured by the last day.

    Idempotent: a file whose bytes would not change is left untouched.
    """
    sp = settings.p.simulate
    if settings.p.data.raw_dir != "data/raw" or settings.p.data.labels_dir != "data/labels":
        raise PipelineError(
            "params.yaml points data.raw_dir/labels_dir at your own data; simulate only writes "
            "to data/raw and data/labels (set them back to use simulated data)"
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
    n_rows = rows if rows is not None else sp.rows_per_day
    delay = sp.label_delay_days
    last = first + timedelta(days=n_days - 1)

    written_batches = []
    for i in range(n_days):
        day = first + timedelta(days=i)
        frames = generate_day(day, n_rows, sp.seed, scen, sc_start)
        write_parquet(frames.batch, settings.raw_dir / f"{day.isoformat()}.parquet")
        written_batches.append(day)

    # Labels mature `delay` days after the event; "today" is the last simulated day.
    written_labels = []
    day = first - timedelta(days=delay)
    while day <= last - timedelta(days=delay):
        if (settings.raw_dir / f"{day.isoformat()}.parquet").is_file():
            frames = generate_day(day, n_rows, sp.seed, scen, sc_start)
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
