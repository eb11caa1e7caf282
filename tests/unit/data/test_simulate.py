from datetime import date

import pandas as pd
import pytest

from pipelines.data.simulate import generate_day, simulate
from pipelines.errors import PipelineError

DAY = date(2026, 3, 1)


def test_same_seed_same_day_is_identical() -> None:
    a, b = generate_day(DAY, 500, 7), generate_day(DAY, 500, 7)
    pd.testing.assert_frame_equal(a.batch, b.batch)
    pd.testing.assert_frame_equal(a.labels, b.labels)
    assert not generate_day(DAY, 500, 8).batch.equals(a.batch)


def test_batch_has_roles_and_no_label() -> None:
    f = generate_day(DAY, 300, 1)
    assert "default" not in f.batch.columns
    assert f.batch["customer_id"].is_unique
    assert (f.batch["event_ts"].dt.date == DAY).all()
    assert set(f.labels.columns) == {"customer_id", "default"}
    assert 0.02 < f.labels["default"].mean() < 0.4


def test_feature_drift_lowers_logins_from_its_start_only() -> None:
    before = generate_day(DAY, 2000, 1, "feature_drift", scenario_start=date(2026, 3, 2))
    stable = generate_day(DAY, 2000, 1, "stable")
    pd.testing.assert_frame_equal(before.batch, stable.batch)
    after = generate_day(DAY, 2000, 1, "feature_drift", scenario_start=DAY)
    assert after.batch["logins_30d"].mean() < 0.5 * stable.batch["logins_30d"].mean()
    pd.testing.assert_series_equal(after.batch["income"], stable.batch["income"])


def test_data_quality_injects_nulls_and_out_of_range() -> None:
    f = generate_day(DAY, 2000, 1, "data_quality", scenario_start=DAY)
    assert f.batch["income"].isna().mean() > 0.4
    assert (f.batch["age"] == 150).any() and (f.batch["utilization"] < 0).any()


def test_concept_drift_changes_labels_not_inputs() -> None:
    stable = generate_day(DAY, 2000, 1, "stable")
    cd = generate_day(DAY, 2000, 1, "concept_drift", scenario_start=DAY)
    pd.testing.assert_frame_equal(cd.batch, stable.batch)
    assert not cd.labels["default"].equals(stable.labels["default"])


def test_story_scenarios_keep_the_default_world_and_apply_in_their_window() -> None:
    stable = generate_day(DAY, 2000, 1, "stable")
    # scenarios without a world of their own equal `stable` outside their window
    for scen in ("label_flip", "flapping", "skew"):
        outside = generate_day(DAY, 2000, 1, scen, scenario_start=date(2026, 2, 1), scenario_end=date(2026, 2, 28))
        pd.testing.assert_frame_equal(outside.batch, stable.batch)
        pd.testing.assert_frame_equal(outside.labels, stable.labels)
    ended = generate_day(DAY, 2000, 1, "skew", scenario_start=date(2026, 2, 1), scenario_end=DAY)
    pd.testing.assert_frame_equal(ended.batch, stable.batch)


def test_login_policy_shifts_the_feature_not_the_customers() -> None:
    before = generate_day(DAY, 2000, 1, "login_policy", scenario_start=date(2026, 3, 2))
    after = generate_day(DAY, 2000, 1, "login_policy", scenario_start=DAY)
    assert after.batch["logins_30d"].mean() < 0.4 * before.batch["logins_30d"].mean()
    pd.testing.assert_frame_equal(after.labels, before.labels)  # same risk: only the counting changed
    pd.testing.assert_series_equal(after.batch["income"], before.batch["income"])
    assert 0.05 < before.labels["default"].mean() < 0.25


def test_null_spike_and_label_flip() -> None:
    usual = generate_day(DAY, 4000, 1, "null_spike", scenario_start=date(2026, 3, 2))
    spike = generate_day(DAY, 4000, 1, "null_spike", scenario_start=DAY)
    assert 0.003 < usual.batch["income"].isna().mean() < 0.02
    assert 0.45 < spike.batch["income"].isna().mean() < 0.56
    assert spike.batch.drop(columns="income").equals(usual.batch.drop(columns="income"))
    clean = generate_day(DAY, 2000, 1, "stable")
    flipped = generate_day(DAY, 2000, 1, "label_flip", scenario_start=DAY)
    pd.testing.assert_frame_equal(flipped.batch, clean.batch)
    assert (flipped.labels["default"] == 1 - clean.labels["default"]).all()


def test_flapping_shifts_every_other_day() -> None:
    days = [date(2026, 3, d) for d in range(1, 5)]
    means = [generate_day(d, 2000, 1, "flapping", scenario_start=days[0]).batch["logins_30d"].mean() for d in days]
    base = [generate_day(d, 2000, 1, "stable").batch["logins_30d"].mean() for d in days]
    lowered = [m < 0.75 * b for m, b in zip(means, base, strict=True)]
    assert lowered in ([True, False, True, False], [False, True, False, True])
    assert all(m < b for m, b in zip(means, base, strict=True))


def test_simulate_writes_matured_labels_only(settings) -> None:
    res = simulate(settings, start="2026-01-01", days=10, rows=200)
    assert len(res["batches"]) == 10
    # delay 7: labels mature for days 1..3 by "today" = day 10
    assert res["labels"] == ["2026-01-01", "2026-01-02", "2026-01-03"]
    mtime = (settings.raw_dir / "2026-01-01.parquet").stat().st_mtime_ns
    simulate(settings, start="2026-01-01", days=10, rows=200)  # idempotent: unchanged files untouched
    assert (settings.raw_dir / "2026-01-01.parquet").stat().st_mtime_ns == mtime


def test_simulate_rejects_unknown_scenario(settings) -> None:
    with pytest.raises(PipelineError, match="unknown scenario"):
        simulate(settings, days=1, scenario="meteor", rows=10)  # type: ignore[arg-type]


def test_a_day_bigger_than_the_id_population_gets_distinct_ids(monkeypatch: pytest.MonkeyPatch) -> None:
    # `simulate --rows 10000000` used to fail inside numpy ("Cannot take a larger sample than
    # population"): the ids were drawn from 9 M. Shrink the population to prove the rule cheaply.
    import pipelines.data.simulate as sim

    small = sim.generate_day(DAY, 300, 5)
    monkeypatch.setattr(sim, "ID_POPULATION", 200)
    big = sim.generate_day(DAY, 300, 5)
    assert big.batch["customer_id"].is_unique and len(big.batch) == 300
    monkeypatch.setattr(sim, "ID_POPULATION", 9_000_000)
    pd.testing.assert_frame_equal(sim.generate_day(DAY, 300, 5).batch, small.batch)  # below it: the same draws as ever


def test_simulate_refuses_when_the_source_is_your_files(settings) -> None:
    from pipelines.config import Settings

    own = Settings(
        settings.params.model_copy(update={"data": settings.params.data.model_copy(update={"source": "files"})}), settings.root
    )
    with pytest.raises(PipelineError, match=r"data\.source is 'files'"):
        simulate(own, days=1)
    with pytest.raises(PipelineError, match="rows per day must be at least 1"):
        simulate(settings, days=1, rows=0)
