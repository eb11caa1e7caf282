"""Rollout: moves the online challenger through shadow -> canary 5/25/50/100 % -> champion, or
rolls it back. Every 5 minutes it asks the server (PIPELINES_SERVER_URL) to judge the
guardrails and the live outcomes now; triggered by hand, the `action` param pauses, resumes,
advances (skipping the rest of the bake time) or aborts the rollout, with a `reason`.
The decisions are the server's (pipelines/serving/rollout.py); they are recorded in MLflow.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import Param, dag, task
from pipeline_assets import DEFAULT_ARGS


@dag(
    dag_id="rollout",
    schedule=timedelta(minutes=5),
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["credit-default", "serving"],
    params={
        "action": Param(None, type=["null", "string"], description="pause, resume, advance or abort; empty: check now"),
        "reason": Param(None, type=["null", "string"], description="Why (recorded with the decision)."),
    },
    doc_md=__doc__,
)
def rollout_dag() -> None:  # dag_id `rollout`; its one task has the step's name
    @task
    def rollout(params: dict | None = None) -> dict:
        from pipelines.ops import tasks

        p = params or {}
        res = tasks.rollout(p.get("action"), p.get("reason"))
        return {k: res.get(k) for k in ("version", "stage", "canary_percent", "reason")}

    rollout()


rollout_dag()
