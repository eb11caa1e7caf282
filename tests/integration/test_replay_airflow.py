"""A failure story through the real scheduler: the quick `login_policy` story, 16 served days,
replayed by Airflow 3 as a backfill of the scoring DAG, with monitoring and retraining started
by the assets; its end state must match the CLI replay of the same story on the same calendar.

16 served days is the shortest `login_policy` that still asks for its retrain (served day 15: 10
days since the shift with matured labels), so the whole chain scoring -> PREDICTIONS -> monitoring ->
RETRAIN_REQUEST -> training runs, and the guards on the way fire: drift, the k-days brake, the
waiting-for-labels brake, the gate promoting the retrain.

How the two paths meet:
- ``prepare_airflow`` makes the story's project (the same params and calendar as the replay,
  plus dags/ and scripts/) and lands the warm-up days and the launch day as the replay does.
  Airflow (`airflow standalone`, started by scripts/services.sh as `make up` does, its metadata
  on a throw-away PostgreSQL as backfills need) then trains the first champion (training DAG,
  triggered through the REST API as the UI does) and serves the 16 days as one backfill of the
  scoring DAG (scripts/backfill.sh, as `make backfill` does; the story's scenario window in its
  `dag_run_conf`). Backfill runs emit the PREDICTIONS asset like any run: monitoring starts from
  it, and the retrain request starts training.
- The replay runs a day's whole loop (score, monitoring, retraining) before the next day lands.
  Production does too, by time: the next batch lands a day later. A backfill packs the days into
  seconds, and then the next day's landing (which also lands the labels that mature that day)
  would race the previous day's drift job, whose labels brake counts the matured labels on disk
  (measured on 2026-12-01 with the backfill running free: on served day 5, the first difference,
  the labels brake counted one matured day more than the replay, and the retrain was requested
  on served day 11 instead of 12; each monitoring run still had one event; no faster: 8 min 4 s).
  So the backfill runs one day at a time (`max_active_runs` 1) and the test holds it
  (`PUT /api/v2/backfills/{id}/pause`, `/unpause`, as an operator can) until the day's drift task
  has decided, and, when it requested a retrain, until training finished.
  The rest of a monitoring run (live performance) overlaps with the next day: it measures the
  same matured days from the same files, some a day earlier than the replay does.
- Airflow runs each day's drift and performance in their own monitoring run (one asset event
  each: the backfill waited), the replay in its own loop; run times, run ids and the MLflow runs'
  ids differ, and nothing compared depends on them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from tests.support.airflow_api import Api, services_env, stop_services
from tests.support.postgres import AIRFLOW_DB_PASSWORD, topology_databases
from tests.support.system import free_port, wait_for

REPO = Path(__file__).resolve().parents[2]
# Ten minutes of one worker: it runs in `make test-long` (REPLAY_LONG=1). `make test` keeps the
# Airflow chain in test_airflow_e2e.py and the story itself in test_replay.py.
pytestmark = [pytest.mark.integration, pytest.mark.long,
              pytest.mark.skipif(not os.environ.get("REPLAY_LONG"), reason="the story through Airflow: make test-long")]

STORY, DAYS = "login_policy", 16
# The gate times predictions while Airflow's scheduler, API server and dag-processor share the
# 2 cores (latency is test_gate's subject); both replays get the same bounds, recorded in their
# timelines as overrides of the shipped settings.
SETTINGS = {"gate.latency_single_row_p99_ms": 5000, "gate.latency_batch_p99_ms": 60000}
FINISHED = ("success", "failed")


def clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "PIPELINES_", "AIRFLOW"))}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def start_python(code: str, out: Path) -> subprocess.Popen:
    """A replay function in a process of its own (it leaves with os._exit: see BENCHMARKS.md).
    From a script file, not `python -c`: pyspark (imported by Great Expectations) exits 0 at
    import when the main module has no file, taking it for a doctest run."""
    out.mkdir(parents=True, exist_ok=True)
    script = out / "run.py"
    script.write_text(f"import os, sys\nfrom pathlib import Path\nsys.path.insert(0, {str(REPO)!r})\n{code}"
                      "print('replay finished'); sys.stdout.flush(); os._exit(0)\n")
    with (out / "run.out").open("w") as stdout, (out / "run.err").open("w") as stderr:  # files: no pipe to fill
        return subprocess.Popen([sys.executable, str(script)], cwd=REPO, env=clean_env(), stdout=stdout, stderr=stderr)


def finish(proc: subprocess.Popen, timeout: float) -> None:
    proc.wait(timeout=timeout)
    out = Path(proc.args[1]).parent
    stdout, stderr = (out / "run.out").read_text(), (out / "run.err").read_text()
    assert proc.returncode == 0 and "replay finished" in stdout, stdout[-3000:] + stderr[-3000:]


def cli_replay(out: Path) -> subprocess.Popen:
    """The CLI replay of the story (the same function as `python -m pipelines replay`, with SETTINGS)."""
    return start_python(
        "from pipelines.ops.replay import replay\n"
        f"replay({STORY!r}, days={DAYS}, out=Path({str(out)!r}), quick=True, settings={SETTINGS!r})\n",
        out,
    )


def prepare(out: Path) -> dict[str, Any]:
    finish(start_python(
        "import json\nfrom pipelines.ops.replay import prepare_airflow\n"
        f"res = prepare_airflow({STORY!r}, days={DAYS}, out=Path({str(out)!r}), quick=True, settings={SETTINGS!r})\n"
        f"Path({str(out / 'prepared.json')!r}).write_text(json.dumps(res))\n",
        out,
    ), timeout=600)
    return json.loads((out / "prepared.json").read_text())


class Rest(Api):
    def put(self, path: str, body: Any = None) -> Any:
        return self._call("PUT", path, body if body is not None else {})

    def runs(self, dag_id: str) -> list[dict]:
        return self.get(f"/api/v2/dags/{dag_id}/dagRuns?order_by=run_after&limit=100")["dag_runs"]

    def run_path(self, dag_id: str, run_id: str) -> str:
        return f"/api/v2/dags/{dag_id}/dagRuns/{urllib.request.quote(run_id, safe='')}"

    def events_of(self, dag_id: str, run_id: str) -> list[dict]:
        return self.get(self.run_path(dag_id, run_id) + "/upstreamAssetEvents")["asset_events"]

    def task_states(self, dag_id: str, run_id: str) -> dict[str, str | None]:
        tis = self.get(self.run_path(dag_id, run_id) + "/taskInstances")["task_instances"]
        return {t["task_id"]: t["state"] for t in tis}

    def wait(self, what: str, check: Any, timeout: float, every: float = 2.0) -> Any:
        return wait_for(check, timeout, f"{what}: not within {timeout}s", every)


@pytest.fixture(scope="module")
def replays(tmp_path_factory: pytest.TempPathFactory):
    """(the CLI replay's timeline, the prepared project, what Airflow ran). The CLI replay runs
    in the background meanwhile (its own project; the gate's latency bounds are loose enough)."""
    base = tmp_path_factory.mktemp("replay-airflow")
    cli = cli_replay(base / "cli")
    home, port = base / "airflow-home", free_port()
    root: Path | None = None
    # Airflow's metadata on PostgreSQL, as backfills need (`make backfill` refuses SQLite)
    with topology_databases() as pg:
        env = {**services_env(clean_env(), base, home, port),
               "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": pg.url("airflow", AIRFLOW_DB_PASSWORD, "airflow")}
        try:
            ready = prepare(base / "airflow")
            root = Path(ready["project"])
            up = subprocess.run([str(root / "scripts/services.sh"), "up"], env=env, capture_output=True, text=True, timeout=400)
            assert up.returncode == 0, up.stdout + up.stderr
            ran = drive(Rest(f"http://127.0.0.1:{port}", home), ready, root, env)
            finish(cli, timeout=900)
            yield json.loads((base / "cli" / "timeline.json").read_text()), ready, ran
        finally:
            if cli.poll() is None:
                cli.kill()
                cli.wait()
            if root is not None:
                stop_services(root, env, base, home)


def occupy_todays_slots(api: Rest) -> set[str]:
    """The story's calendar is in the past; the wall clock is not. Unpausing a DAG with
    catchup=False makes Airflow run its latest interval at once (scoring: today 00:00 UTC, a run
    skipped for want of a batch; training: the last 03:00, which would train on a wall-clock day
    outside the story; monitoring: the last 00:30). A run already there for that logical date
    makes the scheduler skip it: trigger one while the DAG is still paused (so it cannot start)
    and mark it done. Returns their run ids."""
    now = datetime.now(UTC)
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)

    def last(hours: float) -> datetime:
        at = midnight + timedelta(hours=hours)
        return at if now >= at else at - timedelta(days=1)

    ids = set()
    for dag_id, when in (("scoring", midnight), ("training", last(3)), ("monitoring", last(0.5))):
        run = api.post(f"/api/v2/dags/{dag_id}/dagRuns", {"logical_date": when.isoformat(), "conf": {}})
        api.patch(
            api.run_path(dag_id, run["dag_run_id"]),
            {"state": "success", "note": "wall-clock slot, not part of the replayed story"},
        )
        ids.add(run["dag_run_id"])
    return ids


def drive(api: Rest, ready: dict[str, Any], root: Path, env: dict[str, str]) -> dict[str, Any]:
    """Train the first champion, then serve the story's days as one backfill of the scoring DAG
    (`scripts/backfill.sh`, what `make backfill` runs), one day at a time, waiting for what each
    day's PREDICTIONS asset starts. Returns the runs."""
    api.wait(
        "the DAGs parsed",
        lambda: {d["dag_id"] for d in api.get("/api/v2/dags")["dags"]} >= {"training", "scoring", "monitoring"},
        180,
        3,
    )
    assert api.get("/api/v2/importErrors")["total_entries"] == 0
    slots = occupy_todays_slots(api)

    # The backfill is created while its DAG is still paused: no run starts before it is held.
    first_day, last_day = (date.fromisoformat(d) for d in ready["served"])
    days = [(first_day + timedelta(days=i)).isoformat() for i in range((last_day - first_day).days + 1)]
    window = {"dag_id": "scoring", "from_date": f"{days[0]}T00:00:00Z", "to_date": f"{days[-1]}T00:00:00Z"}
    planned = api.post("/api/v2/backfills/dry_run", {**window, "dag_run_conf": ready["conf"]})["backfills"]
    assert [b["logical_date"][:10] for b in planned] == days, planned
    made = subprocess.run(
        [str(root / "scripts/backfill.sh"), "scoring", days[0], days[-1], json.dumps(ready["conf"])],
        env={**env, "MAX_ACTIVE_RUNS": "1"}, capture_output=True, text=True, timeout=300,
    )
    assert made.returncode == 0, made.stdout[-3000:] + made.stderr[-3000:]
    [backfill] = [b for b in api.get("/api/v2/backfills?dag_id=scoring")["backfills"] if not b["completed_at"]]
    assert (backfill["max_active_runs"], backfill["dag_run_conf"], backfill["reprocess_behavior"]) == (1, ready["conf"], "none")
    bid = backfill["id"]
    api.put(f"/api/v2/backfills/{bid}/pause")
    queued = [r for r in api.runs("scoring") if r["run_type"] == "backfill"]
    assert [(r["logical_date"][:10], r["state"], r["conf"]) for r in queued] == [(d, "queued", ready["conf"]) for d in days], (
        queued
    )

    for dag_id in ("training", "monitoring", "scoring"):  # backfill runs start only on an unpaused DAG
        api.patch(f"/api/v2/dags/{dag_id}", {"is_paused": False})
    first = api.post("/api/v2/dags/training/dagRuns", {"logical_date": None, "conf": {"reason": "first champion"}})
    done = api.wait_run("training", first["dag_run_id"], timeout=900)
    assert done["state"] == "success", done

    scoring: dict[str, dict] = {}
    monitoring: dict[str, dict] = {}
    training: dict[str, dict] = {}
    reports = Path(ready["project"]) / "data" / "reports" / "drift"
    for day in days:
        api.put(f"/api/v2/backfills/{bid}/unpause")

        def started(day: str = day) -> dict | None:
            run = next(
                (r for r in api.runs("scoring") if r["run_type"] == "backfill" and (r["logical_date"] or "")[:10] == day), None
            )
            return run if run and run["state"] != "queued" else None

        run = api.wait(f"the backfill run of {day} started", started, 300, 1)
        api.put(f"/api/v2/backfills/{bid}/pause")  # the next day waits for this day's loop
        scoring[day] = run = api.wait_run("scoring", run["dag_run_id"], timeout=600)
        if run["state"] != "success":
            continue  # quarantined: no predictions, no asset event, nothing downstream
        seen = {m["dag_run_id"] for m in monitoring.values()} | slots
        mon = api.wait(
            f"the monitoring run of {day}",
            lambda seen=seen: next((r for r in api.runs("monitoring") if r["dag_run_id"] not in seen), None), 300,
        )
        monitoring[day] = mon
        # The next day may land once this day's drift job has decided (it counts the labels on
        # disk); the rest of the monitoring run (performance) overlaps with it: it measures
        # the same days from the same files, at most a day earlier.
        api.wait(
            f"the drift task of {day}",
            lambda mon=mon: api.task_states("monitoring", mon["dag_run_id"]).get("drift") in FINISHED,
            600,
        )
        drift = reports / f"{day}.json"
        if drift.is_file() and read_json(drift)["retrain"]:  # the next day is scored by what training decides
            api.wait_run("monitoring", mon["dag_run_id"], timeout=600)
            known = {t["dag_run_id"] for t in training.values()} | {first["dag_run_id"]} | slots
            tr = api.wait(
                f"the training run requested on {day}",
                lambda known=known: next((r for r in api.runs("training") if r["dag_run_id"] not in known), None), 300,
            )
            training[day] = tr = api.wait_run("training", tr["dag_run_id"], timeout=900)
            tr["events"] = [e["extra"] for e in api.events_of("training", tr["dag_run_id"])]
    if not api.get(f"/api/v2/backfills/{bid}")["completed_at"]:
        api.put(f"/api/v2/backfills/{bid}/unpause")
    finished = api.wait("the backfill completed", lambda: (b := api.get(f"/api/v2/backfills/{bid}"))["completed_at"] and b, 120)
    for day, started in list(monitoring.items()):
        monitoring[day] = mon = api.wait_run("monitoring", started["dag_run_id"], timeout=600)
        mon["events"] = [e["extra"] for e in api.events_of("monitoring", mon["dag_run_id"])]
        mon["tasks"] = api.task_states("monitoring", mon["dag_run_id"])
    return {
        "backfill": finished, "scoring": scoring, "monitoring": monitoring, "training": training,
        "all_runs": {d: [r for r in api.runs(d) if r["dag_run_id"] not in slots] for d in ("scoring", "monitoring", "training")},
        "slots": [r for d in ("scoring", "training", "monitoring") for r in api.runs(d) if r["dag_run_id"] in slots],
    }


def served(t: dict[str, Any]) -> list[dict[str, Any]]:
    return [r for r in t["days"] if r["phase"] == "served"]


def registry(root: Path) -> dict[str, Any]:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{root / 'mlflow.db'}")
    versions = {str(v.version): v.tags.get("gate_passed") for v in client.search_model_versions("name='credit-default'")}
    exp = client.get_experiment_by_name("credit-default")
    scored = [r.data.tags["day"] for r in client.search_runs([exp.experiment_id], "tags.step = 'score'", max_results=10000)]
    champion = str(client.get_model_version_by_alias("credit-default", "champion").version)
    return {"versions": versions, "scored": sorted(scored), "champion": champion}


def read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def test_the_backfill_serves_the_days_and_the_assets_start_monitoring_and_training(replays) -> None:
    cli, _, af = replays
    runs = af["all_runs"]
    days = [r["day"] for r in served(cli)]
    validated = [r["day"] for r in served(cli) if r["validated"]]
    # The served days are the backfill's runs, one each; no scheduled run slipped in.
    assert sorted(af["scoring"]) == days and af["backfill"]["completed_at"]
    assert [r["run_type"] for r in runs["scoring"]] == ["backfill"] * len(days), runs["scoring"]
    assert len(af["slots"]) == 3 and all(r["state"] == "success" for r in af["slots"]), af["slots"]  # marked done while paused
    # Backfill runs emit the PREDICTIONS asset: one asset-triggered monitoring run per scored day,
    # each of exactly that day's event (the backfill waited), all successful.
    assert sorted(af["monitoring"]) == validated
    assert [r["run_type"] for r in runs["monitoring"]] == ["asset_triggered"] * len(validated)
    for day, mon in af["monitoring"].items():
        assert mon["state"] == "success" and [e["day"] for e in mon["events"]] == [day], mon
    # Training: the first champion by hand, then only what RETRAIN_REQUEST started.
    requested = [t["day"] for t in cli["trainings"] if t["trigger"].startswith("retrain requested")]
    assert requested, "the story must request a retrain, or the asset chain is not exercised"
    assert [r["run_type"] for r in runs["training"]] == ["manual"] + ["asset_triggered"] * len(requested)
    assert sorted(af["training"]) == requested
    for day, tr in af["training"].items():
        assert tr["state"] == "success" and [e["day"] for e in tr["events"]] == [day], tr
        assert af["monitoring"][day]["tasks"]["request_retrain"] == "success"
    not_requested = [d for d, m in af["monitoring"].items() if d not in requested]
    assert all(af["monitoring"][d]["tasks"]["request_retrain"] == "skipped" for d in not_requested)


def test_the_end_state_matches_the_cli_replay(replays) -> None:
    cli, ready, af = replays
    a_root, c_root = Path(ready["project"]), Path(cli["project"])
    assert ready["launch"] == cli["launch"] and ready["failure"] == cli["failure"]
    assert cli["audit"]["ok"], cli["audit"]["problems"]  # the replay's own "nothing lost"
    quarantined = [r["day"] for r in served(cli) if not r["validated"]]
    assert quarantined == [] or all(d >= cli["failure"]["start"] for d in quarantined)
    for rec in served(cli):
        day = rec["day"]
        pred = a_root / "data" / "predictions" / f"{day}.parquet"
        # the same days validated and quarantined: a quarantined day fails its scoring run
        assert (af["scoring"][day]["state"] == "success") is rec["validated"], (day, af["scoring"][day])
        assert (a_root / "data" / "validated" / f"{day}.parquet").exists() is rec["validated"], day
        if not rec["validated"]:
            assert not pred.exists(), f"quarantined {day} was scored"
            assert (a_root / "data" / "quarantine" / day / "validation_result.json").is_file()
            continue
        # scored by the champion the CLI replay had that day, row for row, with the same scores
        a = pd.read_parquet(pred)
        c = pd.read_parquet(c_root / "data" / "predictions" / f"{day}.parquet")
        assert set(a["model_version"]) == {rec["scored_by"]} == {rec["champion"]}, day
        assert a["customer_id"].tolist() == c["customer_id"].tolist() and set(a["scoring_date"]) == {day}
        assert (a["score"] - c["score"]).abs().max() < 1e-9, day
        # the same drift verdict: PSI, the brakes that held, the retrain request
        da = read_json(a_root / "data" / "reports" / "drift" / f"{day}.json")
        dc = rec["drift"]
        assert (da["retrain"], da["drifted_features"], da["streak"], da["brakes"], str(da["champion_version"])) == (
            dc["retrain"], dc["drifted"], dc["streak"], dc["brakes"], dc["champion_version"]), day
        assert all(abs(da["psi"][k] - v) < 1e-4 for k, v in dc["psi"].items()), day
    # nothing scored outside the served, validated days, and each of those exactly once
    a_reg, c_reg = registry(a_root), registry(c_root)
    validated = sorted(r["day"] for r in served(cli) if r["validated"])
    assert sorted(p.stem for p in (a_root / "data" / "predictions").glob("20*.parquet")) == validated
    assert a_reg["scored"] == validated == c_reg["scored"]
    # the same live performance of the days whose labels matured
    perf = sorted(p.name for p in (c_root / "data" / "reports" / "performance").glob("20*.json"))
    assert perf and sorted(p.name for p in (a_root / "data" / "reports" / "performance").glob("20*.json")) == perf
    for name in perf:
        pa, pc = (read_json(r / "data" / "reports" / "performance" / name) for r in (a_root, c_root))
        assert pa["model_versions"] == pc["model_versions"] and abs(pa["live_roc_auc"] - pc["live_roc_auc"]) < 1e-9, name
    # the same model versions, gate verdicts and champion change
    assert a_reg["versions"] == c_reg["versions"] and a_reg["champion"] == c_reg["champion"]
    changes = [(t["champion_before"], t["champion_after"]) for t in cli["trainings"]]
    assert changes == [(None, "1"), ("1", "2")] and a_reg["champion"] == "2", cli["trainings"]
