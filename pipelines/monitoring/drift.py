"""Drift of a day against the serving champion's frozen reference profile, with brakes.

- PSI per feature is counted exactly over the whole batch, streamed in chunks into the bins
  frozen at training time (pipelines/model/profile.py): memory is bounded by the chunk size.
- Prediction drift: PSI of the day's champion scores against the scores on its training data.
- Null-rate change per feature.
- One number everywhere: the PSI that decides is the one logged to MLflow and the one the
  Evidently HTML report shows. The report is built on bounded samples (for its histograms) with
  a registered stat test, "PSI (frozen training bins)", that returns the exact full-batch PSI
  computed here, so the report cannot show a different value for the same feature.
- Brakes: a day counts as drifted when some feature's PSI passes ``drift.psi_threshold``;
  retraining is requested only after ``drift.consecutive_windows`` drifted days in a row (by
  date, with the same champion), not within ``drift.cooldown_days`` of the last day the
  champion trained on nor of the last retrain requested for the same champion (one the gate
  blocked), optionally only once ``drift.min_labelled_drifted_days`` drifted days have matured
  labels, and never while a retrain is in flight (marker written by the training DAG). The decision and its reasons are recorded in the JSON summary and in MLflow.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, date
from pathlib import Path
from typing import Any

import pandas as pd

from pipelines.config import DriftParams, Settings
from pipelines.errors import PipelineError
from pipelines.failpoint import failpoint
from pipelines.io import atomic_path, check_not_quarantined, day_parts, file_lock, partition_files, read_json, write_json
from pipelines.model.champion import champion_profile, champion_reference

IN_FLIGHT_MARKER = ".retrain_in_flight"
_REPORT_PSI: dict[str, float] = {}  # what the registered Evidently stat test returns, per column


def psi_from_snapshot(snapshot: dict[str, Any]) -> dict[str, float]:
    """Per-column drift score from an Evidently snapshot dict (pure)."""
    out: dict[str, float] = {}
    for m in snapshot.get("metrics", []):
        cfg = m.get("config", {})
        if cfg.get("type", "").endswith("ValueDrift"):
            out[cfg["column"]] = float(m["value"])
    return out


def drifted_features(psi: dict[str, float], threshold: float) -> list[str]:
    """Features whose PSI passes the threshold, worst first (pure). A NaN PSI means the batch
    has no non-null value of the feature at all (the reference always has some): drifted, first."""
    nan = [c for c, v in psi.items() if math.isnan(v)]
    return nan + sorted((c for c, v in psi.items() if v > threshold), key=lambda c: -psi[c])


def performance_alarm(records: list[dict[str, Any]], champion_version: str, holdout_auc: float | None, params: DriftParams) -> dict[str, Any] | None:
    """Performance-triggered retraining (pure): the champion's latest ``drift.performance_days``
    matured days in a row all have a live ROC AUC below ``drift.min_live_roc_auc`` or more than
    ``drift.max_live_auc_drop`` below its holdout AUC. Sees what PSI cannot: outcomes that change
    while the inputs look the same. ``records``: the performance summaries, any order."""
    if params.min_live_roc_auc <= 0 and params.max_live_auc_drop >= 1:
        return None
    mine = sorted(
        (r for r in records if r.get("model_versions") == [champion_version] and r.get("live_roc_auc") is not None),
        key=lambda r: r["day"],
    )
    bad: list[dict[str, Any]] = []
    for r in reversed(mine):
        auc = r["live_roc_auc"]
        if not (auc < params.min_live_roc_auc or (holdout_auc is not None and holdout_auc - auc > params.max_live_auc_drop)):
            break
        bad.append(r)
    if len(bad) < params.performance_days:
        return None
    bad.reverse()
    aucs = ", ".join(f"{r['live_roc_auc']:.3f}" for r in bad[-params.performance_days :])
    why = [f"floor {params.min_live_roc_auc}"] if params.min_live_roc_auc > 0 else []
    if holdout_auc is not None and params.max_live_auc_drop < 1:
        why.append(f"holdout {holdout_auc:.3f} - {params.max_live_auc_drop}")
    return {
        "days": [r["day"] for r in bad],
        "reason": f"live ROC AUC under {' / '.join(why)} on {len(bad)} matured day(s) in a row (latest {aucs})",
    }


def retrain_decision(
    day: date,
    drifted: list[str],
    psi: dict[str, float],
    history: list[dict[str, Any]],
    champion_version: str,
    trained_through: date | None,
    running: bool | str,
    params: DriftParams,
    importance: dict[str, float] | None = None,
    labelled_through: date | None = None,
    performance: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Apply the brakes (``params``: threshold, k days in a row, cooldown, importance floor) to
    today's drift (pure). ``history``: earlier summaries, any order.

    ``importance``: each feature's share of the model's permutation importance (from the
    profile); a drifted feature below ``drift.min_importance`` is reported but does not count (a
    feature with no values left always counts). ``running``: False, or the retrain in flight.
    The streak counts earlier days as they were decided (with the floor of their day).
    ``labelled_through``: the last day whose labels matured; with
    ``drift.min_labelled_drifted_days`` the retrain waits until that many days of the streak
    can be learned from (a model retrained before then is trained on the old regime only).
    ``performance``: a :func:`performance_alarm`, which requests a retrain under the same brakes
    (its matured days count as labelled days; it needs no k drifted days in a row)."""
    threshold, k, cooldown_days, min_importance = params.psi_threshold, params.consecutive_windows, params.cooldown_days, params.min_importance
    ignored = [
        c for c in drifted
        if importance is not None and min_importance > 0 and not math.isnan(psi[c]) and importance.get(c, 1.0) < min_importance
    ]
    drifted = [c for c in drifted if c not in ignored]
    earlier = sorted(
        (h for h in history if h["day"] < day.isoformat() and h.get("champion_version") == champion_version),
        key=lambda h: h["day"],
        reverse=True,
    )
    streak_days: list[str] = []
    if drifted:
        streak_days = [day.isoformat()]
        for h in earlier:
            if not h.get("drifted_features"):
                break
            streak_days.append(h["day"])
    streak = len(streak_days)
    need_labels = params.min_labelled_drifted_days
    labelled = sum(1 for d in streak_days if labelled_through is not None and d <= labelled_through.isoformat())
    alarm = len(performance["days"]) if performance else 0
    triggered = bool(drifted) or bool(alarm)
    since = (day - trained_through).days if trained_through else None
    brakes = []
    if drifted and not alarm and streak < k:
        brakes.append(f"drifted {streak} day(s) in a row, {k} needed")
    if triggered and since is not None and since < cooldown_days:
        brakes.append(f"cooldown: champion trained through {trained_through}, {since} < {cooldown_days} day(s) ago")
    last_request = next((h["day"] for h in earlier if h.get("retrain")), None)
    if triggered and last_request and (day - date.fromisoformat(last_request)).days < cooldown_days:
        # a retrain the gate blocked is not requested again the next day (a retrain loop)
        brakes.append(f"cooldown: a retrain was requested on {last_request} for this champion, < {cooldown_days} day(s) ago")
    if triggered and need_labels and max(labelled, alarm) < need_labels:
        if alarm and not drifted:
            brakes.append(f"waiting for labels: {alarm} matured day(s) of low live AUC, {need_labels} needed")
        else:
            brakes.append(f"waiting for labels: {labelled} of the {streak} drifted day(s) matured, {need_labels} needed")
    if triggered and running:
        brakes.append("a retrain is already in flight" + ("" if running is True else f" ({running})"))
    retrain = triggered and not brakes

    def named(cols: list[str]) -> str:
        def one(c: str) -> str:
            value = "all null" if math.isnan(psi[c]) else format(psi[c], ".3f")
            share = "" if importance is None or c not in importance else f"; importance {importance[c]:.1%}"
            return f"{c} ({value}{share})"

        return ", ".join(one(c) for c in cols)

    perf_reason = f"live performance: {performance['reason']}" if performance else ""
    if triggered:
        reason = (f"PSI above {threshold} on {named(drifted)}" if drifted else "") + (" and " if drifted and alarm else "") + perf_reason
        reason += "" if retrain else " - not retraining: " + "; ".join(brakes)
    elif ignored:
        reason = f"PSI above {threshold} only on features under drift.min_importance {min_importance:.2%}: {named(ignored)}"
    else:
        reason = f"no feature has PSI above {threshold}"
    if drifted and ignored:
        reason += f" (ignored, under drift.min_importance {min_importance:.2%}: {named(ignored)})"
    if importance is None and min_importance > 0 and drifted:
        reason += " (drift.min_importance not applied: this champion's profile has no importance; retrain to record it)"
    return {
        "retrain": retrain,
        "drifted_features": drifted,
        "ignored_features": ignored,
        "streak": streak,
        "labelled_drifted_days": labelled,
        "performance_alarm": performance,
        "brakes": brakes,
        "reason": reason,
    }


def _register_report_stattest() -> str:
    from evidently.legacy.calculations.stattests.registry import StatTest, register_stattest
    from evidently.legacy.core import ColumnType

    def frozen_psi(reference: pd.Series, current: pd.Series, feature_type: Any, threshold: float) -> tuple[float, bool]:
        value = _REPORT_PSI[str(reference.name)]
        return value, value > threshold

    test = StatTest(
        name="frozen_psi",
        display_name="PSI (frozen training bins, full batch)",
        allowed_feature_types=[ColumnType.Numerical, ColumnType.Categorical],
        default_threshold=0.2,
    )
    register_stattest(test, default_impl=frozen_psi)
    return test.name


def write_report(current_sample: pd.DataFrame, reference_sample: pd.DataFrame, psi: dict[str, float], threshold: float, dest: Path) -> dict[str, float]:
    """Evidently HTML report whose drift scores are exactly ``psi``; returns what it shows."""
    from evidently import Report
    from evidently.presets import DataDriftPreset

    _REPORT_PSI.clear()
    _REPORT_PSI.update(psi)
    method = _register_report_stattest()
    cols = [c for c in psi if c in current_sample.columns and c in reference_sample.columns]
    snapshot = Report([DataDriftPreset(columns=cols, method=method, threshold=threshold)]).run(
        current_sample[cols], reference_sample[cols]
    )
    with atomic_path(dest) as tmp:
        snapshot.save_html(str(tmp))
    return psi_from_snapshot(snapshot.dict())


def stream_counts(
    path: Path, profile: dict[str, Any], chunk_rows: int, sample_rows: int
) -> tuple[dict[str, dict[str, float]], int, list[pd.DataFrame]]:
    """The arrow engine: stream a Parquet batch in chunks into the profile's frozen bins.
    Returns PSI and null rates per feature, the row count, and a sample of min(``sample_rows``,
    rows) rows for the report's histograms, drawn across the whole batch (one seeded random row
    in each of ``sample_rows`` equal strides: a batch sorted by time is sampled all day, and a
    repeating row order, such as shards written round-robin, cannot alias). Memory is bounded by
    ``chunk_rows``."""
    import numpy as np
    import pyarrow.parquet as pq

    from pipelines.model.profile import Accumulator, stream_batches

    acc = Accumulator(profile)
    sample: list[pd.DataFrame] = []
    picks = None
    for chunk in stream_batches(path, list(acc.counts), chunk_rows):
        if picks is None:  # the file is readable: the first chunk came through
            picks = sample_positions(pq.read_metadata(path).num_rows, sample_rows)
        lo, hi = np.searchsorted(picks, [acc.rows, acc.rows + len(chunk)])
        if hi > lo:
            sample.append(chunk.take(picks[lo:hi] - acc.rows).to_pandas())
        acc.add(chunk)
    return acc.result(), acc.rows, sample


def sample_positions(rows: int, n: int, seed: int = 0) -> Any:
    """Sorted row positions of a sample of min(n, rows) rows spread over all ``rows``: one
    seeded random position in each of n equal strides (pure)."""
    import numpy as np

    if rows <= n:
        return np.arange(rows)
    bounds = np.arange(n + 1, dtype="int64") * rows // n  # n disjoint strides, none empty
    u = np.random.default_rng(seed).random(n)
    return bounds[:-1] + np.floor(u * np.diff(bounds)).astype("int64")


def drift(settings: Settings, day: date, engine: str | None = None, source: str | None = None) -> dict[str, Any]:
    """Drift of the validated batch of ``day``: JSON summary, HTML report, MLflow run.

    ``engine`` (default ``drift.engine``) counts the batch into the frozen bins: "arrow"
    streams a local Parquet file in chunks, "spark" runs the same counts in Spark SQL
    (pipelines/monitoring/drift_spark.py). ``source`` replaces the validated file, e.g. a URI
    Spark reads; it is not validated here, and prediction drift is skipped (the local
    predictions of ``day`` need not be of that batch).
    """
    from pipelines.tracking import setup_mlflow

    dp = settings.params.drift
    engine = engine or dp.engine
    if engine not in ("arrow", "spark"):
        raise PipelineError(f"unknown drift engine {engine!r}: use arrow or spark")
    src = settings.validated_dir / f"{day.isoformat()}.parquet"
    if source is None and not src.is_file():
        check_not_quarantined(settings, day)
        raise PipelineError(f"no validated batch for {day} ({src} missing): run `validate --date {day}` first")
    if source is not None and engine == "arrow" and not Path(source).is_file():
        raise PipelineError(f"no Parquet file at {source} (the arrow engine reads local files; use --engine spark for URIs)")
    setup_mlflow(settings)
    profile, champion = champion_profile(settings)
    per_feature, rows, sample = count_batch(settings, engine, source or str(src), profile)
    if rows == 0:
        raise PipelineError(f"the batch for {day} ({source or src}) has no rows: nothing to compare")
    psi = {c: r["psi"] for c, r in per_feature.items()}
    score_psi = None if source is not None else champion_score_psi(settings, day, profile, str(champion.version))

    out_dir = settings.reports_dir / "drift"
    trained_through = champion.tags.get("trained_through")
    decision = retrain_decision(
        day,
        drifted_features(psi, dp.psi_threshold),
        psi,
        drift_history(out_dir, day),
        str(champion.version),
        date.fromisoformat(trained_through) if trained_through else None,
        in_flight(out_dir / IN_FLIGHT_MARKER),
        dp,
        profile.get("importance"),
        max(partition_files(settings.labels_dir), default=None),
        performance_alarm(performance_history(settings), str(champion.version), _float(champion.tags.get("holdout_roc_auc")), dp)
        if dp.min_live_roc_auc > 0 or dp.max_live_auc_drop < 1
        else None,
    )
    html = out_dir / f"{day.isoformat()}.html" if dp.html_report else None
    if html is not None:
        _report(settings, sample, psi, html)
    summary = {
        "day": day.isoformat(),
        "champion_version": str(champion.version),
        "psi_threshold": dp.psi_threshold,
        # unrounded: the same float as the MLflow metric and the HTML report
        "psi": dict(sorted(psi.items())),
        "null_rate": {k: round(v["null_rate"], 6) for k, v in sorted(per_feature.items())},
        "null_rate_reference": {k: round(v["null_rate_reference"], 6) for k, v in sorted(per_feature.items())},
        "score_psi": score_psi,
        "importance": profile.get("importance"),
        **decision,
        "report_html": str(html) if html else None,
        "rows": int(rows),
        "engine": engine,
    }
    _log_run(summary)
    write_json(summary, out_dir / f"{day.isoformat()}.json")
    write_prometheus(summary, out_dir / PROM_FILE)
    return summary


PROM_FILE = "drift.prom"


def write_prometheus(summary: dict[str, Any], dest: Path) -> Path:
    """The latest day's PSI values in Prometheus' text format (for node_exporter's textfile
    collector, or any scraper of files): the same unrounded numbers as the summary."""
    from prometheus_client import CollectorRegistry, Gauge, write_to_textfile

    reg = CollectorRegistry()
    labels = {"day": summary["day"], "champion_version": summary["champion_version"]}
    psi = Gauge("pipelines_drift_psi", "PSI of each feature against the champion's frozen profile", ["feature", *labels], registry=reg)
    for feature, value in summary["psi"].items():
        psi.labels(feature, *labels.values()).set(value)
    if summary.get("score_psi") is not None:
        Gauge("pipelines_drift_score_psi", "PSI of the champion's scores (batch and online)", list(labels), registry=reg).labels(*labels.values()).set(summary["score_psi"])
    Gauge("pipelines_drift_retrain_due", "1 if the drift job asked for retraining", list(labels), registry=reg).labels(*labels.values()).set(1 if summary.get("retrain") else 0)
    dest.parent.mkdir(parents=True, exist_ok=True)
    write_to_textfile(str(dest), reg)  # written to a temporary file and renamed
    return dest


def count_batch(settings: Settings, engine: str, source: str, profile: dict[str, Any]) -> tuple[dict[str, Any], int, list[pd.DataFrame]]:
    """PSI and null rates per feature, the row count and a report sample, by ``engine``."""
    dp = settings.params.drift
    if engine == "spark":
        from pipelines.monitoring.drift_spark import spark_drift

        per_feature, rows, head = spark_drift(source, profile, dp.spark_master or None, dp.report_sample_rows)
        return per_feature, rows, [head]
    return stream_counts(Path(source), profile, dp.chunk_rows, dp.report_sample_rows)


def champion_score_psi(settings: Settings, day: date, profile: dict[str, Any], champion_version: str) -> float | None:
    """PSI of the day's champion scores (batch and online) against its scores on its training
    data (None when the day has no predictions by that champion)."""
    from pipelines.model.profile import bin_numeric, stream_parquet
    from pipelines.model.profile import psi as psi_of

    pred = settings.predictions_dir / f"{day.isoformat()}.parquet"
    # batch predictions, then the online server's log of the day (the rows the champion answered)
    sources = ([pred] if pred.is_file() else []) + day_parts(settings.online_predictions_dir, day)
    counts = None
    for path in sources:
        online = path != pred
        for chunk in stream_parquet(path, ["score", "model_version", *(["variant"] if online else [])], settings.params.drift.chunk_rows):
            keep = chunk["model_version"] == champion_version
            if online:
                keep &= chunk["variant"] == "champion"
            c = bin_numeric(chunk["score"][keep].to_numpy(dtype="float64"), profile["score"]["edges"])
            counts = c if counts is None else counts + c
    if counts is None or counts.sum() == 0:
        return None
    return psi_of(profile["score"]["counts"], counts)


def performance_history(settings: Settings) -> list[dict[str, Any]]:
    """Every matured day's live performance summary (pipelines/monitoring/performance.py)."""
    folder = settings.reports_dir / "performance"
    return [read_json(f) for f in sorted(folder.glob("20*.json"))] if folder.is_dir() else []


def _float(value: str | None) -> float | None:
    try:
        return float(value) if value else None
    except ValueError:
        return None


def drift_history(out_dir: Path, day: date) -> list[dict[str, Any]]:
    """Every earlier (and later) day's drift summary, for the retrain streak."""
    return [read_json(f) for f in (sorted(out_dir.glob("20*.json")) if out_dir.is_dir() else []) if f.stem != day.isoformat()]


def _report(settings: Settings, sample: list[pd.DataFrame], psi: dict[str, float], html: Path) -> None:
    """The Evidently HTML report; it must show exactly the deciding numbers."""
    from pipelines.model.features import model_input

    dp = settings.params.drift
    reference_sample, _ = champion_reference(settings)
    current_sample = model_input(pd.concat(sample, ignore_index=True), settings.params.data) if sample else reference_sample.head(0)
    shown = write_report(current_sample, reference_sample.head(dp.report_sample_rows), psi, dp.psi_threshold, html)
    if any(abs(shown[c] - psi[c]) > 0 for c in shown):
        raise PipelineError("the Evidently report shows PSI values different from the computed ones")


def _log_run(summary: dict[str, Any]) -> None:
    """One MLflow run per drift job: PSI per feature, the score PSI, the decision and its reason."""
    import mlflow

    from pipelines.tracking import owner_tag

    day, decision = summary["day"], summary
    with mlflow.start_run(run_name=f"drift-{day}"):
        mlflow.set_tags({**owner_tag(), "step": "drift", "day": day, "champion_version": summary["champion_version"], "engine": summary["engine"], "reason": decision["reason"][:5000]})
        metrics = {f"psi_{k}": v for k, v in summary["psi"].items()}
        if summary["score_psi"] is not None:
            metrics["score_psi"] = summary["score_psi"]
        metrics["retrain"] = float(decision["retrain"])
        mlflow.log_metrics(metrics)
        mlflow.log_dict(summary, "drift_summary.json")


def in_flight(marker: Path) -> bool | str:
    """What the training DAG's marker says is in flight (its run id and since when), or False."""
    from datetime import datetime

    try:
        since = datetime.fromtimestamp(marker.stat().st_mtime, UTC).strftime("%Y-%m-%d %H:%M UTC")
        text = marker.read_text()
    except FileNotFoundError:
        return False  # none, or cleared by the training DAG just now
    try:
        held = json.loads(text)
        run_id = held.get("run_id") or "unknown run"
    except (ValueError, AttributeError):
        held, run_id = {}, "unreadable marker"
    from pipelines.tracking import OWNER_TAG, owner_alive

    if owner_alive(held.get(OWNER_TAG)) is False:
        return False  # a `make run` killed mid-training: nothing is in flight (the next claim takes it over)
    return f"training run {run_id} since {since}; marker {marker}"


def set_in_flight(settings: Settings, run_id: str | None) -> None:
    """Mark a retrain as started (``run_id``) or finished (None); the drift job reads it."""
    if run_id is None:
        with file_lock(_marker_lock(settings)):
            in_flight_marker(settings).unlink(missing_ok=True)
    else:
        claim_in_flight(settings, run_id)


def in_flight_marker(settings: Settings) -> Path:
    return settings.reports_dir / "drift" / IN_FLIGHT_MARKER


def _holder(marker: Path) -> dict[str, Any] | None:
    try:
        held = json.loads(marker.read_text())
    except FileNotFoundError:
        return None
    except ValueError:
        return {"run_id": "unreadable marker"}
    return held if isinstance(held, dict) else {"run_id": "unreadable marker"}


def _marker_lock(settings: Settings) -> Path:
    """The lock file held around every claim and release of the training marker."""
    marker = in_flight_marker(settings)
    return marker.with_name(f"{marker.name}.lock")


def claim_in_flight(settings: Settings, run_id: str, *, process: bool = False, exclusive: bool = False, wait_s: float = 0.0) -> None:
    """Mark the training run ``run_id`` in flight: one training runner per project at a time.

    ``process``: the holder is this process (`make run`), so its marker records the owner and a
    later runner can tell whether it is still alive; a training DAG run spans several task
    processes and records none. A marker held by a live process is respected: wait up to
    ``wait_s`` for it, then fail with one line naming it. ``exclusive`` (`make run`): a DAG run's
    marker is respected too. A dead process's marker is taken over, with a warning; a DAG run's
    marker is taken over by the next DAG run (max_active_runs=1: that run has ended).

    Every claim and release decides and writes under one lock (``_marker_lock``), so of any
    number of runners that find the same marker at once, one claims it and the others see it
    claimed. Readers (the drift job's brake) need no lock: the marker is replaced whole.
    """
    import logging
    import time

    from pipelines.tracking import OWNER_TAG, owner_alive, owner_tag

    log = logging.getLogger(__name__)
    marker = in_flight_marker(settings)
    body = json.dumps({"run_id": run_id, **(owner_tag() if process else {})})
    deadline, waited = time.monotonic() + wait_s, False
    while True:
        seen = _holder(marker)
        if seen is not None and seen.get("run_id") != run_id and owner_alive(seen.get(OWNER_TAG)) is False:
            failpoint("in_flight:takeover")  # the holder seen dead; the claim below looks again, under the lock
        with file_lock(_marker_lock(settings)):
            held = _holder(marker)  # look again: what decides is what the marker says under the lock
            alive = None if held is None else owner_alive(held.get(OWNER_TAG))
            if held is None or held.get("run_id") == run_id or alive is False or (alive is None and not exclusive):
                if held is not None and alive is False and held.get("run_id") != run_id:
                    log.warning("taking over the training marker of %s: that process is gone", held.get("run_id"))
                with atomic_path(marker) as tmp:
                    tmp.write_text(body)
                return
        what = in_flight(marker)
        if not what:
            continue  # released, or its process died, since our look under the lock
        if time.monotonic() >= deadline:
            raise PipelineError(
                f"another training run is in flight ({what}): wait for it to finish, or delete the marker if that run is dead"
            )
        if not waited:
            log.info("waiting for the other training run to finish: %s", what)
            waited = True
        time.sleep(2)


def release_in_flight(settings: Settings, run_id: str) -> None:
    """Clear the marker if ``run_id`` holds it (never another runner's)."""
    marker = in_flight_marker(settings)
    with file_lock(_marker_lock(settings)):
        held = _holder(marker)
        if held is not None and held.get("run_id") == run_id:
            marker.unlink()
