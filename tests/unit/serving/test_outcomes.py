"""Live outcomes of a rollout (pipelines/serving/outcomes.py) from a real prediction log: pairs
of the same request by both versions, joined with matured labels, one difference per entity and
label, what is left out counted, and the server's cache (a day is read again only when its log
grew or its labels changed). Then what the rollout decides on them (pipelines/serving/rollout.py)."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

from pipelines.serving.outcomes import paired_outcomes
from pipelines.serving.predlog import PredictionLog
from pipelines.serving.rollout import Rollout
from pipelines.serving.sequential import log_loss_terms
from tests.support.clock import after_a_coming_midnight


def log_requests(settings, log: PredictionLog, start: int, n: int, champion: float = 0.2, challenger: float = 0.7,
                 entity=lambda i: f"e{i}") -> None:
    for i in range(start, start + n):
        log.append(f"r{i}", [entity(i)], "champion", "m", "1", "run1", np.array([champion]), 1.0)
        log.append(f"r{i}", [entity(i)], "shadow", "m", "2", "run2", np.array([challenger]), 1.0)
    log.flush()


def write_labels(settings, day: str, labels: list) -> None:
    d = settings.params.data
    settings.labels_dir.mkdir(parents=True, exist_ok=True)
    path = settings.labels_dir / f"{day}.parquet"
    pd.DataFrame({d.id_col: [f"e{i}" for i in range(len(labels))], d.target: labels}).to_parquet(path, index=False)


def test_pairs_join_labels_and_a_day_is_read_again_only_when_it_changed(settings) -> None:
    today = after_a_coming_midnight().isoformat()  # the day the log writes the requests into (UTC)
    d = settings.params.data
    log = PredictionLog(settings.online_predictions_dir, d)
    log_requests(settings, log, 0, 10)
    settings.labels_dir.mkdir(parents=True, exist_ok=True)
    labels = settings.labels_dir / f"{today}.parquet"
    pd.DataFrame({d.id_col: [f"e{i}" for i in range(20)], d.target: [1] * 20}).to_parquet(labels, index=False)

    cache: dict = {}
    got = paired_outcomes(settings, "1", "2", cache).diffs
    y = np.ones(10)
    want = log_loss_terms(np.full(10, 0.2), y) - log_loss_terms(np.full(10, 0.7), y)
    assert np.array_equal(got, want) and got.mean() > 0  # the challenger was right more often
    assert paired_outcomes(settings, "1", "2").diffs.tolist() == got.tolist()  # no cache: the same answer

    # a cached day is not read again: an unchanged log answers from the cache (proved by a part
    # whose content changed behind its back, which only a re-read would see)
    part = next((settings.online_predictions_dir / today).glob("part-*.parquet"))
    frame = pd.read_parquet(part)
    frame["score"] = 0.5
    frame.to_parquet(part, index=False)
    assert paired_outcomes(settings, "1", "2", cache).diffs.tolist() == got.tolist()
    fresh = paired_outcomes(settings, "1", "2").diffs
    assert len(fresh) == 10 and fresh[0] != got[0]

    # the log grew: read again (the new pairs and the changed part are in)
    log_requests(settings, log, 10, 5)
    assert len(paired_outcomes(settings, "1", "2", cache).diffs) == 15
    # the labels changed: read again
    pd.DataFrame({d.id_col: [f"e{i}" for i in range(20)], d.target: [0] * 20}).to_parquet(labels, index=False)
    os.utime(labels, ns=(labels.stat().st_atime_ns, labels.stat().st_mtime_ns + 10**9))
    assert (paired_outcomes(settings, "1", "2", cache).diffs[10:] < 0).all()  # label 0: the champion's 0.2 beats 0.7
    # other versions: nothing paired
    assert len(paired_outcomes(settings, "1", "3", cache).diffs) == 0


def test_an_entity_scored_many_times_with_one_label_is_one_outcome(settings) -> None:
    today = after_a_coming_midnight().isoformat()
    log = PredictionLog(settings.online_predictions_dir, settings.params.data)
    log_requests(settings, log, 0, 12, entity=lambda i: f"e{i % 3}")  # 3 entities, 4 requests each
    write_labels(settings, today, [1, 0, 1])
    got = paired_outcomes(settings, "1", "2")
    assert got.requests == 12 and len(got.diffs) == 3
    one = log_loss_terms(np.array([0.2]), np.array([1.0])) - log_loss_terms(np.array([0.7]), np.array([1.0]))
    assert np.isclose(got.diffs[0], one[0])  # the mean of its 4 equal differences, counted once


def test_non_finite_scores_are_left_out_and_counted_and_a_label_of_2_is_named(settings) -> None:
    today = after_a_coming_midnight().isoformat()
    log = PredictionLog(settings.online_predictions_dir, settings.params.data)
    log_requests(settings, log, 0, 8)
    log_requests(settings, log, 8, 1, challenger=float("nan"))
    log_requests(settings, log, 9, 1, challenger=0.0)  # an extreme score, still an outcome
    write_labels(settings, today, [1] * 10 + [2])  # the 2 is the label of an entity this rollout never scored
    got = paired_outcomes(settings, "1", "2")
    assert len(got.diffs) == 9 and np.isfinite(got.diffs).all()
    assert (got.requests, got.nonfinite, got.extreme_challenger, got.extreme_champion) == (10, 1, 2, 0)
    assert got.label_problem == ""
    write_labels(settings, today, [1] * 9 + [2])  # now one of its pairs: the day's labels are not used, and named
    got = paired_outcomes(settings, "1", "2")
    assert len(got.diffs) == 0
    assert got.label_problem.startswith(f"{today}.parquet: labels in ") and "are not 0/1 ('1', '2')" in got.label_problem


def test_the_rollout_records_a_decision_for_a_nan_a_label_of_2_and_two_identical_models(settings) -> None:
    """Each ends in a recorded state: held with the reason, or concluded with the counts."""
    today = after_a_coming_midnight().isoformat()
    serve = settings.params.serve.model_copy(update={"min_outcomes": 10, "max_outcomes": 50, "psi_min_pairs": 10})
    log = PredictionLog(settings.online_predictions_dir, settings.params.data)

    # a label of 2: the rollout holds (paused) with the file named, and stays held
    log_requests(settings, log, 0, 40, champion=0.3, challenger=0.3)
    write_labels(settings, today, [0, 1] * 19 + [0, 2])
    ro = Rollout(serve)
    ro.start("2", now=0)
    rec = ro.judge(paired_outcomes(settings, "1", "2"), now=1)
    assert rec["action"] == "pause" and ro.paused
    assert f"{today}.parquet: labels in " in rec["reason"] and "are not 0/1" in rec["reason"]
    assert ro.history[-1] is rec and ro.judge(paired_outcomes(settings, "1", "2"), now=2) is None

    # labels fixed, resumed: two identical models end at the horizon, the champion stays
    write_labels(settings, today, [0, 1] * 30)
    log_requests(settings, log, 40, 20, champion=0.3, challenger=0.3)
    ro.act("resume", now=3)
    rec = ro.judge(paired_outcomes(settings, "1", "2"), now=4)
    assert rec["action"] == "reject" and ro.stage == "rejected" and rec["outcomes"]["decision"] == "stop"
    assert "no difference shown within serve.max_outcomes 50 outcomes" in rec["reason"]

    # a NaN score among clearly better answers: left out, counted in the record, and promoted
    for f in settings.online_predictions_dir.glob("*/part-*.parquet"):
        f.unlink()
    log_requests(settings, log, 0, 299, champion=0.5, challenger=0.8)
    log_requests(settings, log, 299, 1, challenger=float("nan"))  # 1 in 300: within serve.max_extreme_share
    write_labels(settings, today, [1] * 300)
    ro = Rollout(serve.model_copy(update={"max_outcomes": 1000}))
    ro.start("2", now=0)
    rec = ro.judge(paired_outcomes(settings, "1", "2"), now=1)
    assert rec["action"] == "promote" and ro.stage == "promoted"
    assert rec["outcomes"]["nonfinite_dropped"] == 1 and rec["outcomes"]["outcomes"] == rec["outcomes"]["matured_outcomes"] == 299
    assert ro.describe()["outcomes"]["nonfinite_dropped"] == 1


def test_the_rollout_rejects_a_challenger_with_too_many_extreme_scores(settings) -> None:
    today = after_a_coming_midnight().isoformat()
    serve = settings.params.serve.model_copy(update={"psi_min_pairs": 50})
    log = PredictionLog(settings.online_predictions_dir, settings.params.data)
    log_requests(settings, log, 0, 98, champion=0.3, challenger=0.2)
    log_requests(settings, log, 98, 2, challenger=0.0)  # 2 % answered exactly 0
    write_labels(settings, today, [0] * 100)
    ro = Rollout(serve)
    ro.start("2", now=0)
    rec = ro.judge(paired_outcomes(settings, "1", "2"), now=1)
    assert rec["action"] == "reject" and ro.stage == "rejected"
    assert "extreme or non-finite scores" in rec["reason"] and "on 2.00% of 100 paired requests" in rec["reason"]


def test_a_day_whose_labels_come_late_is_added_after_the_outcomes_already_judged(settings) -> None:
    import shutil

    today = after_a_coming_midnight().isoformat()
    log = PredictionLog(settings.online_predictions_dir, settings.params.data)
    log_requests(settings, log, 0, 3, champion=0.2, challenger=0.7)
    write_labels(settings, today, [1, 1, 1])  # the challenger closer: positive differences
    earlier = settings.online_predictions_dir / "2020-01-01"
    shutil.copytree(settings.online_predictions_dir / today, earlier)
    write_labels(settings, "2020-01-01", [0, 0, 0])  # an earlier day, matured later: negative ones
    first, late = (settings.labels_dir / f"{day}.parquet" for day in (today, "2020-01-01"))
    os.utime(late, ns=(late.stat().st_atime_ns, first.stat().st_mtime_ns + 10**9))
    got = paired_outcomes(settings, "1", "2").diffs
    assert len(got) == 6 and (got[:3] > 0).all() and (got[3:] < 0).all()
