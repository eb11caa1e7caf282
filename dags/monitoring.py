"""Monitoring: runs whenever scoring writes predictions (PREDICTIONS asset); checks drift of that
day against the champion's reference with Evidently, and when PSI passes the threshold emits
RETRAIN_REQUEST (with the reason) so the training DAG starts. Otherwise it ends quietly.
Also daily at 00:30 UTC: a day the online server served without a batch (no predictions
asset) is checked from its prediction log; a day with a batch ends that run quietly.
It also measures the real performance of earlier days whose labels have matured, and compacts
the closed day's online prediction log (pipelines/serving/compact.py) into a few files.
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import dag, task
from airflow.timetables.assets import AssetOrTimeSchedule
from airflow.timetables.trigger import CronTriggerTimetable
from pipeline_assets import DEFAULT_ARGS, PREDICTIONS, RETRAIN_REQUEST


@dag(
    dag_id="monitoring",
    # the day before closes at midnight UTC; its last log parts are written within seconds
    schedule=AssetOrTimeSchedule(timetable=CronTriggerTimetable("30 0 * * *", timezone="UTC"), assets=[PREDICTIONS]),
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["credit-default", "monitoring"],
    doc_md=__doc__,
)
def monitoring() -> None:
    @task
    def drift(triggering_asset_events=None, params=None, logical_date=None, dag_run=None) -> dict:
        from pipelines.ops import tasks

        days = sorted({e.extra["day"] for evs in (triggering_asset_events or {}).values() for e in evs if e.extra.get("day")})
        return tasks.drift(days, (params or {}).get("day"), logical_date, getattr(dag_run, "run_after", None),
                           getattr(dag_run, "run_type", None))

    @task.short_circuit
    def retrain_due(decision: dict) -> bool:
        from pipelines.ops import tasks

        return tasks.retrain_due(decision)

    @task(outlets=[RETRAIN_REQUEST])
    def request_retrain(decision: dict, outlet_events=None) -> dict:
        from pipelines.ops import tasks

        request = tasks.request_retrain(decision)
        if outlet_events is not None:
            outlet_events[RETRAIN_REQUEST].extra = request
        return {"requested": True, "reason": request["reason"]}

    @task
    def performance() -> list:
        """Real performance of earlier days whose labels have matured (concept drift)."""
        from pipelines.ops import tasks

        return tasks.performance()

    @task
    def compact(logical_date=None, dag_run=None) -> list:
        """Merge the closed day's online prediction-log parts into a few files (and the day before's late ones)."""
        from pipelines.ops import tasks

        return tasks.compact(logical_date, getattr(dag_run, "run_after", None))

    decision = drift()
    retrain_due(decision) >> request_retrain(decision)
    performance()
    compact()


monitoring()
