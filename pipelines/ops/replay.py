"""Replay a failure story: the closed loop day by day, through the functions the DAGs call.

Each simulated day runs what the scoring, monitoring and training DAGs would run for it
(pipelines/ops/tasks.py): land -> validate -> score -> live performance of the days whose labels
matured -> drift with the brakes -> (retrain requested, or scheduled by the story) the training
stages through `dvc repro` -> gate -> promote or challenger. Time is simulated: the day is an
argument everywhere, labels mature ``simulate.label_delay_days`` after their day.

The replay runs in a project of its own (``<out>/project``: a copy of the code, params.yaml
with the story's settings, its own git repository, DVC state, data/ and SQLite MLflow store;
pipelines/ops/replay_project.py), so it never touches the user's data/ or registry. Everything runs in this one process except
the training stages, which run through the real `dvc repro` as in the training DAG.
The training DAG's daily schedule is not replayed: training starts on a retrain request, on
the story's scheduled days, and once to train the first champion.

:func:`prepare_airflow` makes the same project (plus dags/ and scripts/) with the warm-up days
landed, for the real scheduler to replay the served days as a backfill of the scoring DAG, with
monitoring and retraining started by the assets (tests/integration/test_replay_airflow.py
compares the end state with this replay's).
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import time
from collections.abc import Callable, Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from pipelines.config import load_settings
from pipelines.data.year import YEARS, events_on
from pipelines.errors import PipelineError, ValidationFailed, first_line
from pipelines.io import parse_date, read_json, write_json
from pipelines.monitoring.rules import day_alerts, load_rules, read_textfiles
from pipelines.ops.replay_project import AIRFLOW_FILES, logged, make_project, plan
from pipelines.ops.stories import Story, product_overrides
from pipelines.telemetry import PUSHGATEWAY_ENV, textfile_dir

log = logging.getLogger(__name__)

TRAINING_STAGES = ("prepare", "validate_training", "train")


class Replay:
    """One story's replay: the day loop, the training runs, the timeline records."""

    def __init__(self, st: Story, cal: dict[str, Any], root: Path, log_file: Any, echo: Callable[[str], None]) -> None:
        self.story, self.cal, self.root, self.log_file, self.echo = st, cal, root, log_file, echo
        self.settings = load_settings(root / "params.yaml")
        start = parse_date(self.settings.params.simulate.start)
        self.first = start
        self.launch = start + timedelta(days=cal["warmup_days"])
        self.fail_start = self.launch + timedelta(days=cal["failure_at"])
        self.fail_end = self.fail_start + timedelta(days=cal["failure_days"]) if cal["failure_days"] is not None else None
        self.records: list[dict[str, Any]] = []
        self.trainings: list[dict[str, Any]] = []
        self.champion: str | None = None
        self.stage_seconds: list[float] = []
        self.day_seconds: list[float] = []
        self.rules = load_rules(root)

    # ------------------------------------------------------------------ the loop

    def run(self) -> dict[str, Any]:
        total = self.cal["warmup_days"] + self.cal["days"]
        for i in range(total):
            day = self.first + timedelta(days=i)
            t0 = time.perf_counter()
            rec = self.one_day(day)
            self.day_seconds.append(time.perf_counter() - t0 - sum(t["seconds"] for t in rec.get("training", [])))
            self.records.append(rec)
            if rec["phase"] == "served" or rec.get("training"):
                self.echo(day_line(rec))
        return self.result()

    def warm_up(self) -> list[dict[str, Any]]:
        """What :meth:`run` does before the first champion is trained: the warm-up days, then the
        launch day landed and validated (the first champion trains on it). For the DAGs to take over."""
        for i in range(self.cal["warmup_days"]):
            self.records.append(self.one_day(self.first + timedelta(days=i)))
        self.records.append(self.land(self.launch))
        return self.records

    def failing(self, day: date) -> bool:
        return day >= self.fail_start and (self.fail_end is None or day < self.fail_end)

    def scenario_window(self) -> tuple[str, str | None]:
        """The story's failure window, as land_batch (and the scoring DAG's params) take it."""
        return self.fail_start.isoformat(), self.fail_end.isoformat() if self.fail_end else None

    def land(self, day: date) -> dict[str, Any]:
        """Land and validate ``day`` (the scoring DAG's first two tasks); the day's record."""
        from pipelines.ops import tasks

        served = day >= self.launch
        rec: dict[str, Any] = {
            "day": day.isoformat(),
            "phase": "served" if served else "warmup",
            "failure": self.failing(day),
            "training": [],
        }
        if self.cal["scenario"] in YEARS:  # a year: the events in force, not one failure window
            rec["events"] = [e.kind for e in events_on(self.cal["scenario"], (day - self.launch).days)]
            rec["failure"] = bool(rec["events"])
        with self.quiet():
            try:
                tasks.land_batch(day, self.cal["scenario"], *self.scenario_window())
            except PipelineError as exc:
                # nothing landed: the scoring run's first task fails and its failure alert posts
                rec.update(landed=False, validated=False, quarantine_reasons=[first_line(str(exc))])
                rec["task_failed"] = {"alert": "AirflowTaskFailed", "severity": "critical", "what": "scoring.land_batch"}
                return rec
            try:
                tasks.validate_batch(day)
                rec["validated"] = True
            except ValidationFailed as exc:
                rec["validated"] = False
                rec["quarantine_reasons"] = list(exc.failures[:3])
        return rec

    def one_day(self, day: date) -> dict[str, Any]:
        from pipelines.ops import tasks

        served = day >= self.launch
        rec = self.land(day)
        if served and self.champion is None:
            self.train(day, "first champion", rec)
            if self.champion is None:  # nothing to serve with: stop rather than retrain every day
                first = rec["training"][-1]
                raise PipelineError(
                    f"the first champion was not promoted on {day}: {first.get('failed') or '; '.join(first.get('reasons', []))}"
                )
        rec["champion"] = self.champion
        if rec["validated"] and self.champion is not None:
            with self.quiet():
                out = tasks.score(day)
            rec["scored_by"] = str(out["model_version"])
            rec["rows"] = int(out["rows"])
        with self.quiet():
            measured = tasks.performance()
        rec["matured"] = [self.live(m["day"]) for m in measured]
        if rec["validated"] and self.champion is not None:
            with self.quiet():
                tasks.drift_day(day)
            rec["drift"] = self.drift_record(day)
            if rec["drift"]["retrain"]:
                self.train(day, "retrain requested: " + rec["drift"]["reason"], rec)
        offset = (day - self.launch).days
        if (
            served
            and offset in self.cal["retrain_at"]
            and not any(t["trigger"].startswith("retrain requested") for t in rec["training"])
        ):
            self.train(day, "scheduled training run", rec)
        rec["alerts"] = self.alerts() + ([rec["task_failed"]] if rec.get("task_failed") else [])
        return rec

    def alerts(self) -> list[dict[str, Any]]:
        """The alerts the shipped rules raise on the metrics published so far (each job's latest),
        as Prometheus would see them after the day: one per alert and its naming label."""
        out = []
        for a in day_alerts(self.rules, read_textfiles(textfile_dir(self.settings))):
            labels = a["labels"]
            what = (labels.get("feature") or labels.get("day") or labels.get("reason_class") or labels.get("oldest")
                    or labels.get("champion_version", ""))
            out.append({"alert": a["alert"], "severity": a["severity"], "what": what})
        return out

    def live(self, day: str) -> dict[str, Any]:
        """The performance record of a matured day, as the monitoring task wrote it."""
        p = read_json(self.settings.reports_dir / "performance" / f"{day}.json")
        return {
            "day": day,
            "versions": p["model_versions"],
            "roc_auc": p.get("live_roc_auc"),
            "default_rate": p.get("live_default_rate"),
            "rows": p["matched_rows"],
        }

    def drift_record(self, day: date) -> dict[str, Any]:
        d = read_json(self.settings.reports_dir / "drift" / f"{day.isoformat()}.json")
        psi = {k: v for k, v in d["psi"].items() if not math.isnan(v)}  # NaN (all null) is not plotted
        top = max(psi, key=lambda k: psi[k]) if psi else None
        return {
            "psi": {k: round(v, 5) for k, v in psi.items()},
            "top_feature": top,
            "top_psi": round(psi[top], 5) if top else None,
            "threshold": d["psi_threshold"],
            "drifted": d["drifted_features"],
            "streak": d["streak"],
            "brakes": d["brakes"],
            "retrain": d["retrain"],
            "reason": d["reason"],
            "champion_version": d["champion_version"],
            "performance_alarm": d.get("performance_alarm"),
        }

    def train(self, day: date, trigger: str, rec: dict[str, Any]) -> None:
        """The training DAG's run: in-flight marker, the dvc stages, the gate, promote or challenger."""
        from pipelines.ops import tasks

        t0 = time.perf_counter()
        run: dict[str, Any] = {"day": day.isoformat(), "trigger": trigger, "champion_before": self.champion}
        with self.quiet():
            run_id = f"replay-{day.isoformat()}"
            tasks.retrain_in_flight(run_id)
            try:
                steps: dict[str, float] = {}
                for stage in TRAINING_STAGES:
                    t = time.perf_counter()
                    tasks.dvc_stage(stage, run_id=run_id)
                    steps[stage] = round(time.perf_counter() - t, 1)
                t = time.perf_counter()
                gate = tasks.gate(run_id)
                steps["gate"] = round(time.perf_counter() - t, 1)
                t = time.perf_counter()
                out = tasks.promote(run_id=run_id)
                steps["promote"] = round(time.perf_counter() - t, 1)
                run["step_seconds"] = steps
                run.update(
                    {
                        "passed": bool(gate["passed"]),
                        "candidate_roc_auc": gate["candidate_roc_auc"],
                        "reasons": gate["reasons"],
                        "version": str(out["version"]),
                        "role": out["role"],
                    }
                )
            except PipelineError as exc:
                run.update({"passed": False, "failed": first_line(str(exc)), "version": None, "role": "none"})
            finally:
                tasks.retrain_in_flight(None)
        if run.get("role") == "champion":
            self.champion = run["version"]
        window = self.settings.training_dir / "window.json"
        if window.is_file():
            w = read_json(window)
            run["train_days"] = [w["train_days"][0], w["train_days"][-1]]
            run["holdout_days"] = [w["holdout_days"][0], w["holdout_days"][-1]]
        run["champion_after"] = self.champion
        run["seconds"] = round(time.perf_counter() - t0, 1)
        self.stage_seconds.append(run["seconds"])
        rec["training"].append(run)
        self.trainings.append(run)

    @contextlib.contextmanager
    def quiet(self) -> Iterator[None]:
        """The steps' own progress (prints and log lines) goes to the replay's log file."""
        with contextlib.redirect_stdout(self.log_file):
            yield

    # ------------------------------------------------------------------ results

    def result(self) -> dict[str, Any]:
        served = [r for r in self.records if r["phase"] == "served"]
        return {
            "story": self.story.name,
            "scenario": self.cal["scenario"],
            "guard": self.story.guard,
            "summary": self.story.summary,
            "project": str(self.root),
            "launch": self.launch.isoformat(),
            "failure": {"start": self.fail_start.isoformat(), "end": self.fail_end.isoformat() if self.fail_end else None},
            # every setting the replay project changed from the shipped params.yaml
            "params": self.cal["params"],
            "product_overrides": product_overrides(self.cal["params"]),
            "rows_per_day": self.cal["rows"],
            "days": self.records,
            "trainings": self.trainings,
            "retrains": sum(1 for t in self.trainings if t["trigger"] != "first champion"),
            "seconds": {
                "per_day": round(sum(self.day_seconds) / max(len(self.day_seconds), 1), 2),
                "per_training": round(sum(self.stage_seconds) / max(len(self.stage_seconds), 1), 1),
                "served_days": len(served),
            },
        }


def day_line(rec: dict[str, Any]) -> str:
    """One line per day: day, champion, live AUC (of the day that matured), top PSI, event."""
    live = [m for m in rec.get("matured", []) if m.get("roc_auc") is not None]
    auc = f"{live[-1]['roc_auc']:.3f} ({live[-1]['day'][5:]})" if live else "   -   "
    dr = rec.get("drift") or {}
    psi = f"{dr['top_feature']} {dr['top_psi']:.3f}" if dr.get("top_feature") else "-"
    return (
        f"{rec['day']}  champion {('v' + rec['champion']) if rec.get('champion') else '-':>4}  live AUC {auc:<13}  "
        f"top PSI {psi:<22}  {event(rec)}"
    )


def event(rec: dict[str, Any]) -> str:
    """The event of the day, in words."""
    parts = []
    if rec.get("failure"):
        parts.append("[failure]")
    if rec.get("validated") is False:
        parts.append("QUARANTINED: " + (rec.get("quarantine_reasons") or ["failed validation"])[0][:80])
    dr = rec.get("drift") or {}
    alarm = dr.get("performance_alarm")
    if dr.get("drifted") or alarm:
        what = ("drift " + ", ".join(dr["drifted"]) if dr.get("drifted") else "") + (" + " if dr.get("drifted") and alarm else "")
        what += f"live AUC low on {len(alarm['days'])} matured day(s)" if alarm else ""
        parts.append(what + (" -> RETRAIN REQUESTED" if dr["retrain"] else f" - brakes: {'; '.join(dr['brakes'])}"))
    for t in rec.get("training", []):
        if t.get("failed"):
            parts.append(f"training failed: {t['failed'][:80]}")
        else:
            verdict = "gate PASSED" if t["passed"] else "gate BLOCKED (" + "; ".join(t["reasons"])[:80] + ")"
            parts.append(f"{t['trigger'].split(':')[0]}: v{t['version']} {verdict} -> {t['role']}")
    return " | ".join(parts) or "ok"


def replay(
    story_name: str, days: int | None = None, out: Path | None = None, quick: bool = False,
    echo: Callable[[str], None] = print, reports: bool = False, settings: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Replay ``story_name`` in ``out`` (default: replays/<story>): the day loop, then the timeline
    (JSON, HTML, PNG) and the audit of what was scored. Returns the timeline. ``reports``: also
    write each day's GE Data Docs and Evidently HTML report, as production does. ``settings``:
    params ("section.key": value) on top of the story's own."""
    from pipelines.ops.audit import audit
    from pipelines.ops.timeline import write_timeline

    st, cal, source, out = plan(story_name, days, out, quick, reports, settings)
    root = make_project(source, out / "project", {**cal["params"], "simulate.rows_per_day": cal["rows"]})
    (out / "replay.log").unlink(missing_ok=True)
    echo(
        f"replaying {st.name} in {root} ({cal['warmup_days']} warm-up days, "
        f"{cal['days']} served days; failure from served day {cal['failure_at']})"
    )
    started = time.perf_counter()
    # the replay's steps write their metrics as textfiles in its own project, never to a Pushgateway
    with logged(root, out) as log_file, _env_without(PUSHGATEWAY_ENV):
        rep = Replay(st, cal, root, log_file, echo)
        result = rep.run()
        result["audit"] = audit(load_settings(root / "params.yaml"), result)
        if cal["scenario"] in YEARS:  # a year: its invariants, and the live AUC against hindsight
            from pipelines.ops.year_check import hindsight, share_line, verdict

            echo("computing the hindsight optimum (a model per regime, cross-fitted by day)")
            result["hindsight"] = hindsight(rep.settings, cal["scenario"], rep.launch)
            result["year"] = verdict(rep.settings, result, cal["scenario"])
            echo("year: " + share_line(result["year"]))
    result["seconds"]["total"] = round(time.perf_counter() - started, 1)
    files = write_timeline(result, out)
    write_json(result, out / "timeline.json")
    echo(
        f"timeline: {files['html']} ({files['png']}); nothing lost: "
        f"{'yes' if result['audit']['ok'] else 'NO - ' + '; '.join(result['audit']['problems'][:3])}"
    )
    for row in result["guards"]:
        echo(f"  {row['guard']:<12} {row['day']:<10}  alerted {row['alerted']:<11}  {row['what']}")
    return result


@contextlib.contextmanager
def _env_without(name: str) -> Iterator[None]:
    saved = os.environ.pop(name, None)
    try:
        yield
    finally:
        if saved is not None:
            os.environ[name] = saved


def prepare_airflow(
    story_name: str, days: int | None = None, out: Path | None = None, quick: bool = False,
    echo: Callable[[str], None] = print, settings: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The same story for the DAGs to replay: a replay project (the same params and calendar as
    :func:`replay`, plus dags/ and scripts/ to start Airflow on it) whose warm-up days and launch
    day are landed and validated exactly as the replay does them. What is left is Airflow's: train
    the first champion (the training DAG), then a backfill of the scoring DAG over ``served``
    with ``conf`` (the story's scenario and its window) as the runs' conf; monitoring and
    retraining follow from the assets."""
    st, cal, source, out = plan(story_name, days, out, quick, False, settings)
    root = make_project(source, out / "project", {**cal["params"], "simulate.rows_per_day": cal["rows"]}, extra=AIRFLOW_FILES)
    (out / "replay.log").unlink(missing_ok=True)
    with logged(root, out) as log_file:
        rep = Replay(st, cal, root, log_file, echo)
        records = rep.warm_up()
    start, end = rep.scenario_window()
    last = rep.launch + timedelta(days=cal["days"] - 1)
    echo(f"{st.name} ready for Airflow in {root}: {cal['warmup_days']} warm-up days landed; serve {rep.launch}..{last}")
    return {
        "story": st.name,
        "project": str(root),
        "launch": rep.launch.isoformat(),
        "served": [rep.launch.isoformat(), last.isoformat()],
        "conf": {"scenario": st.scenario, "scenario_start": start, "scenario_end": end},
        "failure": {"start": start, "end": end},
        "days": records,
    }
