"""Command line: `python -m pipelines <command>`; each command is a thin wrapper over a function.

Exit code 0 on success; non-zero with a one-line reason on stderr on failure (a failed
validation is a failure and lists one line per failed expectation).

Process exit: with pyarrow 25 a short-lived process that has read Parquet can abort at
interpreter exit ("terminate called without an active exception", SIGABRT) after its work is
done (apache/arrow#34314). Arrow's global CPU/IO thread pools are joined by C++ static
destructors during finalization, and a race there ends in std::terminate; the pool threads
exist whether or not a read used threads. So every command, on every path (success, failure,
usage error, uncaught bug), leaves with ``os._exit`` once its output is flushed: static
destructors never run and the teardown never happens. Reads also use ``use_threads=False``
(pipelines/io.py). Airflow tasks are safe for the same reason: the task supervisor's forked
child ends with ``os._exit``.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import traceback
from collections.abc import Callable
from typing import Any

import typer

from pipelines.errors import PipelineError, ValidationFailed

log = logging.getLogger("pipelines.cli")
app = typer.Typer(
    help="Credit-default MLOps pipeline: simulate, validate, train, gate, promote, score, watch drift.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
STATE: dict[str, Any] = {"params": None, "json": False}


def _quiet_libraries() -> None:
    """Keep step output readable: library chatter below WARNING and known-benign hints off."""
    import warnings

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    # We pass 0/1 integer labels on purpose; MLflow's classifier evaluator still guesses "None".
    logging.getLogger("mlflow.models.evaluation.evaluators.classifier").setLevel(logging.ERROR)
    # Model input is float64 by construction (pipelines/model/features.py); the hint is about the label.
    warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer column")


def _settings() -> Any:
    from pipelines.config import load_settings

    return load_settings(STATE["params"])


def _emit(result: Any) -> None:
    """Full JSON with --json; otherwise one readable line of the scalar fields."""
    if result is None:
        return
    if STATE["json"] or not isinstance(result, dict):
        print(json.dumps(result, indent=2, default=str))
        return
    parts = []
    for key, value in result.items():
        if isinstance(value, (list, tuple)):
            value = f"{len(value)} item(s)" if len(value) > 3 else ", ".join(map(str, value)) or "none"
        elif isinstance(value, dict):
            continue
        parts.append(f"{key}={value}")
    print("  ".join(parts))


def _run(fn: Callable[[], Any], emit: bool = True) -> Any:
    """Run a step; turn a PipelineError into a one-line reason and exit code 1."""
    try:
        result = fn()
    except ValidationFailed as exc:
        log.error("%s", exc)
        for line in exc.failures:
            print(f"  - {line}", file=sys.stderr)
        _exit(1)
    except PipelineError as exc:
        log.error("%s", exc)
        _exit(1)
    except Exception as exc:
        # The tracking server went away mid-step: one line naming it, not a traceback.
        if not _tracking_failure(exc):
            raise
        from pipelines.tracking import unreachable

        log.error("%s", unreachable(os.environ.get("MLFLOW_TRACKING_URI", "?"), exc))
        _exit(1)
    if emit:
        _emit(result)
    return result


def _tracking_failure(exc: BaseException) -> bool:
    """An MLflow REST call that failed for want of the server (refused, reset, timed out)."""
    requests_exc = getattr(sys.modules.get("requests"), "RequestException", None)
    if requests_exc is not None and isinstance(exc, requests_exc):
        return True
    mlflow_exc = getattr(sys.modules.get("mlflow.exceptions"), "MlflowException", None)
    return mlflow_exc is not None and isinstance(exc, mlflow_exc) and ("API request to" in str(exc) or "Max retries exceeded" in str(exc))


def _exit(code: int) -> None:
    """Leave without interpreter finalization (see the module docstring), after doing by hand
    the clean-up that atexit would have done: end an open MLflow run, flush logs and streams."""
    mlflow = sys.modules.get("mlflow")
    if mlflow is not None and mlflow.active_run() is not None:
        mlflow.end_run(status="FINISHED" if code == 0 else "FAILED")
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _day(value: str | None, folder_attr: str = "validated_dir") -> Any:
    from pipelines.io import parse_date, partition_files

    if value:
        return parse_date(value)
    days = list(partition_files(getattr(_settings(), folder_attr)))
    if not days:
        raise PipelineError("no day found; pass --date YYYY-MM-DD")
    return days[-1]


@app.callback()
def main(
    params: str | None = typer.Option(None, "--params", help="params.yaml to use (default: the project's)."),
    as_json: bool = typer.Option(False, "--json", help="Print each command's full result as JSON."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Only warnings and errors on stderr (no progress)."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Debug lines too (the tools run, their folders)."),
) -> None:
    from pipelines.log import setup

    if quiet and verbose:
        raise typer.BadParameter("--quiet and --verbose contradict each other")
    STATE["params"] = params
    STATE["json"] = as_json
    setup(logging.WARNING if quiet else logging.DEBUG if verbose else logging.INFO)
    _quiet_libraries()


@app.command()
def init(
    raw: str = typer.Option(..., "--raw", help="Folder of daily batches: <YYYY-MM-DD>.parquet or .csv, no label column."),
    labels: str = typer.Option(..., "--labels", help="Folder of matured labels, one file per day: the id and the target."),
    target: str = typer.Option(..., "--target", help="The label column in the labels files."),
    positive_label: str | None = typer.Option(
        None, "--positive-label", help="The target value that means positive (e.g. yes, bad); not needed for 0/1 labels."
    ),
) -> None:
    """Onboard your own data: infer the column roles, write params.yaml's data section and the
    window sizes that fit it, propose both suites; then print what to review."""
    from pathlib import Path

    from pipelines.config import project_root
    from pipelines.data.onboard import init as fn
    from pipelines.data.onboard import review_lines

    def go() -> dict[str, Any]:
        params_file = Path(STATE["params"]) if STATE["params"] else project_root() / "params.yaml"
        return fn(params_file.resolve().parent, Path(raw).resolve(), Path(labels).resolve(), target, positive_label, params_file)

    res = _run(go, emit=STATE["json"])
    if not STATE["json"]:
        print("\n".join(review_lines(res)))


@app.command()
def simulate(
    start: str | None = typer.Option(None, help="First day (YYYY-MM-DD); default simulate.start."),
    days: int | None = typer.Option(None, help="Number of days; default simulate.days."),
    scenario: str | None = typer.Option(None, help="stable | feature_drift | concept_drift | data_quality."),
    scenario_start: str | None = typer.Option(None, help="First day the scenario applies; default: --start."),
    rows: int | None = typer.Option(None, help="Rows per day; default simulate.rows_per_day."),
) -> None:
    """Generate seeded daily batches (data/raw) and matured labels (data/labels)."""
    from pipelines.data.simulate import simulate as fn

    _run(lambda: fn(_settings(), start, days, scenario, scenario_start, rows))  # type: ignore[arg-type]


@app.command()
def validate(
    date: str | None = typer.Option(None, "--date", help="Validate the raw batch of this day."),
    all_days: bool = typer.Option(False, "--all", help="Validate every raw day not yet validated."),
    training: bool = typer.Option(False, "--training", help="Validate data/training/{train,holdout}.parquet."),
    profile: str | None = typer.Option(
        None, "--profile", help="Propose a suite (daily_batch | training_set) from reference data instead."
    ),
    out: str | None = typer.Option(None, help="With --profile: where to write the proposal."),
) -> None:
    """Validate data with the Great Expectations suites in expectations/; failures quarantine."""
    from pipelines.data.validate_modes import validate as fn

    _run(lambda: fn(_settings(), date, all_days, training, profile, out))


@app.command()
def prepare(
    as_of: str | None = typer.Option(
        None, "--as-of", envvar="PIPELINES_AS_OF",
        help="Use only days up to this one (YYYY-MM-DD; the training DAG passes its logical date); default the latest validated day.",
    ),
) -> None:
    """Assemble the training window and fresh holdout from validated, labelled days."""
    from pipelines.data.prepare import prepare as fn

    _run(lambda: fn(_settings(), _day(as_of, "validated_dir") if as_of else None))


@app.command()
def train() -> None:
    """Train the candidate Pipeline and log it to MLflow (writes models/candidate.json)."""
    from pipelines.model.train import train as fn

    _run(lambda: fn(_settings()))


@app.command()
def gate() -> None:
    """Judge the candidate against the champion on the same holdout; write the decision record."""
    from pipelines.model.gate import format_decision
    from pipelines.model.gate import gate as fn

    def go() -> Any:
        decision = fn(_settings())
        log.info("%s", format_decision(decision))
        return decision

    _run(go)


@app.command(hidden=True)
def evaluate() -> None:
    """Deprecated name of `gate`: runs the same step."""
    log.warning("`evaluate` is deprecated: use `gate` (the same step)")
    gate()


@app.command()
def promote(
    version: str | None = typer.Option(None, help="Manually make this version champion (needs --reason)."),
    reason: str | None = typer.Option(None, help="Written justification for a manual promotion."),
    override: str | None = typer.Option(
        None, help="Promote the gated candidate even if the gate failed; the value is the recorded justification."
    ),
) -> None:
    """Register the gated candidate (champion if it passed, else challenger), or promote by hand."""
    from pipelines.model.registry import promote_version
    from pipelines.ops.promote import notify_server
    from pipelines.ops.promote import promote as fn

    if version:
        _run(lambda: {**promote_version(_settings(), version, reason or ""), "server": _reloaded(notify_server())})
    else:
        _run(lambda: fn(_settings(), override_reason=override))


def _reloaded(out: Any) -> str:
    """What the online server said after a reload call (see ops/promote.notify_server)."""
    from pipelines.serving.client import reload_summary

    return reload_summary(out)


@app.command()
def challenger(
    version: str | None = typer.Option(None, help="The registered version to roll out online (shadow, canary, champion)."),
    clear: bool = typer.Option(False, "--clear", help="End the rollout: remove the challenger alias."),
    reason: str = typer.Option(..., help="Why (recorded on the version)."),
) -> None:
    """Land a registered version as challenger for the online rollout, or clear it (the champion never moves)."""
    from pipelines.model.registry import challenger as fn
    from pipelines.ops.promote import notify_server

    def land() -> dict[str, Any]:
        if clear == (version is not None):
            raise PipelineError("give either --version N or --clear")
        return {**fn(_settings(), None if clear else version, reason), "server": _reloaded(notify_server())}

    _run(land)


@app.command()
def rollback(reason: str = typer.Option(..., help="Why the current champion is being rolled back.")) -> None:
    """Move the champion alias back to the previous champion."""
    from pipelines.model.registry import rollback as fn
    from pipelines.ops.promote import notify_server

    _run(lambda: {**fn(_settings(), reason), "server": _reloaded(notify_server())})


@app.command()
def score(date: str | None = typer.Option(None, "--date", help="Day to score; default the latest validated.")) -> None:
    """Score a validated daily batch with models:/<name>@champion."""
    from pipelines.serving.score import score as fn

    _run(lambda: fn(_settings(), _day(date)))


@app.command()
def drift(
    date: str | None = typer.Option(None, "--date", help="Day to check; default the latest validated."),
    engine: str | None = typer.Option(None, "--engine", help="arrow (streamed here) or spark; default drift.engine in params.yaml."),
    source: str | None = typer.Option(
        None, "--input", help="Batch to check instead of data/validated/<day>.parquet (spark: any URI it reads, e.g. s3a://...)."
    ),
) -> None:
    """PSI per feature against the champion's reference (Evidently); says if retraining is due."""
    from pipelines.monitoring.drift import drift as fn

    def go() -> Any:
        if source and not date:
            raise PipelineError("--input needs --date: the day the batch is for (its report and the retrain streak are kept by day)")
        res = fn(_settings(), _day(date), engine, source)
        log.info("drift: retrain %s - %s", "DUE" if res["retrain"] else "not due", res["reason"])
        return res

    _run(go)


@app.command()
def performance(
    date: str | None = typer.Option(None, "--date", help="Day whose labels matured; default every such day not yet measured."),
) -> None:
    """Real ROC AUC of past predictions once their labels matured, logged to MLflow as a time series."""
    from pipelines.monitoring.performance import measure_matured_days
    from pipelines.monitoring.performance import performance as fn

    if date:
        _run(lambda: fn(_settings(), _day(date)))
    else:
        _run(lambda: {"measured": measure_matured_days(_settings())})


@app.command()
def push() -> None:
    """`dvc push` the training data to the DVC remote and tag the last registered version with it."""
    from pipelines.ops.reproduce import push as fn

    _run(lambda: fn(_settings()))


@app.command()
def reproduce(
    ref: str = typer.Argument("champion", help="Version number (3 or v3) or alias (champion, challenger)."),
    keep: bool = typer.Option(False, help="Keep the temporary worktree for inspection."),
) -> None:
    """Rebuild a registered version from its lineage (commit, DVC data, params) and compare.

    Exit 0 only on an exact match (identical holdout predictions and metrics); exit 1 with what
    differs, or with why it cannot be rebuilt (dirty tree, data missing from the DVC remote).
    Never touches the live registry aliases or the working tree.
    """
    from pipelines.ops.reproduce import reproduce as fn
    from pipelines.ops.reproduce import require_exact, verdict_lines

    def go() -> Any:
        report = fn(_settings(), ref, keep=keep)
        for line in verdict_lines(report):
            log.info("%s", line)
        return require_exact(report)

    _run(go)


@app.command()
def status(as_json: bool = typer.Option(False, "--json", help="Machine-readable output.")) -> None:
    """Champion, challenger, last gate decision and where the latest outputs are."""
    from pipelines.model.registry import status as fn

    as_json = as_json or STATE["json"]
    res = _run(lambda: fn(_settings()), emit=False)
    if as_json:
        print(json.dumps(res, indent=2, default=str))
    else:
        from pipelines.ops.cycle import status_lines

        print("\n".join(status_lines(res, detail=True)))


@app.command()
def serve(
    host: str | None = typer.Option(None, help="Interface to listen on; default serve.host (127.0.0.1)."),
    port: int | None = typer.Option(None, help="Port; default serve.port."),
    reload_any_host: bool = typer.Option(
        False, "--reload-any-host", help="Accept POST /reload and rollout actions from any host (token still needed); default serve.reload_any_host."
    ),
    workers: int = typer.Option(1, min=1, help="Worker processes on one socket; a worker that dies is replaced."),
) -> None:
    """Serve the registry's champion online (FastAPI on uvicorn): /invocations, /predict, /metrics.

    Alias moves are picked up every serve.poll_seconds, or at once through POST /reload with
    the bearer token in $PIPELINES_RELOAD_TOKEN. A challenger is rolled out in shadow, then
    canary stages, under guardrails (params.yaml serve:).
    """
    from pipelines.serving.launch import serve as fn

    _run(lambda: fn(_settings(), host, port, reload_any_host or None, workers, STATE["params"]), emit=False)


@app.command()
def replay(
    story: str = typer.Option("login_policy", "--story", help="login_policy | concept_shift | skew | null_spike | bad_retrain | flapping."),
    days: int | None = typer.Option(None, "--days", help="Served days after the warm-up; default: the story's."),
    out: str | None = typer.Option(None, "--out", help="Folder for the replay's own project and its timeline; default replays/<story>."),
    quick: bool = typer.Option(False, "--quick", help="Compressed calendar (labels in 3 days, 5-day window): the same story in fewer days."),
    reports: bool = typer.Option(False, "--reports", help="Also write every day's GE Data Docs and Evidently HTML report (slower)."),
) -> None:
    """Replay a failure story day by day through the real steps; writes a timeline (HTML, PNG, JSON)."""
    from pathlib import Path

    from pipelines.ops.replay import replay as fn

    res = _run(lambda: fn(story, days, Path(out) if out else None, quick, reports=reports), emit=False)
    if STATE["json"]:
        print(json.dumps({k: res[k] for k in ("story", "headline", "guards", "audit", "retrains", "seconds")}, indent=2, default=str))


@app.command()
def run() -> None:
    """The whole cycle once: simulate, validate, dvc repro, score, drift, then a summary."""
    from pipelines.ops.cycle import run as fn
    from pipelines.ops.cycle import summary_lines

    res = _run(lambda: fn(_settings()), emit=False)
    print("\n".join(["", *summary_lines(res)]))


if __name__ == "__main__":
    try:
        app()  # standalone mode: click prints usage errors and raises SystemExit
        code = 0
    except SystemExit as exc:
        if isinstance(exc.code, str):
            print(exc.code, file=sys.stderr)
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:  # a bug: show it, but still leave without finalization
        traceback.print_exc()
        code = 1
    _exit(code)
