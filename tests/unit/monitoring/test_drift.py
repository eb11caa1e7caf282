import math
from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest

from pipelines.config import DriftParams
from pipelines.data.simulate import generate_day
from pipelines.model.features import model_input
from pipelines.model.profile import EMPTY_BIN, Accumulator, bin_categorical, bin_numeric, build_profile, psi, quantile_edges
from pipelines.monitoring.decision import drifted_features, performance_alarm, retrain_decision
from pipelines.monitoring.report import write_report

D = date(2026, 1, 10)


def test_psi_hand_computed() -> None:
    assert psi([50, 50], [50, 50]) == 0.0
    expected = (0.9 - 0.5) * math.log(0.9 / 0.5) + (0.1 - 0.5) * math.log(0.1 / 0.5)
    assert psi([50, 50], [90, 10]) == pytest.approx(expected, abs=1e-12)
    # an empty bin gets EMPTY_BIN, not zero: finite
    expected_empty = (EMPTY_BIN - 0.5) * math.log(EMPTY_BIN / 0.5) + (1 - 0.5) * math.log(1 / 0.5)
    assert psi([1, 1], [0, 10]) == pytest.approx(expected_empty, abs=1e-12)


def test_bins_are_frozen_and_exhaustive() -> None:
    v = np.arange(100, dtype="float64")
    edges = quantile_edges(v, 4)
    assert len(edges) == 3
    counts = bin_numeric(np.array([-1e9, 1e9, np.nan, 50.0]), edges)
    assert counts.sum() == 3 and counts[0] == 1 and counts[-1] == 1  # nulls are counted apart
    assert bin_categorical(pd.Series(["a", "b", "zz", None]), ["a", "b"]).tolist() == [1, 1, 1]


def test_streamed_counts_equal_one_pass(settings) -> None:
    ref = model_input(generate_day(D, 3000, 1).batch, settings.params.data)
    prof = build_profile(ref, np.linspace(0, 1, len(ref)), settings.params.data, 10)
    cur = model_input(generate_day(date(2026, 1, 11), 2500, 1).batch, settings.params.data)
    one, many = Accumulator(prof), Accumulator(prof)
    one.add(cur)
    for i in range(0, len(cur), 333):
        many.add(cur.iloc[i : i + 333])
    assert {c: r["psi"] for c, r in one.result().items()} == {c: r["psi"] for c, r in many.result().items()}


def test_arrow_batches_count_like_dataframes(settings, tmp_path) -> None:
    """The drift job streams pyarrow RecordBatches (no DataFrame per chunk): same counts,
    nulls and PSI as the DataFrame path, with nulls, integer columns and dictionary strings."""
    from pipelines.model.profile import stream_batches

    ref = model_input(generate_day(D, 3000, 1).batch, settings.params.data)
    prof = build_profile(ref, np.zeros(len(ref)), settings.params.data, 10)
    cur = model_input(generate_day(date(2026, 1, 11), 2500, 1).batch, settings.params.data)
    cur.loc[::7, "income"] = np.nan
    cur.loc[::11, "region"] = None
    cur.loc[::13, "region"] = "atlantis"  # unseen category
    cur["age"] = cur["age"].round().astype("Int64")  # integer column with nulls
    cur.loc[::17, "age"] = pd.NA
    path = tmp_path / "cur.parquet"
    cur.to_parquet(path)
    frames, batches = Accumulator(prof), Accumulator(prof)
    frames.add(cur)
    for batch in stream_batches(path, list(batches.counts), 400):
        assert not isinstance(batch, pd.DataFrame)
        batches.add(batch)
    assert batches.rows == frames.rows == len(cur)
    assert {c: v.tolist() for c, v in batches.counts.items()} == {c: v.tolist() for c, v in frames.counts.items()}
    assert batches.nulls == frames.nulls and batches.nulls["income"] > 0 and batches.nulls["age"] > 0
    assert batches.counts["region"][-1] > 0  # the unseen bin
    assert batches.result() == frames.result()


def test_code_typed_categoricals_count_like_the_profile(tmp_path) -> None:
    """Integer and boolean categoricals with nulls: the profile holds str() of each value
    ("1", "True"); an Arrow batch must not turn 1 into "1.0" because the column has nulls."""
    from pipelines.config import DataParams
    from pipelines.model.profile import stream_batches

    data = DataParams(numerical=["x"], categorical=["code", "flag"])
    ref = pd.DataFrame({"x": np.arange(100.0), "code": pd.array([1, 2, 3, 1] * 25, dtype="Int64"),
                        "flag": pd.array([True, False] * 50, dtype="boolean")})
    prof = build_profile(ref, np.zeros(100), data, 4)
    assert prof["categorical"]["code"]["categories"] == ["1", "2", "3"]
    cur = pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0], "code": pd.array([1, None, 2, 9], dtype="Int64"),
                        "flag": pd.array([True, None, False, True], dtype="boolean")})
    cur.to_parquet(tmp_path / "cur.parquet")
    acc = Accumulator(prof)
    for batch in stream_batches(tmp_path / "cur.parquet", list(acc.counts), 10):
        acc.add(batch)
    assert acc.counts["code"].tolist() == [1, 1, 0, 1]  # 9 is unseen; the null is apart
    assert acc.counts["flag"].tolist() == [1, 2, 0] and acc.nulls == {"x": 0, "code": 1, "flag": 1}


def test_unreadable_batch_is_a_clear_error(tmp_path) -> None:
    from pipelines.errors import PipelineError
    from pipelines.model.profile import stream_batches

    (tmp_path / "bad.parquet").write_text("not parquet")
    with pytest.raises(PipelineError, match=r"bad\.parquet is not a readable Parquet file"):
        list(stream_batches(tmp_path / "bad.parquet", ["x"], 10))


def test_missing_column_is_a_clear_error(settings) -> None:
    from pipelines.errors import PipelineError

    ref = model_input(generate_day(D, 500, 1).batch, settings.params.data)
    acc = Accumulator(build_profile(ref, np.zeros(len(ref)), settings.params.data, 10))
    with pytest.raises(PipelineError, match="lacks columns of the reference profile: \\['logins_30d'\\]"):
        acc.add(ref.drop(columns=["logins_30d"]))


def _decide(drifted, history, trained=date(2026, 1, 1), in_flight=False, k=2, cooldown=3):
    psi_values = {"logins_30d": 1.2, "age": 0.01}
    return retrain_decision(
        D,
        drifted,
        psi_values,
        history,
        "1",
        trained,
        in_flight,
        DriftParams(psi_threshold=0.2, consecutive_windows=k, cooldown_days=cooldown, min_labelled_drifted_days=0),
    )


def test_stable_day_never_retrains() -> None:
    d = _decide([], [])
    assert not d["retrain"] and d["reason"] == "no feature has PSI above 0.2"


def test_k_consecutive_windows() -> None:
    first = _decide(["logins_30d"], [{"day": "2026-01-09", "champion_version": "1", "drifted_features": []}])
    assert not first["retrain"] and "1 day(s) in a row, 2 needed" in first["reason"]
    second = _decide(["logins_30d"], [{"day": "2026-01-09", "champion_version": "1", "drifted_features": ["logins_30d"]}])
    assert second["retrain"] and "logins_30d (1.200)" in second["reason"]
    other_champion = _decide(["logins_30d"], [{"day": "2026-01-09", "champion_version": "0", "drifted_features": ["x"]}])
    assert not other_champion["retrain"]


def test_cooldown_and_in_flight() -> None:
    hist = [{"day": "2026-01-09", "champion_version": "1", "drifted_features": ["logins_30d"]}]
    cool = _decide(["logins_30d"], hist, trained=date(2026, 1, 8))
    assert not cool["retrain"] and "cooldown" in cool["reason"]
    busy = _decide(["logins_30d"], hist, in_flight=True)
    assert not busy["retrain"] and "already in flight" in busy["reason"]


def test_retrain_waits_for_labels_of_the_days_since_the_shift() -> None:
    """A retrain before the shifted days' labels matured would learn the old regime only."""
    hist = [{"day": f"2026-01-0{i}", "champion_version": "1", "drifted_features": ["logins_30d"]} for i in range(5, 10)]
    params = DriftParams(psi_threshold=0.2, consecutive_windows=2, cooldown_days=0, min_labelled_drifted_days=3)
    psi_values = {"logins_30d": 1.2}
    labelled = [f"2026-01-0{i}" for i in range(1, 10)]  # every day of the month so far, before the shift too
    early = retrain_decision(D, ["logins_30d"], psi_values, hist, "1", None, False, params, None, labelled[:6])
    assert not early["retrain"] and early["streak"] == 6 and early["shift_start"] == "2026-01-05"
    assert early["labelled_drifted_days"] == 2  # 05 and 06: the labels before the shift do not count
    assert "waiting for labels: 2 day(s) since the shift began have matured, 3 needed" in early["reason"]
    ready = retrain_decision(D, ["logins_30d"], psi_values, hist, "1", None, False, params, None, labelled[:7])
    assert ready["retrain"] and ready["labelled_drifted_days"] == 3
    unknown = retrain_decision(D, ["logins_30d"], psi_values, hist, "1", None, False, params, None, None)
    assert not unknown["retrain"]  # no label matured at all
    off = retrain_decision(
        D, ["logins_30d"], psi_values, hist, "1", None, False, params.model_copy(update={"min_labelled_drifted_days": 0})
    )
    assert off["retrain"]


def test_a_champion_that_learned_a_shift_from_its_first_days_is_refreshed_as_they_grow() -> None:
    """Trained on 7 days since the shift (plus a 3-day holdout): a refresh is due at 20
    labelled days since it began, requested with no drift, and held only by the cooldown."""
    from pipelines.monitoring.decision import window_grown

    shift, day = date(2026, 3, 1), date(2026, 3, 31)
    labelled = [(date(2026, 2, 20) + timedelta(days=i)).isoformat() for i in range(30)]  # 02-20 .. 03-21
    since = [d for d in labelled if d >= shift.isoformat()]
    assert window_grown(day, shift.isoformat(), 7, since[:19], 30, 3) is None
    why = window_grown(day, shift.isoformat(), 7, labelled[:29], 30, 3)  # 20 since the shift; those before do not count
    assert why == "the window grew: the champion learned the shift since 2026-03-01 from 7 day(s), 20 labelled day(s) since"
    assert window_grown(day, shift.isoformat(), 20, labelled, 30, 3) is None  # 21 since < 33, a whole window
    assert window_grown(day, None, 7, labelled, 30, 3) is None  # a usual window: the schedule's business
    assert window_grown(day, shift.isoformat(), 30, labelled, 30, 3) is None  # already a whole window
    assert window_grown(day, shift.isoformat(), 29, labelled, 30, 3) is None  # a day more is no refresh

    params = DriftParams(psi_threshold=0.2, consecutive_windows=2, cooldown_days=7, min_labelled_drifted_days=10)
    d = retrain_decision(day, [], {"age": 0.01}, [], "2", date(2026, 3, 10), False, params, None, labelled, None, why)
    assert d["retrain"] and d["refresh"] == why and d["reason"] == why and d["shift_start"] is None
    held = retrain_decision(day, [], {"age": 0.01}, [], "2", date(2026, 3, 28), False, params, None, labelled, None, why)
    assert not held["retrain"] and held["reason"].startswith(why + " - not retraining: cooldown")
    hist = [{"day": "2026-03-20", "champion_version": "2", "drifted_features": [], "refresh": why, "retrain": True}]
    again = retrain_decision(day, [], {"age": 0.01}, hist, "2", date(2026, 3, 10), False, params, None, labelled, None, why)
    assert not again["retrain"]
    assert "a refresh was requested on 2026-03-20 for this champion: once per champion" in again["reason"]


def test_a_blocked_retrain_is_not_requested_again_within_the_cooldown() -> None:
    hist = [
        {"day": "2026-01-08", "champion_version": "1", "drifted_features": ["logins_30d"], "retrain": True},
        {"day": "2026-01-09", "champion_version": "1", "drifted_features": ["logins_30d"], "retrain": False},
    ]
    again = _decide(["logins_30d"], hist, cooldown=3)
    assert not again["retrain"] and "a retrain was requested on 2026-01-08 for this champion" in again["reason"]
    assert _decide(["logins_30d"], hist, cooldown=2)["retrain"]  # 2 days later: requested again
    other = [{**h, "champion_version": "0"} for h in hist] + [
        {"day": "2026-01-09", "champion_version": "1", "drifted_features": ["x"]}
    ]
    assert _decide(["logins_30d"], other, cooldown=3)["retrain"]  # a new champion starts afresh


def test_a_feature_with_no_values_left_is_drifted_first() -> None:
    # PSI is NaN only when the batch has no non-null value of the feature: the loudest drift
    psi_values = {"age": 0.01, "income": float("nan"), "logins_30d": 1.2}
    assert drifted_features(psi_values, 0.2) == ["income", "logins_30d"]
    d = retrain_decision(
        D, ["income"], psi_values, [], "1", None, False, DriftParams(
            psi_threshold=0.2, consecutive_windows=1, cooldown_days=0, min_labelled_drifted_days=0
        )
    )
    assert d["retrain"] and "income (all null)" in d["reason"]


def test_drifted_features_worst_first() -> None:
    assert drifted_features({"a": 0.3, "b": 0.9, "c": 0.1}, 0.2) == ["b", "a"]


def test_report_shows_exactly_our_numbers(tmp_path) -> None:
    rng = np.random.default_rng(0)
    ref = pd.DataFrame({"a": rng.normal(size=500), "b": rng.choice(["x", "y"], 500)})
    cur = pd.DataFrame({"a": rng.normal(size=300) + 2, "b": rng.choice(["x", "y"], 300)})
    ours = {"a": 1.234567890123, "b": 0.000123456789}
    shown = write_report(cur, ref, ours, 0.2, tmp_path / "r.html")
    assert shown == ours
    assert (tmp_path / "r.html").stat().st_size > 10_000


def test_importance_shares() -> None:
    from pipelines.model.profile import importance_shares

    assert importance_shares({"a": 0.03, "b": 0.01, "c": -0.002}) == {"a": 0.75, "b": 0.25, "c": 0.0}
    assert importance_shares({"a": 0.0, "b": -0.1}) == {"a": 0.5, "b": 0.5}  # nothing matters more


def test_profile_stores_importance_shares(settings) -> None:
    ref = model_input(generate_day(D, 500, 1).batch, settings.params.data)
    raw = dict.fromkeys(settings.params.data.features, 0.0) | {"logins_30d": 0.02, "income": 0.06}
    prof = build_profile(ref, np.zeros(len(ref)), settings.params.data, 10, raw)
    assert prof["importance"]["income"] == 0.75 and prof["importance"]["logins_30d"] == 0.25
    assert "importance" not in build_profile(ref, np.zeros(len(ref)), settings.params.data, 10)


def test_drift_in_a_feature_the_model_barely_uses_can_be_ignored() -> None:
    psi_values = {"logins_30d": 1.2, "age": 0.5, "income": float("nan")}
    share = {"logins_30d": 0.004, "age": 0.3, "income": 0.001}
    hist = [{"day": "2026-01-09", "champion_version": "1", "drifted_features": ["age"]}]
    d = retrain_decision(
        D,
        ["income", "logins_30d", "age"],
        psi_values,
        hist,
        "1",
        None,
        False,
        DriftParams(psi_threshold=0.2, consecutive_windows=2, cooldown_days=0, min_importance=0.01, min_labelled_drifted_days=0),
        share,
    )
    # an all-null feature always counts; logins_30d is under the floor: reported, not counted
    assert d["drifted_features"] == ["income", "age"] and d["ignored_features"] == ["logins_30d"]
    assert d["retrain"] and "age (0.500; importance 30.0%)" in d["reason"]
    assert "ignored, under drift.min_importance 1.00%: logins_30d (1.200; importance 0.4%)" in d["reason"]
    def logins_only(floor: float, importance: dict[str, float] | None) -> dict:
        params = DriftParams(psi_threshold=0.2, consecutive_windows=1, cooldown_days=0, min_importance=floor,
                                min_labelled_drifted_days=0)
        return retrain_decision(D, ["logins_30d"], psi_values, hist, "1", None, False, params, importance)

    only = logins_only(0.01, share)
    assert not only["retrain"] and only["streak"] == 0 and "only on features under drift.min_importance" in only["reason"]
    off = logins_only(0.0, share)
    assert off["retrain"] and off["ignored_features"] == []  # the default floor (0) counts every feature
    old = logins_only(0.01, None)
    assert old["retrain"] and "min_importance not applied: this champion's profile has no importance" in old["reason"]


def test_in_flight_brake_names_the_run(tmp_path) -> None:
    from pipelines.monitoring.inflight import in_flight

    marker = tmp_path / "m"
    assert in_flight(marker) is False
    marker.write_text('{"run_id": "manual__2026-01-10"}')
    what = in_flight(marker)
    assert what.startswith("training run manual__2026-01-10 since ") and str(marker) in what
    hist = [{"day": "2026-01-09", "champion_version": "1", "drifted_features": ["logins_30d"]}]
    d = _decide(["logins_30d"], hist, in_flight=what)
    assert not d["retrain"] and "already in flight (training run manual__2026-01-10" in d["reason"]


def test_report_sample_is_drawn_from_the_whole_batch(tmp_path) -> None:
    """A batch sorted by time, with a repeating pattern in row order: the report's sample spans
    it all, does not alias with the pattern, has exactly sample_rows rows, and the counts are
    those of every row."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from pipelines.config import DataParams
    from pipelines.monitoring.drift import stream_counts

    data = DataParams(numerical=["t"], categorical=["c"])
    prof = build_profile(pd.DataFrame({"t": np.arange(1000.0), "c": ["a", "b"] * 500}), np.zeros(1000), data, 4)
    cur = pd.DataFrame({"t": np.arange(10_000.0), "c": ["a", "b"] * 5000})
    pq.write_table(pa.Table.from_pandas(cur), tmp_path / "cur.parquet", row_group_size=700)
    for n in (300, 5000, 6000, 9999):
        per_feature, rows, sample = stream_counts(tmp_path / "cur.parquet", prof, 1000, n)
        drawn = pd.concat(sample, ignore_index=True)
        assert rows == 10_000 and len(drawn) == n and drawn["t"].is_unique
        assert drawn["t"].min() < 10_000 / n and drawn["t"].max() >= 10_000 - 10_000 / n
        assert 0.4 < (drawn["c"] == "a").mean() < 0.6, n  # every k-th row would be all "a"
    whole = Accumulator(prof)
    whole.add(cur)
    assert per_feature == whole.result()
    _, _, everything = stream_counts(tmp_path / "cur.parquet", prof, 1000, 20_000)
    assert pd.concat(everything, ignore_index=True)["t"].tolist() == cur["t"].tolist()  # smaller batch: all rows


def test_sample_positions() -> None:
    from pipelines.monitoring.drift import sample_positions

    p = sample_positions(1_000_003, 20_000)
    assert len(p) == 20_000 and (np.diff(p) > 0).all() and p[0] >= 0 and p[-1] < 1_000_003
    bounds = np.arange(20_001) * 1_000_003 // 20_000
    assert ((bounds[:-1] <= p) & (p < bounds[1:])).all()  # one in each stride
    q = sample_positions(19_000, 10_000)  # strides of 1 or 2 rows: still distinct
    assert len(np.unique(q)) == 10_000 and q[-1] < 19_000
    assert sample_positions(5, 10).tolist() == [0, 1, 2, 3, 4]
    assert (sample_positions(1000, 10) == sample_positions(1000, 10)).all()  # seeded


def test_performance_alarm_needs_k_bad_matured_days_of_the_champion() -> None:
    params = DriftParams(min_live_roc_auc=0.6, max_live_auc_drop=0.1, performance_days=3)
    rec = lambda day, auc, v="2": {"day": day, "model_versions": [v], "live_roc_auc": auc}  # noqa: E731
    good = [rec("2026-01-01", 0.80), rec("2026-01-02", 0.79)]
    assert performance_alarm([*good, rec("2026-01-03", 0.5), rec("2026-01-04", 0.5)], "2", 0.8, params) is None  # 2 of 3
    alarm = performance_alarm([*good, rec("2026-01-05", 0.65), rec("2026-01-03", 0.5), rec("2026-01-04", 0.55)], "2", 0.8, params)
    assert alarm and alarm["days"] == ["2026-01-03", "2026-01-04", "2026-01-05"]  # 0.65 is 0.15 under the holdout AUC
    assert "floor 0.6 / holdout 0.800 - 0.1" in alarm["reason"] and "latest 0.500, 0.550, 0.650" in alarm["reason"]
    assert (
        performance_alarm([rec(f"2026-01-0{i}", 0.4, "1") for i in range(1, 6)], "2", 0.8, params) is None
    )  # another version's days
    off = DriftParams(min_live_roc_auc=0.0, max_live_auc_drop=1.0)
    assert performance_alarm([rec(f"2026-01-0{i}", 0.4) for i in range(1, 6)], "2", 0.8, off) is None  # 0 and 1 turn it off


def test_a_performance_alarm_requests_a_retrain_under_the_same_brakes() -> None:
    alarm = {
        "days": ["2026-01-05", "2026-01-06", "2026-01-07"],
        "reason": "live ROC AUC under floor 0.6 on 3 matured day(s) in a row",
    }
    params = DriftParams(psi_threshold=0.2, consecutive_windows=2, cooldown_days=3, min_labelled_drifted_days=3)
    labelled = [f"2026-01-0{i}" for i in range(5, 10)]
    d = retrain_decision(D, [], {"age": 0.01}, [], "1", date(2026, 1, 1), False, params, None, labelled, alarm)
    assert d["retrain"] and d["reason"].startswith("live performance: live ROC AUC under floor 0.6")
    cool = retrain_decision(D, [], {"age": 0.01}, [], "1", date(2026, 1, 8), False, params, None, labelled, alarm)
    assert not cool["retrain"] and "cooldown" in cool["reason"]
    labelled = [f"2026-01-0{i}" for i in range(1, 10)]
    need5 = params.model_copy(update={"min_labelled_drifted_days": 5})
    early = retrain_decision(D, [], {"age": 0.01}, [], "1", None, False, need5, None, labelled[:6], alarm)
    # the shift began on the alarm's first day: 05 and 06 are labelled since, not the month before
    assert early["shift_start"] == "2026-01-05" and early["labelled_drifted_days"] == 2
    assert not early["retrain"] and "waiting for labels: 2 day(s) since the shift began have matured, 5 needed" in early["reason"]
    assert retrain_decision(D, [], {"age": 0.01}, [], "1", None, False, need5, None, labelled, alarm)["retrain"]
    busy = retrain_decision(D, [], {"age": 0.01}, [], "1", None, "run 7", params, None, labelled, alarm)
    assert not busy["retrain"] and "already in flight" in busy["reason"]


def _dead_owner() -> str:
    """The owner tag of a process that has ended (what a SIGKILLed `make run` leaves in its marker)."""
    import subprocess
    import sys

    return subprocess.run(
        [
            sys.executable,
            "-c",
            "import os, psutil, socket; p = psutil.Process(); print(socket.gethostname(), os.getpid(), f'{p.create_time():.3f}')",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


def test_one_training_runner_per_project(settings, tmp_path) -> None:
    """`make run` holds the training marker as a live process: a DAG run waits for it (here: no
    wait, so it fails naming it); `make run` fails naming a DAG run in flight; a dead process's
    marker is taken over; nobody clears another runner's marker."""
    import json
    import threading

    from pipelines.errors import PipelineError
    from pipelines.monitoring.inflight import claim_in_flight, in_flight_marker, release_in_flight
    from pipelines.tracking import OWNER_TAG, owner_tag

    marker = in_flight_marker(settings)
    claim_in_flight(settings, "of `make run` (pid 1)", process=True, exclusive=True)
    assert json.loads(marker.read_text())[OWNER_TAG] == owner_tag()[OWNER_TAG]
    with pytest.raises(
        PipelineError, match=r"another training run is in flight \(training run of `make run` \(pid 1\) since .*; marker "
    ):
        claim_in_flight(settings, "manual__2026-12-01")
    release_in_flight(settings, "manual__2026-12-01")  # not its marker: left alone
    assert marker.exists()
    # a DAG run that waits gets the marker once `make run` releases it
    threading.Timer(1.0, release_in_flight, (settings, "of `make run` (pid 1)")).start()
    claim_in_flight(settings, "manual__2026-12-01", wait_s=30)
    held = json.loads(marker.read_text())
    assert held["run_id"] == "manual__2026-12-01" and OWNER_TAG not in held and "lease_until" in held  # a DAG run: a lease
    with pytest.raises(PipelineError, match="training run manual__2026-12-01 since"):
        claim_in_flight(settings, "of `make run` (pid 2)", process=True, exclusive=True)
    claim_in_flight(settings, "scheduled__2026-12-02")  # the next DAG run takes over an ended run's marker
    release_in_flight(settings, "scheduled__2026-12-02")
    assert not marker.exists()
    # a `make run` that was SIGKILLed: its marker names a process that is gone
    dead = _dead_owner()
    marker.write_text(json.dumps({"run_id": "of `make run` (pid 3)", OWNER_TAG: dead}))
    from pipelines.monitoring.inflight import in_flight

    assert in_flight(marker) is False  # the drift job's brake does not wait on a dead process either
    claim_in_flight(settings, "of `make run` (pid 4)", process=True, exclusive=True)
    assert json.loads(marker.read_text())["run_id"] == "of `make run` (pid 4)"


def test_two_runners_taking_over_a_dead_marker_do_not_both_get_it(settings, tmp_path) -> None:
    """Runner A finds the marker of a SIGKILLed `make run` and is paused (failpoint) right there;
    runner B takes the marker over meanwhile. A, resumed, must not overwrite B's live marker: it
    fails naming B, as any runner would that came after B."""
    import json
    import os
    import subprocess
    import sys
    import time
    from pathlib import Path

    from pipelines.failpoint import handshake_files
    from pipelines.monitoring.inflight import claim_in_flight, in_flight_marker
    from pipelines.tracking import OWNER_TAG, owner_tag

    repo = Path(__file__).resolve().parents[3]
    marker = in_flight_marker(settings)
    marker.parent.mkdir(parents=True, exist_ok=True)
    dead = _dead_owner()
    marker.write_text(json.dumps({"run_id": "of `make run` (killed)", OWNER_TAG: dead}))
    pause = tmp_path / "failpoints"
    pause.mkdir()
    reached, go = handshake_files("in_flight:takeover", pause)
    env = {
        **os.environ,
        "PYTHONPATH": str(repo),
        "PIPELINES_FAILPOINT": "in_flight:takeover",
        "PIPELINES_FAILPOINT_ACTION": "pause",
        "PIPELINES_FAILPOINT_DIR": str(pause),
        "PIPELINES_FAILPOINT_TIMEOUT": "60",
    }
    code = ("from pipelines.config import load_settings; from pipelines.monitoring.inflight import claim_in_flight; "
            f"claim_in_flight(load_settings({str(settings.root / 'params.yaml')!r}), 'A', process=True, exclusive=True)")
    a = subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not reached.exists() and a.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert reached.exists(), f"runner A never reached the takeover: {a.communicate(timeout=30)}"
        claim_in_flight(settings, "B", process=True, exclusive=True)  # B takes the dead marker over
        go.write_text("")
        _, err = a.communicate(timeout=60)
    finally:
        if a.poll() is None:
            a.kill()
    assert a.returncode != 0 and "another training run is in flight (training run B since" in err, err[-2000:]
    held = json.loads(marker.read_text())
    assert held["run_id"] == "B" and held[OWNER_TAG] == owner_tag()[OWNER_TAG]


def test_many_runners_racing_for_a_dead_marker_leave_exactly_one_holder(settings) -> None:
    """Eight runners find the marker of a SIGKILLed `make run` at once, in 200 rounds, with the GIL
    handed over often so their steps interleave: in each round exactly one of them holds the
    marker at the end and the other seven fail naming it. (The rename-aside takeover that came
    before the lock let two runners go on to train, within a few rounds.)"""
    import json
    import sys
    import threading

    from pipelines.errors import PipelineError
    from pipelines.monitoring.inflight import claim_in_flight, in_flight_marker, release_in_flight
    from pipelines.tracking import OWNER_TAG

    marker = in_flight_marker(settings)
    marker.parent.mkdir(parents=True, exist_ok=True)
    dead = _dead_owner()
    runners = 8
    won: list[str] = []
    lost: list[str] = []

    def run(name: str, start: threading.Barrier) -> None:
        start.wait()
        try:
            claim_in_flight(settings, name, process=True, exclusive=True)
            won.append(name)
        except PipelineError as exc:
            lost.append(str(exc))

    switch = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        for round_ in range(200):
            marker.write_text(json.dumps({"run_id": "of `make run` (killed)", OWNER_TAG: dead}))
            won.clear()
            lost.clear()
            start = threading.Barrier(runners)
            threads = [threading.Thread(target=run, args=(f"R{round_}.{i}", start)) for i in range(runners)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=60)
            holder = json.loads(marker.read_text())["run_id"]
            assert won == [holder], f"round {round_}: {won} all went on to train; the marker names {holder}"
            assert len(lost) == runners - 1 and all(f"training run {holder} since" in m for m in lost), lost
            release_in_flight(settings, holder)
    finally:
        sys.setswitchinterval(switch)
    assert not marker.exists()
    assert not [p.name for p in marker.parent.iterdir() if p.name.endswith(".tmp")]  # no temporary left behind


def test_labels_are_overdue_from_the_day_the_first_missing_one_was_due() -> None:
    """A label feed that stops is loud on the day its first missing label was due; a day with
    no batch (never predicted) is never overdue."""
    from datetime import timedelta

    from pipelines.monitoring.performance import overdue_labels

    days = [D + timedelta(days=i) for i in range(12) if i != 4]  # day 4 had no batch: not predicted
    labelled = {d for d in days if d <= D + timedelta(days=5)}  # the feed stopped after day 5
    upto = lambda last: [d for d in days if d <= D + timedelta(days=last)]  # noqa: E731
    assert overdue_labels(upto(8), labelled, 3, 30) == []  # labels due through day 5: all there
    assert overdue_labels(upto(9), labelled, 3, 30) == [D + timedelta(days=6)]  # day 6's was due on day 9
    late = [D + timedelta(days=6), D + timedelta(days=7), D + timedelta(days=8)]
    assert overdue_labels(upto(11), labelled, 3, 30) == late
    assert overdue_labels(upto(11), labelled, 3, 2) == late[1:]  # lost for good: older than any window, no longer counted
    assert overdue_labels(upto(7), {d for d in days if d <= D + timedelta(days=3)}, 3, 30) == []  # day 4: no batch
    assert overdue_labels([], set(), 3, 30) == []
