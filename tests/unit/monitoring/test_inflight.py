"""The training marker's lease (a DAG run's marker outlives no holder) and the stage check (a
training stage started by hand does not run beside a training run), on a real file system."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipelines.errors import PipelineError
from pipelines.monitoring.inflight import claim_in_flight, in_flight, in_flight_marker, release_in_flight

REPO = Path(__file__).resolve().parents[3]
LEASE = 1.0  # seconds: a test needs no long wait for a lease to run out
LEASE_ENV = "PIPELINES_TRAINING_LEASE_S"  # the lease's length, from the environment
TRAINING_RUN_ENV = "PIPELINES_TRAINING_RUN"  # the run a runner's stage commands belong to


@pytest.fixture
def short_lease(monkeypatch: pytest.MonkeyPatch) -> float:
    monkeypatch.setenv(LEASE_ENV, str(LEASE))
    monkeypatch.delenv(TRAINING_RUN_ENV, raising=False)
    return LEASE


def _stage_task(settings, run_id: str, seconds: float) -> subprocess.Popen[str]:
    """A training stage task of the DAG run ``run_id`` in its own process: it claims the marker as
    the DAG's `prepare` does, then holds it through a stage of ``seconds``."""
    code = (
        "import sys, time; from pipelines.config import load_settings; "
        "from pipelines.monitoring.inflight import claim_in_flight, holding_in_flight; "
        f"s = load_settings({str(settings.root / 'params.yaml')!r}); claim_in_flight(s, {run_id!r}); "
        f"cm = holding_in_flight(s, {run_id!r}); cm.__enter__(); print('working', flush=True); time.sleep({seconds})"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_a_dag_run_whose_holder_is_gone_lets_go_of_the_marker(settings, short_lease, caplog) -> None:
    """A stage task keeps its run's marker through a stage longer than the lease (a heartbeat
    renews it); `make run` is refused meanwhile. The task is killed (the run marked failed, or
    its scheduler dead: the final clear task never runs): once the lease has run out nothing is
    in flight, and `make run` takes the marker over with one warning naming the old holder."""
    marker = in_flight_marker(settings)
    task = _stage_task(settings, "manual__2026-12-01", seconds=60)
    try:
        assert task.stdout is not None and task.stdout.readline().strip() == "working", task.communicate(timeout=30)
        started = json.loads(marker.read_text())
        time.sleep(3 * short_lease)  # three leases: only renewal keeps it
        held = json.loads(marker.read_text())
        assert held["run_id"] == "manual__2026-12-01" and held["lease_until"] > started["lease_until"]
        assert held["since"] == started["since"]  # a renewal keeps when the run started
        what = in_flight(marker)
        assert what and what.startswith("training run manual__2026-12-01 since ") and ", lease until " in what
        with pytest.raises(PipelineError, match=r"another training run is in flight \(training run manual__2026-12-01 since"):
            claim_in_flight(settings, "of `make run` (pid 1)", process=True, exclusive=True)
    finally:
        task.kill()
        task.communicate(timeout=30)
    time.sleep(short_lease + 0.5)
    assert in_flight(marker) is False  # the drift brake holds no more
    caplog.set_level(logging.WARNING, logger="pipelines.monitoring.inflight")
    claim_in_flight(settings, "of `make run` (pid 2)", process=True, exclusive=True)
    assert json.loads(marker.read_text())["run_id"] == "of `make run` (pid 2)"
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, warnings
    assert warnings[0].startswith("taking over the training marker of manual__2026-12-01: its lease ran out at "), warnings


def test_a_dag_run_left_by_a_dead_scheduler_is_taken_over_by_the_next_claim(settings, short_lease, caplog) -> None:
    """A marker claimed by a DAG run's `prepare` and never renewed (its scheduler died before the
    next task): `make run` is refused while the lease runs, and takes it over after."""
    marker = in_flight_marker(settings)
    claim_in_flight(settings, "scheduled__2026-12-02")
    with pytest.raises(PipelineError, match="or for its lease to run out if that run is gone"):
        claim_in_flight(settings, "of `make run` (pid 3)", process=True, exclusive=True)
    time.sleep(short_lease + 0.2)
    assert in_flight(marker) is False
    with caplog.at_level(logging.WARNING, logger="pipelines.monitoring.inflight"):
        claim_in_flight(settings, "of `make run` (pid 3)", process=True, exclusive=True)
    assert [r.getMessage().split(":")[0] for r in caplog.records] == ["taking over the training marker of scheduled__2026-12-02"]


def test_the_lease_comes_from_the_environment(monkeypatch) -> None:
    from pipelines.monitoring.inflight import lease_s

    monkeypatch.delenv(LEASE_ENV, raising=False)
    assert lease_s() == 900.0
    monkeypatch.setenv(LEASE_ENV, "2.5")
    assert lease_s() == 2.5
    for bad in ("0", "-1", "soon", "nan"):
        monkeypatch.setenv(LEASE_ENV, bad)
        with pytest.raises(PipelineError, match=f"{LEASE_ENV} must be a number of seconds above 0, got '{bad}'"):
            lease_s()


def test_a_stage_started_by_hand_refuses_beside_a_training_run(settings, short_lease, monkeypatch) -> None:
    """No marker: any stage runs. A live DAG run's or `make run`'s marker: a stage that does not
    name that run refuses with one line; the runner's own stages (named in the environment) pass.
    A marker whose holder is gone stops nobody."""
    from pipelines.monitoring.inflight import as_runner, check_stage

    check_stage(settings, "prepare")  # no marker: a laptop with no DAG
    monkeypatch.setenv(LEASE_ENV, "600")
    claim_in_flight(settings, "manual__2026-12-03")
    with pytest.raises(PipelineError) as refused:
        check_stage(settings, "prepare")
    line = str(refused.value)
    assert "\n" not in line and line.startswith("a training run is in flight (training run manual__2026-12-03 since ")
    assert "not running the `prepare` stage beside it; wait for it to finish" in line
    with as_runner("manual__2026-12-03"):
        check_stage(settings, "train")  # the run's own stage
    assert TRAINING_RUN_ENV not in os.environ  # put back
    with as_runner("manual__2026-12-02"), pytest.raises(PipelineError, match="not running the `gate` stage"):
        check_stage(settings, "gate")  # another run's name does not pass
    # `make run` holds it: the same
    release_in_flight(settings, "manual__2026-12-03")
    claim_in_flight(settings, "of `make run` (pid 5)", process=True, exclusive=True)
    with pytest.raises(PipelineError, match=r"training run of `make run` \(pid 5\) since"):
        check_stage(settings, "promote")
    with as_runner("of `make run` (pid 5)"):
        check_stage(settings, "promote")
    # a lease that ran out: nothing in flight, nothing refused
    marker = in_flight_marker(settings)
    marker.write_text(json.dumps({"run_id": "manual__2026-12-04", "since": time.time() - 60, "lease_until": time.time() - 1}))
    check_stage(settings, "prepare")
