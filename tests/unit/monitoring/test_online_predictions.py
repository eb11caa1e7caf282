"""Monitoring reads the online server's prediction log beside batch predictions."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd

from pipelines.config import Settings
from pipelines.monitoring.drift import champion_score_psi
from pipelines.monitoring.performance import day_predictions, predicted_days
from pipelines.serving.predlog import PredictionLog
from tests.support.clock import after_a_coming_midnight


def _log(settings: Settings) -> PredictionLog:
    d = settings.params.data
    plog = PredictionLog(settings.online_predictions_dir, d)
    plog.append("r1", [1, 2], "champion", "m", "3", "run3", np.array([0.1, 0.9]), 1.5)
    plog.append("r1", [1, 2], "shadow", "m", "4", "run4", np.array([0.2, 0.8]), 2.5)
    plog.append("r2", [3], "canary", "m", "4", "run4", np.array([0.7]), 2.0)
    assert plog.flush() == 5 and plog.flush() == 0
    return plog


def test_online_log_is_read_with_batch_predictions(settings: Settings) -> None:
    day = after_a_coming_midnight()  # the log partitions by the day a request arrived (UTC)
    d = settings.params.data
    settings.predictions_dir.mkdir(parents=True)
    pd.DataFrame({d.id_col: [7], "score": [0.5], "model_version": ["3"], "model_run_id": ["run3"]}).to_parquet(
        settings.predictions_dir / f"{day.isoformat()}.parquet")
    _log(settings)
    parts = list((settings.online_predictions_dir / day.isoformat()).glob("part-*.parquet"))
    assert len(parts) == 1
    assert set(pd.read_parquet(parts[0]).columns) >= {
        "request_id",
        d.id_col,
        d.timestamp_col,
        "variant",
        "model_version",
        "score",
        "latency_ms",
    }
    pred = day_predictions(settings, day)
    assert sorted(pred["variant"]) == ["batch", "canary", "champion", "champion", "shadow", "shadow"]
    assert pred[d.id_col].tolist() == ["7", "1", "2", "1", "2", "3"]
    assert predicted_days(settings) == [day]


def test_prediction_drift_counts_the_champions_online_scores(settings: Settings) -> None:
    day = after_a_coming_midnight()
    _log(settings)
    profile = {"score": {"edges": [0.5], "counts": [1, 1]}}
    # only v3's answers to clients count: 0.1 and 0.9, one per bin, the reference's shape
    assert champion_score_psi(settings, day, profile, "3") == (0.0, {"batch": 0, "online": 2})
    assert champion_score_psi(settings, day, profile, "9") == (None, {"batch": 0, "online": 0})


def test_drift_psi_is_exported_for_prometheus(tmp_path, monkeypatch) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    from pipelines.monitoring.report import drift_samples
    from pipelines.telemetry import PUSHGATEWAY_ENV, publish

    monkeypatch.delenv(PUSHGATEWAY_ENV, raising=False)
    summary = {
        "day": "2026-01-22",
        "champion_version": "3",
        "psi": {"age": 0.01, "logins_30d": 1.3125},
        "psi_threshold": 0.2,
        "score_psi": 0.2,
        "retrain": True,
    }
    settings = SimpleNamespace(reports_dir=tmp_path, root=tmp_path)
    text = Path(publish(settings, "drift", drift_samples(summary))).read_text()
    got = {(s.name, s.labels.get("feature")): s.value for f in text_string_to_metric_families(text) for s in f.samples}
    assert got[("pipelines_drift_psi", "logins_30d")] == 1.3125 and got[("pipelines_drift_psi", "age")] == 0.01
    assert got[("pipelines_drift_score_psi", None)] == 0.2 and got[("pipelines_drift_retrain_due", None)] == 1
    assert got[("pipelines_drift_psi_threshold", None)] == 0.2


def test_the_daily_monitoring_run_checks_the_day_before_when_it_was_served_only_online(settings, monkeypatch) -> None:
    """The monitoring DAG's daily run (no asset event) checks yesterday from the prediction log
    when it had no batch; a batch day (checked when scored) or a day with no traffic ends it quietly."""
    from datetime import UTC, date, datetime, time, timedelta

    from pipelines.ops import tasks

    monkeypatch.setenv("PIPELINES_ROOT", str(settings.root))
    checked: list[date] = []

    def drift_day(day: date) -> dict:
        checked.append(day)
        return {"day": day.isoformat(), "retrain": False, "reason": "checked"}

    monkeypatch.setattr(tasks, "drift_day", drift_day)
    batch_day, online_day, quiet_day = date(2026, 2, 1), date(2026, 2, 2), date(2026, 2, 3)
    settings.validated_dir.mkdir(parents=True)
    (settings.validated_dir / f"{batch_day}.parquet").touch()
    for day in (batch_day, online_day):
        (settings.online_predictions_dir / day.isoformat()).mkdir(parents=True)
        (settings.online_predictions_dir / day.isoformat() / "part-1-1-000001.parquet").touch()

    def scheduled(day: date) -> dict:
        at = datetime.combine(day + timedelta(days=1), time(0, 30), UTC)  # the cron slot after the day
        return tasks.drift([], None, at, at, "scheduled")

    for day in (batch_day, quiet_day):
        res = scheduled(day)
        assert res["retrain"] is False and res["days_checked"] == [] and "no online-only traffic" in res["reason"]
    assert checked == []
    assert scheduled(online_day)["days_checked"] == [online_day.isoformat()] and checked == [online_day]
    # an asset event or a manual run's day is checked as before, whatever its source
    tasks.drift([batch_day.isoformat()], None, None, None, "asset_triggered")
    assert checked == [online_day, batch_day]
