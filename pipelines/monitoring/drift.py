"""Drift of a day against the serving champion's frozen reference profile: the drift step.

- PSI per feature is counted exactly over the whole batch, streamed in chunks into the bins
  frozen at training time (pipelines/model/profile.py): memory is bounded by the chunk size.
- The day's inputs are its validated batch; a day with no validated batch that the online
  server served is checked from its prediction log instead (pipelines/serving/predlog.py logs
  each request's model inputs): the rows that answered a client (champion, canary), never a
  shadow's duplicate of the same request. The summary says which (``source``).
- Prediction drift: PSI of the day's champion scores (batch and online) against the scores on
  its training data.
- Null-rate change per feature.
- One number everywhere: the PSI that decides is the one logged to MLflow, the one the
  Evidently HTML report shows and the one in its Prometheus metric (pipelines/telemetry.py).
- The retrain decision applies its brakes (pipelines/monitoring/decision.py), among them the
  training-run marker (pipelines/monitoring/inflight.py). The decision and its reasons are
  recorded in the JSON summary and in MLflow.
"""

from __future__ import annotations

import logging
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd

from pipelines.config import Settings
from pipelines.engine import choose_engine, engine_name, spark_master
from pipelines.errors import PipelineError, first_line
from pipelines.io import check_not_quarantined, day_parts, partition_files, read_json, write_json
from pipelines.model.champion import champion_profile
from pipelines.monitoring.decision import drifted_features, performance_alarm, retrain_decision, window_grown
from pipelines.monitoring.inflight import IN_FLIGHT_MARKER, in_flight
from pipelines.monitoring.report import drift_samples, write_day_report
from pipelines.telemetry import publish, step_succeeded

log = logging.getLogger(__name__)
SERVED = ("champion", "canary")  # the prediction log's rows that answered a client (pipelines/serving/predlog.py)


def stream_counts(
    path: Path, profile: dict[str, Any], chunk_rows: int, sample_rows: int
) -> tuple[dict[str, dict[str, float]], int, list[pd.DataFrame]]:
    """The local engine: stream a Parquet batch in chunks into the profile's frozen bins.
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
    """Drift of the validated batch of ``day`` (or, with none, of its online prediction log):
    JSON summary, HTML report, MLflow run.

    ``engine`` (default ``engine.name``, pipelines/engine.py) counts the rows into the frozen
    bins: "local" streams local Parquet files in chunks, "spark" runs the same counts in Spark
    SQL (pipelines/monitoring/drift_spark.py), "auto" picks Spark for a large day. ``source``
    replaces the validated file, e.g. a URI Spark reads; it is not validated here, and prediction
    drift is skipped (the local predictions of ``day`` need not be of that batch).

    The summary's ``source``: "batch" (the batch's features and scores), "both" (the batch's
    features; the champion's batch and online scores), "online" (features and scores from the
    prediction log: the day had no validated batch). ``rows`` are the feature rows counted,
    ``score_rows`` the champion's scores per origin.
    """
    from pipelines.tracking import setup_mlflow

    dp = settings.params.drift
    override = engine_name(engine) if engine else None  # a bad --engine fails before any work
    batch, parts = _inputs(settings, day, source)
    engine = choose_engine(settings, [batch] if batch else parts, override)
    if engine == "local" and source is not None and not Path(source).is_file():
        raise PipelineError(f"no Parquet file at {source} (the local engine reads local files; use --engine spark for URIs)")
    setup_mlflow(settings)
    profile, champion = champion_profile(settings)
    counted = count_batch(settings, engine, batch, profile) if batch else count_log(settings, engine, parts, profile)
    per_feature, rows, sample = counted
    if rows == 0:
        where = batch or f"the served rows in {parts[0].parent}"
        raise PipelineError(f"the {'batch' if batch else 'prediction log'} for {day} ({where}) has no rows: nothing to compare")
    psi = {c: r["psi"] for c, r in per_feature.items()}
    version = str(champion.version)
    score_psi, score_rows = (None, None) if source is not None else champion_score_psi(settings, day, profile, version)
    origin = "online" if batch is None else "both" if score_rows and score_rows["online"] else "batch"

    out_dir = settings.reports_dir / "drift"
    decision = _decide(settings, day, psi, profile, champion, out_dir)
    html = out_dir / f"{day.isoformat()}.html" if dp.html_report else None
    if html is not None:
        write_day_report(settings, sample, psi, html)
    summary = {
        "day": day.isoformat(),
        "champion_version": version,
        "psi_threshold": dp.psi_threshold,
        # unrounded: the same float as the MLflow metric and the HTML report
        "psi": dict(sorted(psi.items())),
        "null_rate": {k: round(v["null_rate"], 6) for k, v in sorted(per_feature.items())},
        "null_rate_reference": {k: round(v["null_rate_reference"], 6) for k, v in sorted(per_feature.items())},
        "score_psi": score_psi,
        "importance": profile.get("importance"),
        **decision,
        "report_html": str(html) if html else None,
        "source": origin,
        "rows": int(rows),
        "score_rows": score_rows,
        "engine": engine,
    }
    _record(settings, summary, out_dir)
    return summary


def _record(settings: Settings, summary: dict[str, Any], out_dir: Path) -> None:
    """The day's drift everywhere it is read: MLflow, the shift a retrain request follows, the
    JSON summary, the metrics."""
    _log_run(summary)
    if summary["retrain"] and summary["shift_start"]:  # a refresh keeps the shift its window follows
        record_shift(settings, summary)
    write_json(summary, out_dir / f"{summary['day']}.json")
    publish(settings, "drift", drift_samples(summary))
    step_succeeded(settings, "drift")


def _inputs(settings: Settings, day: date, source: str | None) -> tuple[str | None, list[Path]]:
    """What to count: ``source``, or the validated file of ``day``, or else (None and) the
    part files of its online prediction log; fails early with one line when the day has neither."""
    if source is not None:
        return source, []
    src = settings.validated_dir / f"{day.isoformat()}.parquet"
    if src.is_file():
        return str(src), []
    parts = day_parts(settings.online_predictions_dir, day)
    if parts:  # served online only (or its batch is quarantined): what the champion answered that day
        return None, parts
    check_not_quarantined(settings, day)
    raise PipelineError(
        f"no validated batch for {day} ({src} missing) and no online prediction log "
        f"({settings.online_predictions_dir / day.isoformat()}): run `validate --date {day}` first"
    )


def online_only(settings: Settings, day: date) -> bool:
    """Whether ``day`` was served only online: a prediction log and no validated batch (a day
    with a batch is checked when its predictions are written)."""
    has_batch = (settings.validated_dir / f"{day.isoformat()}.parquet").is_file()
    return not has_batch and bool(day_parts(settings.online_predictions_dir, day))


def _decide(
    settings: Settings, day: date, psi: dict[str, float], profile: dict[str, Any], champion: Any, out_dir: Path
) -> dict[str, Any]:
    """The retrain decision of ``day``, with everything its brakes read: the earlier summaries,
    the champion's training window, the training-run marker, matured labels, live performance."""
    dp = settings.params.drift
    trained_through = champion.tags.get("trained_through")
    labelled = labelled_days(settings)
    count = champion.tags.get("train_day_count")
    refresh = window_grown(
        day, champion.tags.get("window_follows_shift") or None, int(count) if count else None, labelled,
        settings.params.prepare.window_days, settings.params.prepare.holdout_days,
    ) if dp.refresh_after_shift else None
    return retrain_decision(
        day,
        drifted_features(psi, dp.psi_threshold),
        psi,
        drift_history(out_dir, day),
        str(champion.version),
        date.fromisoformat(trained_through) if trained_through else None,
        in_flight(out_dir / IN_FLIGHT_MARKER),
        dp,
        profile.get("importance"),
        labelled,
        performance_alarm(performance_history(settings), str(champion.version), _float(champion.tags.get("holdout_roc_auc")), dp)
        if dp.min_live_roc_auc > 0 or dp.max_live_auc_drop < 1
        else None,
        refresh,
    )


def labelled_days(settings: Settings) -> list[str]:
    """The validated days whose labels have matured (ISO), what a retrain can learn from."""
    labels = partition_files(settings.labels_dir)
    return [d.isoformat() for d in partition_files(settings.validated_dir) if d in labels]


def record_shift(settings: Settings, summary: dict[str, Any]) -> None:
    """Record the shift behind a retrain request (``settings.shift_file``): the training window
    follows it (pipelines/data/prepare.py), and the gate waives its prediction-shift check for a
    candidate trained after it against a champion trained before it (pipelines/model/gate.py)."""
    trigger = " and ".join(
        what for what, on in (("drift", summary["drifted_features"]), ("live performance", summary["performance_alarm"])) if on
    )
    write_json(
        {
            "since": summary["shift_start"],
            "detected": summary["day"],
            "trigger": trigger,
            "champion_version": summary["champion_version"],
            "reason": summary["reason"],
        },
        settings.shift_file,
    )


def count_batch(
    settings: Settings, engine: str, source: str, profile: dict[str, Any]
) -> tuple[dict[str, Any], int, list[pd.DataFrame]]:
    """PSI and null rates per feature, the row count and a report sample, by ``engine``."""
    dp = settings.params.drift
    if engine == "spark":
        from pipelines.monitoring.drift_spark import spark_drift

        per_feature, rows, head = spark_drift(
            source, profile, spark_master(settings), dp.report_sample_rows, conf=settings.engine.spark_conf
        )
        return per_feature, rows, [head]
    return stream_counts(Path(source), profile, dp.chunk_rows, dp.report_sample_rows)


def count_log(
    settings: Settings, engine: str, parts: list[Path], profile: dict[str, Any]
) -> tuple[dict[str, Any], int, list[pd.DataFrame]]:
    """PSI and null rates per feature of the served rows of a day's prediction log (its
    ``parts``), the row count and a report sample, by ``engine``."""
    dp = settings.params.drift
    served = served_counts(parts, [*profile["numerical"], *profile["categorical"]])
    if not served:
        raise PipelineError(f"the prediction log in {parts[0].parent} has no model inputs: its parts predate them")
    if engine == "spark":
        from pipelines.monitoring.drift_spark import spark_drift

        paths = [str(p) for p, _ in served]
        per_feature, rows, head = spark_drift(
            paths, profile, spark_master(settings), dp.report_sample_rows, SERVED, settings.engine.spark_conf
        )
        return per_feature, rows, [head]
    return stream_log_counts(served, profile, dp.chunk_rows, dp.report_sample_rows)


def served_counts(parts: list[Path], features: list[str]) -> list[tuple[Path, int]]:
    """Each part of a day's prediction log with its served rows (champion, canary), reading
    only its ``variant`` column. A part written before the log carried the model's inputs is
    left out, with a warning."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    out = []
    for path in parts:
        try:
            pf = pq.ParquetFile(path)
            missing = [c for c in [*features, "variant"] if c not in pf.schema_arrow.names]
            if missing:
                log.warning("%s has no column %r (written before the log carried the model's inputs): left out", path, missing[0])
                continue
            variant = pf.read(columns=["variant"], use_threads=False).column("variant")
        except (pa.ArrowException, OSError) as exc:
            raise PipelineError(f"{path} is not a readable Parquet file: {first_line(exc)}") from exc
        out.append((path, int(pc.sum(pc.is_in(variant, value_set=pa.array(SERVED))).as_py() or 0)))
    return out


def stream_log_counts(
    served: list[tuple[Path, int]], profile: dict[str, Any], chunk_rows: int, sample_rows: int
) -> tuple[dict[str, dict[str, float]], int, list[pd.DataFrame]]:
    """The local engine on a prediction log: the served rows of each part (``served``, from
    :func:`served_counts`) streamed in chunks into the frozen bins, and a report sample drawn
    across all of them, as :func:`stream_counts` does for a batch."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    from pipelines.model.profile import Accumulator, stream_batches

    acc = Accumulator(profile)
    picks = sample_positions(sum(n for _, n in served), sample_rows)
    sample: list[pd.DataFrame] = []
    for path, n in served:
        if n == 0:
            continue
        for part in stream_batches(path, [*acc.counts, "variant"], chunk_rows):
            chunk = part.filter(pc.is_in(part.column("variant"), value_set=pa.array(SERVED)))
            lo, hi = np.searchsorted(picks, [acc.rows, acc.rows + len(chunk)])
            if hi > lo:
                sample.append(chunk.take(picks[lo:hi] - acc.rows).to_pandas())
            acc.add(chunk)
    return acc.result(), acc.rows, sample


def champion_score_psi(
    settings: Settings, day: date, profile: dict[str, Any], champion_version: str
) -> tuple[float | None, dict[str, int]]:
    """PSI of the day's champion scores (batch and online) against its scores on its training
    data (None when the day has no predictions by that champion), and how many scores of each
    origin ("batch", "online") it counted."""
    from pipelines.model.profile import bin_numeric, stream_parquet
    from pipelines.model.profile import psi as psi_of

    pred = settings.predictions_dir / f"{day.isoformat()}.parquet"
    # batch predictions, then the online server's log of the day (the rows the champion answered)
    sources = ([pred] if pred.is_file() else []) + day_parts(settings.online_predictions_dir, day)
    counts = None
    rows = {"batch": 0, "online": 0}
    for path in sources:
        online = path != pred
        columns = ["score", "model_version", *(["variant"] if online else [])]
        for chunk in stream_parquet(path, columns, settings.params.drift.chunk_rows):
            keep = chunk["model_version"] == champion_version
            if online:
                keep &= chunk["variant"] == "champion"
            c = bin_numeric(chunk["score"][keep].to_numpy(dtype="float64"), profile["score"]["edges"])
            counts = c if counts is None else counts + c
            rows["online" if online else "batch"] += int(c.sum())
    if counts is None or counts.sum() == 0:
        return None, rows
    return psi_of(profile["score"]["counts"], counts), rows


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


def _log_run(summary: dict[str, Any]) -> None:
    """One MLflow run per drift job: PSI per feature, the score PSI, the decision and its reason."""
    import mlflow

    from pipelines.tracking import owner_tag

    day, decision = summary["day"], summary
    with mlflow.start_run(run_name=f"drift-{day}"):
        mlflow.set_tags({
            **owner_tag(), "step": "drift", "day": day, "champion_version": summary["champion_version"],
            "engine": summary["engine"], "source": summary["source"], "reason": decision["reason"][:5000],
        })
        metrics = {f"psi_{k}": v for k, v in summary["psi"].items()}
        if summary["score_psi"] is not None:
            metrics["score_psi"] = summary["score_psi"]
        metrics["retrain"] = float(decision["retrain"])
        mlflow.log_metrics(metrics)
        mlflow.log_dict(summary, "drift_summary.json")
