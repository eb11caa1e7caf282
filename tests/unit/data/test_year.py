"""The year's calendar in the simulator: every story on one feed, an outage that lands nothing."""

from __future__ import annotations

from datetime import date, timedelta

from pipelines.data.simulate import generate_day, no_batch, simulate
from pipelines.data.year import BAD_RETRAIN_AT, SERVED_DAYS, YEARS, events_on
from pipelines.ops.year_check import regime

START = date(2026, 4, 1)


def test_every_story_is_on_both_calendars_after_a_quiet_start() -> None:
    for year, events in YEARS.items():
        kinds = [e.kind for e in events]
        assert set(kinds) == {
            "login_policy", "null_spike", "skew", "concept_drift", "label_flip", "flapping", "label_stop", "outage",
            "new_column", "renamed_column",
        }, year
        assert events_on(year, -1) == [] and events_on(year, events[0].start - 1) == []  # the stable stretch
        assert all(e.start + (e.days or 1) <= SERVED_DAYS[year] for e in events), year
        flip = next(e for e in events if e.kind == "label_flip")
        assert BAD_RETRAIN_AT[year] >= flip.start + flip.days  # the scheduled retrain comes after the flipped days
    assert SERVED_DAYS["year"] == 365 and YEARS["year"][0].start == 90  # a stable quarter


def test_lasting_changes_split_the_year_into_regimes() -> None:
    assert [regime("year_short", o) for o in (-5, 0, 14, 15, 35, 36, 75)] == [0, 0, 0, 1, 1, 2, 2]


def test_a_year_day_carries_the_events_in_force() -> None:
    day = lambda o: START + timedelta(days=o)  # noqa: E731
    quiet, shifted = generate_day(day(14), 2000, 42, "year_short", START), generate_day(day(15), 2000, 42, "year_short", START)
    assert quiet.batch["logins_30d"].mean() > 2.5 * shifted.batch["logins_30d"].mean()  # each login counts for three
    spike = generate_day(day(30), 2000, 42, "year_short", START)
    assert spike.batch["income"].isna().mean() > 0.4 and quiet.batch["income"].isna().mean() < 0.05
    clean, flipped = generate_day(day(51), 2000, 42, "year_short", START), generate_day(day(52), 2000, 42, "year_short", START)
    assert flipped.labels["default"].mean() > 0.7 and clean.labels["default"].mean() < 0.3  # the feed arrives inverted
    added, renamed = generate_day(day(74), 300, 42, "year_short", START), generate_day(day(75), 300, 42, "year_short", START)
    assert set(added.batch.columns) - set(quiet.batch.columns) == {"referral_code"}
    assert "tenure" in renamed.batch.columns and "tenure_months" not in renamed.batch.columns
    # the same day with no calendar started is the stable world of the story, identical whatever follows
    before = generate_day(START - timedelta(days=3), 500, 42, "year_short", START)
    assert before.batch.equals(generate_day(START - timedelta(days=3), 500, 42, "year", START).batch)


def test_an_outage_lands_no_batch_and_no_label(settings) -> None:
    outage = START + timedelta(days=71)
    assert no_batch(outage, "year_short", START) and not no_batch(outage - timedelta(days=1), "year_short", START)
    res = simulate(settings, start=(outage - timedelta(days=1)).isoformat(), days=5, scenario="year_short",
                   scenario_start=START.isoformat(), rows=200)
    landed = [date.fromisoformat(d) for d in res["batches"]]
    assert landed == [outage - timedelta(days=1), outage + timedelta(days=3)]
    assert not (settings.raw_dir / f"{outage}.parquet").exists() and not (settings.labels_dir / f"{outage}.parquet").exists()
    stopped = START + timedelta(days=64)  # the label feed stops: the batch lands, its label never does
    before = stopped - timedelta(days=1)
    res = simulate(settings, start=before.isoformat(), days=10, scenario="year_short", scenario_start=START.isoformat(), rows=200)
    assert stopped.isoformat() in res["batches"] and res["labels"] == [before.isoformat()]  # labels mature 7 days late
    assert (settings.raw_dir / f"{stopped}.parquet").exists() and not (settings.labels_dir / f"{stopped}.parquet").exists()
