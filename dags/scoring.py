"""Scoring: daily; lands and validates the day's batch, scores it with the champion, writes the
date partition and emits the PREDICTIONS asset (which schedules monitoring).

A validation failure fails the run: the batch is quarantined and nothing downstream runs.
A run for a day with no batch (unpausing the DAG starts one for today) is skipped with the reason:
see pipelines.ops.tasks.no_batch_reason.
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import Param, dag, task
from pipeline_assets import DEFAULT_ARGS, PREDICTIONS


@dag(
    dag_id="scoring",
    schedule="@daily",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["credit-default", "scoring"],
    params={
        "day": Param(None, type=["null", "string"], description="Day to score (YYYY-MM-DD); default the logical date."),
        "scenario": Param(None, type=["null", "string"], description="Simulated feed only: stable, feature_drift, ..."),
        # A story replayed as a backfill (pipelines/ops/replay.py) lands each day inside the
        # scenario's window, so a day before the window is the stable feed.
        "scenario_start": Param(
            None, type=["null", "string"], description="Simulated feed only: first day of the scenario (default: the run's day)."
        ),
        "scenario_end": Param(
            None,
            type=["null", "string"],
            description="Simulated feed only: first day the scenario no longer applies (default: never).",
        ),
    },
    doc_md=__doc__,
)
def scoring() -> None:
    @task
    def land_batch(params: dict | None = None, logical_date=None, dag_run=None) -> str:
        from pipelines.ops import tasks

        p = params or {}
        day = tasks.resolve_day(p.get("day"), logical_date, getattr(dag_run, "run_after", None))
        run_type = getattr(dag_run, "run_type", None)
        reason = tasks.nothing_to_score(day, getattr(run_type, "value", run_type), p.get("day"), p.get("scenario"))
        if reason:  # the run ends skipped: no alert, nothing downstream, no PREDICTIONS event
            from airflow.sdk.exceptions import AirflowSkipException

            raise AirflowSkipException(reason)
        tasks.land_batch(day, p.get("scenario"), p.get("scenario_start"), p.get("scenario_end"))
        return day.isoformat()

    @task
    def validate_batch(day: str) -> dict:
        from pipelines.io import parse_date
        from pipelines.ops import tasks

        return tasks.validate_batch(parse_date(day))

    @task(outlets=[PREDICTIONS])
    def score(validated: dict, outlet_events=None) -> dict:
        from pipelines.io import parse_date
        from pipelines.ops import tasks

        res = tasks.score(parse_date(validated["day"]))
        if outlet_events is not None:
            outlet_events[PREDICTIONS].extra = {"day": res["day"], "model_version": res["model_version"]}
        return res

    score(validate_batch(land_batch()))


scoring()
