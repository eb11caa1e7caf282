"""The gate (model CI): candidate and champion judged on the same fresh holdout.

Checks, each with its threshold in params.yaml (``gate:``); pure parts in pipelines/model/gate_checks.py:

- quality: the absolute floor through MLflow's own ``mlflow.models.evaluate`` +
  ``MetricThreshold`` / ``validate_evaluation_results`` (the candidate's metrics and plots
  land in its MLflow run; the champion's AUC on the same rows is logged beside them);
  the regression bound on the lower end of a paired bootstrap interval of the AUC difference.
  (MetricThreshold cannot express a tolerance: its ``min_absolute_change`` must be positive,
  i.e. it demands an improvement. So the bound is ours, on the interval, not a point value.)
- slices: the same AUC per segment; no slice may regress more than its bound;
- serving: p99 latency for one row and for a batch through the scoring path; size on disk;
- robustness: nulls, outliers, unseen categories, empty input, an absent column give a
  prediction or a clear error, never a crash;
- prediction shift: PSI of candidate vs champion scores on the latest production batch.

With no champion yet the absolute checks alone decide. A failed gate is not an error: the
decision record says why, and `promote` registers the candidate as challenger only.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from pipelines.config import Settings
from pipelines.errors import PipelineError, describe_crash, first_line
from pipelines.io import partition_files, read_frame, read_json, write_json, write_text
from pipelines.model import gate_checks, gate_plots
from pipelines.model.features import model_input, score_frame
from pipelines.telemetry import Sample, publish, step_succeeded
from pipelines.tracking import dvc_experiment, tag_bool

PLOT_DATA = "plot_data"  # run_checks' facts: the plots' records, written to metrics/plots/, not into the record
PLOTS_DIR = ("metrics", "plots")


def _mlflow_evaluate(model_uri: str, data: pd.DataFrame, target: str) -> Any:
    import mlflow

    return mlflow.models.evaluate(
        model_uri,
        data,
        targets=target,
        model_type="classifier",
        evaluators="default",
        evaluator_config={"log_explainer": False, "log_model_explainability": False},
    )


def _floor_check(result: Any, min_auc: float) -> dict[str, Any]:
    """The absolute floor, judged by MLflow's MetricThreshold."""
    import mlflow
    from mlflow.models import MetricThreshold
    from mlflow.models.evaluation.validation import ModelValidationFailedException

    auc = float(result.metrics["roc_auc"])
    try:
        mlflow.validate_evaluation_results({"roc_auc": MetricThreshold(threshold=min_auc, greater_is_better=True)}, result)
        ok, detail = True, "MLflow MetricThreshold passed"
    except ModelValidationFailedException as exc:
        ok, detail = False, first_line(exc, last=True)
    return gate_checks.check("roc_auc_min", auc, f">= {min_auc}", ok, detail)


def latest_production_batch(settings: Settings) -> tuple[str, pd.DataFrame] | None:
    """The most recent validated scoring batch (what the candidate would serve next), up to the
    training window's ``as_of`` day, so a backfilled run never looks at later batches."""
    files = partition_files(settings.validated_dir)
    window = settings.training_dir / "window.json"
    as_of = read_json(window).get("as_of") if window.is_file() else None
    if as_of:
        files = {day: path for day, path in files.items() if day.isoformat() <= as_of}
    if not files:
        return None
    day = max(files)
    frame = read_frame(files[day])
    n = settings.params.gate.shift_sample_rows
    if len(frame) > n:
        frame = frame.sample(n=n, random_state=0)
    return day.isoformat(), frame


def run_checks(
    settings: Settings,
    holdout: pd.DataFrame,
    cand_model: Any,
    cand_dir: Any,
    cand_result: Any,
    champ_model: Any | None,
    production: tuple[str, pd.DataFrame] | None,
    shift_waiver: str | None = None,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Every check after the MLflow evaluation; returns (checks, facts for the record).
    ``shift_waiver``: why the prediction-shift check does not judge this candidate
    (:func:`prediction_shift_waiver`); it is still measured and recorded."""
    d, g, chunk = settings.params.data, settings.params.gate, settings.params.score.chunk_rows
    checks: list[dict[str, Any]] = [_floor_check(cand_result, g.min_roc_auc)]
    facts: dict[str, Any] = {}
    y = holdout[d.target].astype("int64").to_numpy()
    try:
        p_cand = score_frame(cand_model, holdout, d, chunk)
    except Exception as exc:  # noqa: BLE001 - a candidate that crashes on the holdout is blocked, not a gate error
        checks.append(gate_checks.check("serves_holdout", "crashed", "scores every holdout row", False, describe_crash(exc)))
        return checks, facts
    masks = gate_checks.segments(holdout, g.slices)
    facts["candidate_slices"] = gate_checks.slice_metrics(y, p_cand, masks)
    plots = {"candidate": gate_plots.plot_data(y, p_cand, facts["candidate_slices"])}
    facts[PLOT_DATA] = plots

    if champ_model is not None:
        p_champ = score_frame(champ_model, holdout, d, chunk)
        facts["champion_roc_auc"] = round(gate_checks.roc_auc(y, p_champ), 6)
        seed = settings.params.train.seed
        boot = gate_checks.paired_bootstrap_auc_diff(y, p_cand, p_champ, g.bootstrap_samples, g.confidence, seed)
        facts["auc_difference"] = {k: round(v, 6) for k, v in boot.items()}
        checks.append(gate_checks.regression_check(boot, g.max_roc_auc_regression, g.confidence))
        facts["champion_slices"] = gate_checks.slice_metrics(y, p_champ, masks)
        plots["champion"] = gate_plots.plot_data(y, p_champ, facts["champion_slices"])
        checks += gate_checks.slice_checks(
            facts["candidate_slices"], facts["champion_slices"], g.max_slice_roc_auc_regression, g.min_slice_rows
        )

    latency_checks, facts["latency_ms"] = _latency_checks(settings, cand_model, holdout)
    checks += latency_checks
    size = gate_checks.directory_mb(cand_dir)
    size_ok = size <= g.max_model_size_mb
    checks.append(gate_checks.check("model_size_mb", size, f"<= {g.max_model_size_mb}", size_ok, str(cand_dir.name)))
    checks += gate_checks.robustness_probes(cand_model, holdout, d)

    if champ_model is not None and production is not None:
        day, frame = production
        p_champ_prod, p_cand_prod = score_frame(champ_model, frame, d, chunk), score_frame(cand_model, frame, d, chunk)
        shift = gate_checks.prediction_psi(p_champ_prod, p_cand_prod, settings.params.drift.n_bins)
        shift_ok = shift <= g.max_prediction_psi
        where = f"batch {day}, {len(frame)} rows"
        if shift_waiver and not shift_ok:
            shift_ok, where = True, f"{where}; waived: {shift_waiver}"
        checks.append(gate_checks.check("prediction_shift_psi", shift, f"<= {g.max_prediction_psi}", shift_ok, where))
        if shift_waiver:
            facts["prediction_shift_waived"] = shift_waiver
    return checks, facts


def prediction_shift_waiver(window: dict[str, Any], champion: Any | None) -> str | None:
    """Why the prediction-shift check cannot judge this candidate, or None (pure).

    The check compares the candidate's scores with the champion's on today's batch. After a
    real shift the champion's scores are the stale ones and a good retrain is expected to
    differ, so the check would block the very retrain that recovers the model. It is waived when
    the candidate's window follows a shift that drift or live performance recorded (its holdout
    is post-shift labels, on which the quality checks still judge it) and the champion was
    trained before that shift began."""
    since, shift = window.get("follows_shift"), window.get("shift") or {}
    trained_through = champion.tags.get("trained_through") if champion is not None else None
    if not since or not trained_through or trained_through >= since:
        return None
    return (
        f"the retrain was requested by {shift.get('trigger') or 'the drift job'} on {shift.get('detected')} after a shift "
        f"that began on {since}; the champion (v{champion.version}) trained through {trained_through}, before it, "
        "so its scores are the stale ones; the candidate is judged on post-shift labels"
    )


def _latency_checks(settings: Settings, cand_model: Any, holdout: pd.DataFrame) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """p99 latency for one row and for a batch through the scoring path; (checks, latencies)."""
    from threadpoolctl import threadpool_limits

    d, g, chunk = settings.params.data, settings.params.gate, settings.params.score.chunk_rows

    def predict(frame: pd.DataFrame) -> Any:
        return score_frame(cand_model, frame, d, chunk)

    # Latency per core: one thread, as an online worker serves a request. With OpenMP fan-out
    # every tree is a parallel region whose barrier waits for the slowest thread; on a busy
    # machine that turned 30 ms for 1,000 rows into 4 s (a false block), so it is not measured.
    batch_key = f"batch_{g.latency_batch_rows}"
    calls = {"single_row": g.latency_calls, batch_key: max(5, g.latency_calls // 4)}
    with threadpool_limits(limits=1):
        single = gate_checks.latency_ms(predict, holdout, 1, calls["single_row"], g.latency_rounds)
        batch = gate_checks.latency_ms(predict, holdout, g.latency_batch_rows, calls[batch_key], g.latency_rounds)
    latency = {"single_row": single, batch_key: batch}
    bounds = [("latency_single_row_p99_ms", g.latency_single_row_p99_ms), (f"latency_{batch_key}_p99_ms", g.latency_batch_p99_ms)]
    checks = []
    for (key, lat), (check, bound) in zip(latency.items(), bounds, strict=True):
        per_round = " / ".join(f"{x:.1f}" for x in lat["p99_rounds"])
        detail = f"p50 {lat['p50']:.2f} ms; best-round p99 of {g.latency_rounds} x {calls[key]} calls, per round {per_round} ms"
        checks.append(gate_checks.check(check, lat["p99"], f"<= {bound}", lat["p99"] <= bound, detail))
    return checks, latency


def gate(settings: Settings) -> dict[str, Any]:
    """Run the gate for models/candidate.json; write and log the decision record."""
    import mlflow

    from pipelines.failpoint import failpoint
    from pipelines.model.champion import load_verified
    from pipelines.tracking import owner_tag, setup_mlflow

    d = settings.params.data
    client = setup_mlflow(settings)
    candidate = read_json(settings.models_dir / "candidate.json")
    holdout = read_frame(settings.training_dir / "holdout.parquet")
    if holdout[d.target].isna().any():
        raise PipelineError(f"holdout has {int(holdout[d.target].isna().sum())} missing labels in {d.target!r}")
    eval_df = model_input(holdout, d)
    eval_df[d.target] = holdout[d.target].astype("int64").to_numpy()

    champ_model, champion, _ = load_verified(settings, "champion")
    cand_dir = Path(mlflow.artifacts.download_artifacts(artifact_uri=candidate["model_uri"]))
    # Only the candidate goes through mlflow.models.evaluate (its metrics and plots land in its
    # run); the champion is scored by the same serving path and compared in run_checks.
    with mlflow.start_run(run_id=candidate["run_id"]):
        mlflow.set_tags(owner_tag())  # re-opened: this process owns it while it runs
        try:
            with mlflow.start_run(run_name="gate-candidate", nested=True):
                mlflow.set_tags(owner_tag())
                cand_result = _mlflow_evaluate(candidate["model_uri"], eval_df, d.target)
                failpoint("gate")  # both runs open, no decision written
        except Exception as exc:  # noqa: BLE001 - a candidate that cannot even be evaluated is blocked
            cand_result, crash = None, describe_crash(exc)

    if cand_result is None:
        checks = [gate_checks.check("holdout_evaluation", "crashed", 
            "MLflow evaluates the candidate on the holdout", False, crash)]
        facts: dict[str, Any] = {}
        cand_auc = None
    else:
        cand_model = mlflow.sklearn.load_model(str(cand_dir))
        production = latest_production_batch(settings)
        waiver = prediction_shift_waiver(read_json(settings.training_dir / "window.json"), champion)
        checks, facts = run_checks(settings, holdout, cand_model, cand_dir, cand_result, champ_model, production, waiver)
        cand_auc = round(float(cand_result.metrics["roc_auc"]), 6)
    gate_plots.write_plots(settings.path(*PLOTS_DIR), facts.pop(PLOT_DATA, {}))
    decision = decision_record(settings, candidate, champion, holdout, checks, facts, cand_auc)
    record_decision(settings, client, decision)
    return decision


def decision_record(
    settings: Settings, candidate: dict[str, Any], champion: Any, holdout: pd.DataFrame,
    checks: list[dict[str, Any]], facts: dict[str, Any], cand_auc: float | None,
) -> dict[str, Any]:
    """The gate's decision record: verdict, reasons, every check, the facts behind them, lineage."""
    passed = all(c["passed"] for c in checks)
    champ_auc = facts.pop("champion_roc_auc", None)
    window = read_json(settings.training_dir / "window.json")
    return {
        "passed": passed,
        "verdict": "promote to champion" if passed else "register as challenger only",
        "reasons": [
            f"{c['check']}: {c['value']} (needs {c['threshold']})" + (f" - {c['detail']}" if c["detail"] else "")
            for c in checks
            if not c["passed"]
        ],
        "checks": checks,
        "evaluated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "candidate": {"run_id": candidate["run_id"], "model_uri": candidate["model_uri"], "roc_auc": cand_auc},
        "champion": (
            None if champion is None else {"version": str(champion.version), "run_id": champion.run_id, "roc_auc": champ_auc}
        ),
        "holdout": {"rows": len(holdout), "days": window.get("holdout_days", [])},
        **facts,
        "lineage": {
            k: candidate.get(k)
            for k in (
                "git_commit", "git_dirty", "data_md5", "holdout_md5", "params_md5", "lock_sha256", "train_days", "holdout_days",
            )
        }
        | {"git_dirty": tag_bool(candidate.get("git_dirty"))},  # a real boolean, also from a candidate.json of before
    }


def record_decision(settings: Settings, client: Any, decision: dict[str, Any]) -> None:
    """Log the record on the candidate's MLflow run (JSON and text) and write the DVC outputs."""
    run_id = decision["candidate"]["run_id"]
    cand_auc, champ_auc = decision["candidate"]["roc_auc"], (decision["champion"] or {}).get("roc_auc")
    passed = decision["passed"]
    readable = format_decision(decision)
    client.log_dict(run_id, decision, "gate/decision.json")
    client.log_text(run_id, readable, "gate/decision.txt")
    client.set_tag(run_id, "gate_passed", str(passed).lower())
    if cand_auc is not None:
        client.log_metric(run_id, "holdout_roc_auc", cand_auc)
    if champ_auc is not None:
        client.log_metric(run_id, "champion_holdout_roc_auc", champ_auc)
    if dvc_experiment() is None:  # an experiment's verdict is not production's
        publish(settings, "gate", gate_samples(decision))
        step_succeeded(settings, "gate")
    write_json(decision, settings.reports_dir / "gate" / "decision.json")
    write_json(decision, settings.path("metrics", "decision.json"))  # kept by git: each experiment carries its own
    write_text(readable, settings.reports_dir / "gate" / "decision.txt")
    write_json(
        {
            "candidate_roc_auc": cand_auc, "champion_roc_auc": champ_auc, "passed": passed,
            "checks_failed": sum(not c["passed"] for c in decision["checks"]), "verdict": decision["verdict"],
            **{f"auc_{k}": v for k, v in (decision.get("auc_difference") or {}).items()},
        },
        settings.path("metrics", "gate.json"),
    )


def format_decision(decision: dict[str, Any]) -> str:
    """The decision record as a few readable lines (task logs, CLI, MLflow artifact)."""
    champ = decision.get("champion")
    lines = [
        f"gate: {'PASSED' if decision['passed'] else 'FAILED'} -> {decision['verdict']}",
        f"  candidate run {decision['candidate']['run_id'][:12]} vs "
        + (f"champion v{champ['version']}" if champ else "no champion (absolute thresholds decide)")
        + f" on {decision['holdout']['rows']} holdout rows",
    ]
    for c in decision["checks"]:
        if c["value"] is None:
            continue
        detail = f"  [{c['detail']}]" if c["detail"] else ""
        lines.append(f"  {'PASS' if c['passed'] else 'FAIL'}  {c['check']}: {c['value']} (needs {c['threshold']})" + detail)
    return "\n".join(lines)


def gate_samples(decision: dict[str, Any]) -> list[Sample]:
    """The verdict as metrics (pipelines/telemetry.py): passed with its reason class (the first
    failed check), and candidate minus champion AUC when both were measured."""
    failed = [c["check"] for c in decision["checks"] if not c["passed"]]
    champion = decision["champion"] or {}
    version = {"champion_version": str(champion.get("version") or "")}
    out: list[Sample] = [
        ("pipelines_gate_passed", {"reason_class": failed[0] if failed else "passed", **version}, 1 if decision["passed"] else 0)
    ]
    cand_auc, champ_auc = decision["candidate"]["roc_auc"], champion.get("roc_auc")
    if cand_auc is not None and champ_auc is not None:
        out.append(("pipelines_gate_auc_delta", version, cand_auc - champ_auc))
    return out
