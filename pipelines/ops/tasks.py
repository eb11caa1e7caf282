"""The Airflow tasks' entry points: each task calls the function here of its own name, with
small JSON-able results.

Kept free of Airflow imports so the same functions run from a test or a shell. Every
function is keyed by an explicit day (the DAG passes the logical date), never by now(). A
task's name is the name of its step everywhere else (the DVC stage, the CLI command, the
library function); tests/unit/test_names.py checks it. The helpers here (``settings``,
``resolve_day``, ``holding``, ``nothing_to_score``, ``no_batch_reason``, ``dvc_stage``, ``retrain_in_flight``,
``drift_day``) are not tasks.
"""

from __future__ import annotations

import logging
from contextlib import AbstractContextManager, nullcontext
from datetime import date, datetime, timedelta
from typing import Any

from pipelines.config import Settings, load_settings
from pipelines.errors import PipelineError
from pipelines.io import check_not_quarantined, find_partition, parse_date, partition_files

log = logging.getLogger(__name__)


def settings() -> Settings:
    return load_settings()


def resolve_day(conf_day: str | None, logical: datetime | None, run_after: datetime | None) -> date:
    """The day a run works on: conf 'day' if given, else the logical date, else run_after."""
    if conf_day:
        return parse_date(conf_day)
    when = logical or run_after
    if when is None:
        raise PipelineError("no day to work on: pass {'day': 'YYYY-MM-DD'} in the run's conf")
    return when.date()


# ------------------------------------------------------------------ scoring DAG


# A feed that landed a batch this many days before a day is running: that day's missing batch fails
# its scoring run (an alert), it is not skipped.
FEED_GAP_DAYS = 7


def no_batch_reason(
    day: date,
    *,
    has_batch: bool,
    asked: bool,
    simulated: bool,
    calendar: tuple[date, date],
    raw_dir: str,
    latest: date | None = None,
) -> str | None:
    """Why a scoring run has nothing to score for ``day``, or None when it goes ahead.

    Unpausing a DAG with catchup=False starts a run for the latest interval (today), whatever the
    data's calendar. Such a run scores only a day that has a batch: ``has_batch`` (its raw file,
    or its quarantined one, is there) or, with the simulated feed, a day of the simulated
    ``calendar`` (first and last day), which ``land_batch`` simulates. A run that ``asked`` for
    its day (a day or a scenario in its conf, a backfill's dates) goes ahead: ``land_batch``
    simulates the day, or fails saying which file is missing.

    With your own data (``latest``: the latest landed batch before ``day``) a missing batch of a
    running feed is a failure, not a skip: the run goes ahead, ``land_batch`` fails naming the
    file and its alert reaches a person. Only a day with no batch in the ``FEED_GAP_DAYS`` before
    it (an unpaused DAG long after the data, or no data at all) is skipped."""
    if has_batch or asked:
        return None
    if not simulated:
        if latest is not None and (day - latest).days <= FEED_GAP_DAYS:
            return None
        since = f"the latest is {latest}" if latest else "there is none"
        return f"no batch for {day} in {raw_dir}, nor in the {FEED_GAP_DAYS} days before it ({since}): nothing to score"
    first, last = calendar
    if first <= day <= last:
        return None
    return (
        f"no batch for {day} in {raw_dir}, and the simulated feed's calendar is {first} to {last}: nothing to score "
        "(name the day in the run's conf to simulate it)"
    )


def nothing_to_score(day: date, run_type: str | None, conf_day: str | None, scenario: str | None) -> str | None:
    """:func:`no_batch_reason` for a scoring run of ``day``: the facts from params.yaml and
    data/. A backfill (``run_type`` "backfill") and a conf naming the day or a scenario ask for
    the day."""
    s = settings()
    sim = s.params.simulate
    first = parse_date(sim.start)
    raw_dir = s.raw_dir.relative_to(s.root) if s.raw_dir.is_relative_to(s.root) else s.raw_dir
    return no_batch_reason(
        day,
        has_batch=find_partition(s.raw_dir, day) is not None or (s.quarantine_dir / day.isoformat()).is_dir(),
        asked=bool(conf_day or scenario) or run_type == "backfill",
        simulated=s.params.data.source == "simulated",
        calendar=(first, first + timedelta(days=sim.days - 1)),
        raw_dir=str(raw_dir),
        latest=max((d for d in partition_files(s.raw_dir) if d < day), default=None),
    )


def land_batch(day: date, scenario: str | None = None, scenario_start: str | None = None, scenario_end: str | None = None) -> str:
    """Make sure the day's raw batch is there. With simulated data, simulate it (the demo feed),
    and the labels that mature today. ``scenario_start``/``scenario_end``: the scenario's window
    when it is a story longer than the day (default: today only), so the matured labels of an
    earlier day are those of that day's scenario."""
    s = settings()
    existing = find_partition(s.raw_dir, day)
    if existing is not None and scenario is None:
        return str(existing)
    if s.params.data.source != "simulated":
        if existing is not None:
            return str(existing)
        check_not_quarantined(s, day)
        raise PipelineError(f"no batch for {day} in {s.raw_dir} (expected {day}.parquet or {day}.csv)")
    from pipelines.data.simulate import simulate

    simulate(
        s,
        start=day.isoformat(),
        days=1,
        scenario=scenario,  # type: ignore[arg-type]
        scenario_start=scenario_start or day.isoformat(),
        scenario_end=scenario_end,
    )
    landed = find_partition(s.raw_dir, day)
    if landed is None:  # the simulated feed's upstream outage
        raise PipelineError(f"no batch for {day} in {s.raw_dir}: nothing landed upstream")
    return str(landed)


def validate_batch(day: date) -> dict[str, Any]:
    """Validate the day's batch; a failure raises (the task fails, downstream does not run)."""
    from pipelines.data.validate import validate_batch as validate

    s = settings()
    if find_partition(s.raw_dir, day) is None:
        check_not_quarantined(s, day)  # before Great Expectations is imported
    res = validate(s, day)
    return {"day": res["day"], "rows": res["rows"], "validated": res["validated"], "report": res["report"]}


def score(day: date) -> dict[str, Any]:
    from pipelines.serving.score import score as score_day

    res = score_day(settings(), day)
    return {k: res[k] for k in ("day", "rows", "model_version", "mean_score", "predictions", "engine")}


# ------------------------------------------------------------------ training DAG


def holding(run_id: str | None) -> AbstractContextManager[None]:
    """While a training stage task of the DAG run ``run_id`` works: the run's marker renewed
    (its lease, now and from a heartbeat) and the run named to the stage commands it starts;
    see pipelines/monitoring/inflight.py. Without a run id (a test, a shell): nothing."""
    from pipelines.monitoring.inflight import holding_in_flight

    return holding_in_flight(settings(), run_id) if run_id else nullcontext()


def dvc_stage(stage: str, day: date | None = None, run_id: str | None = None) -> dict[str, Any]:
    """One stage of dvc.yaml (prepare, validate_training, train, gate) with the real dvc CLI,
    as the training run ``run_id`` that holds the marker; `prepare` takes the run's day, so
    the training window ends there (a backfill trains on what existed then)."""
    from pipelines.ops.stages import dvc_stage as run_stage

    with holding(run_id):
        return run_stage(settings(), stage, as_of=day)


def prepare(day: date | None = None, run_id: str | None = None) -> dict[str, Any]:
    """The `prepare` stage: the training window ending at the run's day."""
    return dvc_stage("prepare", day, run_id)


def validate_training(run_id: str | None = None) -> dict[str, Any]:
    """The `validate_training` stage: the training set and holdout through their suite."""
    return dvc_stage("validate_training", run_id=run_id)


def train(run_id: str | None = None) -> dict[str, Any]:
    """The `train` stage: fit and log the candidate."""
    return dvc_stage("train", run_id=run_id)


# How long a training DAG run waits for a `make run` that holds the project's training marker.
WAIT_FOR_RUNNER_S = 1800.0


def retrain_in_flight(run_id: str | None, owner: str | None = None) -> None:
    """Mark (``run_id``) or clear (None) a training run in flight; see pipelines/monitoring/inflight.py.
    Marking waits for a `make run` in progress (one training runner per project); clearing with
    ``owner`` clears only that run's marker, never another runner's."""
    from pipelines.monitoring.inflight import claim_in_flight, release_in_flight, set_in_flight

    if run_id is not None:
        claim_in_flight(settings(), run_id, wait_s=WAIT_FOR_RUNNER_S)
    elif owner is not None:
        release_in_flight(settings(), owner)
    else:
        set_in_flight(settings(), None)


def gate(run_id: str | None = None) -> dict[str, Any]:
    """The `gate` stage, then the decision in the task log and its gist as the XCom."""
    from pipelines.io import read_json
    from pipelines.model.gate import format_decision

    dvc_stage("gate", run_id=run_id)
    decision = read_json(settings().reports_dir / "gate" / "decision.json")
    print(format_decision(decision))
    return {"passed": decision["passed"], "candidate_roc_auc": decision["candidate"]["roc_auc"], "reasons": decision["reasons"]}


def promote(override: bool = False, justification: str | None = None, run_id: str | None = None) -> dict[str, Any]:
    """Register the candidate through DVC, or with a justified override of a failed gate; then
    push its training data to the DVC remote (as the training run ``run_id``, see ``holding``)."""
    from pipelines.ops.promote import promote_and_push

    with holding(run_id):
        out = promote_and_push(settings(), (justification or "") if override else None)
    print(out["pushed"])
    return out


def clear_in_flight(owner: str | None) -> None:
    """Clear the in-flight marker of the training run ``owner`` (never a `make run`'s), however the run ended."""
    retrain_in_flight(None, owner=owner)


# ------------------------------------------------------------------ monitoring DAG


def drift_day(day: date) -> dict[str, Any]:
    from pipelines.monitoring.drift import drift as drift_of

    res = drift_of(settings(), day)
    print(f"drift {day}: retrain {'DUE' if res['retrain'] else 'not due'} - {res['reason']}")
    keys = ("day", "retrain", "drifted_features", "reason", "champion_version", "report_html", "source", "rows")
    return {k: res[k] for k in keys}


def drift(
    days: list[str], conf_day: str | None, logical: datetime | None, run_after: datetime | None, run_type: str | None = None
) -> dict[str, Any]:
    """Drift for every day whose predictions triggered this run (several events can be merged
    into one run); retraining is due if any of them drifted. A run of the daily schedule
    (``run_type`` "scheduled": no event, no conf) checks the day before its own from the online
    prediction log when that day had no batch, and otherwise ends quietly: a batch day is
    checked when its predictions are written."""
    if not days and not conf_day and run_type == "scheduled":
        from pipelines.monitoring.drift import online_only

        day = resolve_day(None, logical, run_after) - timedelta(days=1)
        if not online_only(settings(), day):
            reason = f"{day}: no online-only traffic to check (a day with a batch is checked when it is scored)"
            print(reason)
            return {"day": day.isoformat(), "retrain": False, "drifted_features": [], "reason": reason,
                    "champion_version": None, "report_html": None, "source": None, "rows": 0, "days_checked": []}
        days = [day.isoformat()]
    targets = [parse_date(d) for d in days] or [resolve_day(conf_day, logical, run_after)]
    results = [drift_day(d) for d in targets]
    due = [r for r in results if r["retrain"]]
    chosen = due[-1] if due else results[-1]
    return {**chosen, "days_checked": [r["day"] for r in results]}


def retrain_due(decision: dict[str, Any]) -> bool:
    """Whether the drift decision asks for retraining (its reason goes to the task log)."""
    print(decision["reason"])
    return bool(decision["retrain"])


def request_retrain(decision: dict[str, Any]) -> dict[str, Any]:
    """The retrain request the monitoring DAG sends with its RETRAIN_REQUEST asset event: the
    day, the reason, the drifted features and the champion they drifted from."""
    return {k: decision[k] for k in ("day", "reason", "drifted_features", "champion_version")}


def performance() -> list[dict[str, Any]]:
    """Real performance of every predicted day whose labels matured and is not measured yet."""
    from pipelines.monitoring.performance import measure_matured_days

    return measure_matured_days(settings())


def compact(logical: datetime | None, run_after: datetime | None, now: datetime | None = None) -> list[dict[str, Any]]:
    """Compact the online prediction log of the day before the run's day (closed by the daily
    run at 00:30 UTC) and of the day before that: its second run merges late parts and deletes
    the parts its compacted files hold, past serve.compact_grace_seconds. Idempotent: a day
    compacted already, with nothing new, is left as it is. ``now``: the wall clock (default: read here)."""
    from datetime import UTC

    from pipelines.serving.compact import check_closed
    from pipelines.serving.compact import compact as compact_day

    day = resolve_day(None, logical, run_after)
    clock = now or datetime.now(UTC)
    conf = settings()
    out = []
    for d in (day - timedelta(days=2), day - timedelta(days=1)):
        try:
            check_closed(d, clock, conf.params.serve.log_flush_seconds)
        except PipelineError as exc:  # a run started just after midnight: the next one compacts the day
            print(f"compact {d}: skipped, {exc}")
            continue
        res = compact_day(conf, d, clock)
        print(f"compact {d}: {res['reason']} ({res['removed']} covered file(s) removed, {res['files']} file(s) to read)")
        out.append(res)
    return out


# ------------------------------------------------------------------ rollout DAG


def rollout(action: str | None = None, reason: str | None = None) -> dict[str, Any]:
    """One step of the online rollout on the server (``PIPELINES_SERVER_URL``, default
    http://127.0.0.1:<serve.port>): ``check`` (the schedule: judge the guardrails and the live
    outcomes now) or an operator's ``pause``, ``resume``, ``advance`` or ``abort``."""
    from pipelines.ops.promote import server_url
    from pipelines.serving.client import ServerClient

    act = (action or "check").strip().lower()
    url = server_url(default=f"http://127.0.0.1:{settings().params.serve.port}")
    out = ServerClient(url, timeout_s=120).rollout(act, reason)
    log.info("rollout %s: %s", act, out.get("reason") or out.get("stage"))
    return out
