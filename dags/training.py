"""Training: daily, on manual trigger (with a reason and an optional gate override), and when
the monitoring DAG requests a retrain through the RETRAIN_REQUEST asset.

Each task calls the function of its own name in pipelines.ops.tasks and has the name of its
dvc.yaml stage; the stages run through `dvc repro`. Every stage task holds the training marker
as its run (it renews the marker's lease while it works, see pipelines/monitoring/inflight.py).
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import Param, dag, task
from airflow.timetables.assets import AssetOrTimeSchedule
from airflow.timetables.trigger import CronTriggerTimetable
from pipeline_assets import DEFAULT_ARGS, RETRAIN_REQUEST


@dag(
    dag_id="training",
    schedule=AssetOrTimeSchedule(
        timetable=CronTriggerTimetable("0 3 * * *", timezone="UTC"), assets=[RETRAIN_REQUEST]
    ),
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,  # two retrains never race for the champion alias
    default_args=DEFAULT_ARGS,
    tags=["credit-default", "training"],
    params={
        "reason": Param("scheduled", type="string", description="Why this run (shown in the decision log)."),
        "override_gate": Param(False, type="boolean", description="Promote even if the gate fails."),
        # Optional (null allowed): a string Param defaulting to "" counts as missing in the
        # trigger form and keeps its Trigger button disabled.
        "justification": Param(None, type=["null", "string"], description="Required when override_gate is on."),
    },
    doc_md=__doc__,
)
def training() -> None:
    @task
    def prepare(
        params: dict | None = None, triggering_asset_events: dict | None = None, run_id=None,
        logical_date=None, dag_run=None,
    ) -> dict:
        from pipelines.ops import tasks

        why = [e.extra for events in (triggering_asset_events or {}).values() for e in events]
        print(f"reason: {(params or {}).get('reason')}; asset events: {why or 'none'}")
        # The drift job will not request another retrain meanwhile; a `make run` in progress is waited for.
        tasks.retrain_in_flight(run_id)
        # The window ends at the run's day: a backfill of an older day trains on what existed then.
        day = tasks.resolve_day(None, logical_date, getattr(dag_run, "run_after", None))
        return tasks.prepare(day, run_id)

    @task
    def validate_training(run_id=None) -> dict:
        from pipelines.ops import tasks

        return tasks.validate_training(run_id)

    @task
    def train(run_id=None) -> dict:
        from pipelines.ops import tasks

        return tasks.train(run_id)

    @task
    def gate(run_id=None) -> dict:
        from pipelines.ops import tasks

        return tasks.gate(run_id)

    @task
    def promote(params: dict | None = None, run_id=None) -> dict:
        from pipelines.ops import tasks

        p = params or {}
        return tasks.promote(override=bool(p.get("override_gate")), justification=p.get("justification"), run_id=run_id)

    @task(trigger_rule="all_done")
    def clear_in_flight(run_id=None) -> None:
        from pipelines.ops import tasks

        tasks.clear_in_flight(run_id)  # this run's marker only, never a `make run`'s

    chain = prepare() >> validate_training() >> train() >> gate() >> promote()
    chain >> clear_in_flight()


training()
