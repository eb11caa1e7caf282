"""The replay's reading of the shipped alert rules (pipelines/monitoring/rules.py) agrees with
their promtool tests on the batch guards: each fires just over its threshold, not at or under it."""

from __future__ import annotations

import pytest

from pipelines.monitoring.rules import Unsupported, day_alerts, firing, load_rules
from tests.support.project import REPO

RULES = {r.alert: r for r in load_rules(REPO)}
DAY = {"day": "2026-02-10"}


def fired(alert: str, samples: list) -> list[dict[str, str]]:
    return firing(RULES[alert], samples)


def test_every_batch_alert_is_understood_and_serving_ones_are_skipped() -> None:
    batch = {"PipelinesDriftDetected", "PipelinesDayQuarantined", "PipelinesLiveAucUnderFloor", "PipelinesRetrainBlocked"}
    assert batch <= set(RULES)
    for name in batch:
        firing(RULES[name], [])  # raises Unsupported if outside the subset
    with pytest.raises(Unsupported):
        firing(RULES["ServingModelLoadFailures"], [])
    with pytest.raises(Unsupported):
        firing(RULES["PipelinesStepStale"], [])  # needs a clock


def test_drift_fires_over_the_published_threshold_only() -> None:
    threshold = ("pipelines_drift_psi_threshold", {}, 0.2)
    over = [("pipelines_drift_psi", {"feature": "logins_30d", **DAY}, 0.21),
            ("pipelines_drift_psi", {"feature": "age", **DAY}, 0.2), threshold]
    assert [h["feature"] for h in fired("PipelinesDriftDetected", over)] == ["logins_30d"]
    assert fired("PipelinesDriftDetected", over[:2]) == []  # no threshold published: no comparison


def test_quarantine_live_auc_and_gate() -> None:
    assert fired("PipelinesDayQuarantined", [("pipelines_validation_quarantined", {**DAY, "first_failed": "x"}, 1)])
    assert not fired("PipelinesDayQuarantined", [("pipelines_validation_quarantined", {**DAY, "first_failed": ""}, 0)])
    v = {"champion_version": "3"}
    floor = ("pipelines_live_auc_floor", v, 0.7)
    assert fired("PipelinesLiveAucUnderFloor", [("pipelines_live_auc", {**DAY, **v}, 0.69), floor])
    assert not fired("PipelinesLiveAucUnderFloor", [("pipelines_live_auc", {**DAY, **v}, 0.7), floor])
    off = ("pipelines_live_auc_floor", v, 0.0)
    assert not fired("PipelinesLiveAucUnderFloor", [("pipelines_live_auc", {**DAY, **v}, 0.5), off])
    other = ("pipelines_live_auc_floor", {"champion_version": "2"}, 0.9)
    assert not fired("PipelinesLiveAucUnderFloor", [("pipelines_live_auc", {**DAY, **v}, 0.8), other, floor])
    assert fired("PipelinesRetrainBlocked", [("pipelines_gate_passed", {"reason_class": "roc_auc", **v}, 0)])
    assert not fired("PipelinesRetrainBlocked", [("pipelines_gate_passed", {"reason_class": "passed", **v}, 1)])


def test_day_alerts_names_severity_and_skips_what_it_cannot_judge() -> None:
    got = day_alerts(RULES.values(), [("pipelines_validation_quarantined", {**DAY, "first_failed": "x"}, 1),
                                      ("serving_registry_reachable", {}, 0)])
    severity = RULES["PipelinesDayQuarantined"].labels["severity"]
    assert [(a["alert"], a["severity"]) for a in got] == [("PipelinesDayQuarantined", severity)]
