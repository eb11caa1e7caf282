"""The online server for real: `python -m pipelines serve` (uvicorn on 127.0.0.1) against a real
MLflow SQLite registry with versions trained by the pipeline's own functions.

Order matters (one project, one server): batch and online agree bit for bit; bad payloads get a
4xx; alias moves are picked up by the poller and at once by /reload, with no failed request
while models swap under load; then misbehaving challengers are rolled back by the guardrails.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import threading
import time
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest

from tests.support.clock import after_a_coming_midnight
from tests.support.serving import (
    TOKEN,
    ServerProcess,
    crafted_version,
    rows_of,
    serving_project,
    set_alias,
    train_version,
)
from tests.support.system import wait_for

pytestmark = pytest.mark.integration
DAY = date(2026, 1, 12)
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Any:
    saved = {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")}
    root = tmp_path_factory.mktemp("serving") / "repo"
    settings = serving_project(root)
    v1 = train_version(settings)
    set_alias(settings, "champion", v1)
    v2 = train_version(settings, max_iter=60, max_depth=3)
    yield settings, v1, v2
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture(scope="module")
def server(project: Any, tmp_path_factory: pytest.TempPathFactory) -> Any:
    settings, _, _ = project
    srv = ServerProcess(settings, tmp_path_factory.mktemp("serving-log") / "server.log")
    srv.wait_ready()
    yield srv
    srv.stop()


def day_rows(settings: Any, n: int | None = None) -> tuple[pd.DataFrame, list[dict[str, Any]]]:
    frame = pd.read_parquet(settings.validated_dir / f"{DAY.isoformat()}.parquet")
    frame = frame if n is None else frame.head(n)
    return frame, rows_of(frame, settings.params.data)


def metric_samples(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """/metrics parsed with prometheus_client's own parser."""
    from prometheus_client.parser import text_string_to_metric_families

    r = httpx.get(url + "/metrics")
    assert r.status_code == 200
    out = {}
    for fam in text_string_to_metric_families(r.text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_online_scores_equal_batch_scores_bit_for_bit(project: Any, server: ServerProcess) -> None:
    from pipelines.serving.score import score

    settings, v1, _ = project
    today = after_a_coming_midnight(120)  # the day the prediction log files the requests under
    score(settings, DAY, progress=False)
    batch = pd.read_parquet(settings.predictions_dir / f"{DAY.isoformat()}.parquet")
    frame, rows = day_rows(settings)
    d = settings.params.data
    split = {"dataframe_split": {"columns": list(rows[0]), "data": [list(r.values()) for r in rows]}}
    for path, body in (("/invocations", split), ("/invocations", {"dataframe_records": rows}),
                       ("/invocations", {"inputs": {c: [r[c] for r in rows] for c in rows[0]}}), ("/predict", {"rows": rows})):
        r = httpx.post(server.url + path, json=body, timeout=30)
        assert r.status_code == 200, r.text
        assert r.headers["x-model-version"] == v1
        online = np.asarray(r.json()["predictions"], dtype="float64")
        expected = batch.set_index(d.id_col).loc[frame[d.id_col], "score"].to_numpy(dtype="float64")
        assert online.view("int64").tolist() == expected.view("int64").tolist(), path  # the same bits
    # one row at a time too (the single-row path batch never takes)
    for row, want in zip(rows[:5], expected[:5], strict=True):
        got = httpx.post(server.url + "/invocations", json={"dataframe_records": [row]}).json()["predictions"][0]
        assert np.float64(got).view("int64") == np.float64(want).view("int64")
    # the prediction log keeps each answered row's inputs as sent, beside its score
    folder = settings.online_predictions_dir / today.isoformat()

    def logged() -> list[pd.DataFrame]:
        parts = sorted(folder.glob("part-*.parquet"))
        log = pd.concat([pd.read_parquet(p) for p in parts], ignore_index=True) if parts else None
        return [log] if log is not None and (log.groupby("request_id").size() == len(rows)).sum() >= 4 else []

    [log] = wait_for(logged, 30, f"the server did not log its requests in {folder}")
    whole = log[log["request_id"] == log.groupby("request_id").size().eq(len(rows)).idxmax()]
    assert (whole["variant"] == "champion").all() and whole[d.id_col].tolist() == frame[d.id_col].astype(str).tolist()
    for c in d.numerical:
        assert np.array_equal(whole[c].to_numpy(), frame[c].to_numpy(dtype="float64"), equal_nan=True), c
    for c in d.categorical:
        assert whole[c].tolist() == [None if pd.isna(v) else str(v) for v in frame[c]], c


def test_a_day_served_only_online_gets_its_drift_check_from_the_prediction_log(project: Any) -> None:
    """A day with no validated batch: `drift` reads the features of the rows that answered a
    client from the prediction log (written by the server's own PredictionLog, one feature
    shifted), against the champion's real profile, and finds the shift; the shadow's duplicate
    rows of the same requests are not counted."""
    from pipelines.config import Settings
    from pipelines.model.champion import load_verified
    from pipelines.model.features import score_frame
    from pipelines.monitoring.drift import drift
    from pipelines.serving.payload import columns_of, frame_of
    from pipelines.serving.predlog import PredictionLog

    base, _, _ = project
    # a log folder of its own: the module's server files its requests of today in the project's
    serve = base.params.serve.model_copy(update={"predictions_dir": "data/predictions_online_only"})
    settings = Settings(base.params.model_copy(update={"serve": serve}), base.root)
    d, name = settings.params.data, settings.params.project.model_name
    model, mv, _ = load_verified(settings, "champion")
    _, rows = day_rows(settings)
    for r in rows:  # the drifted feature of the simulated feature_drift scenario, shifted further
        r["logins_30d"] = None if r["logins_30d"] is None else r["logins_30d"] * 3 + 25
    today = after_a_coming_midnight(60)
    assert not (settings.validated_dir / f"{today}.parquet").exists()
    plog = PredictionLog(settings.online_predictions_dir, d)
    for i in range(0, len(rows), 80):  # two requests of 40 rows scored in one call, as the batcher does
        columns = columns_of(rows[i : i + 80], d)
        scores = score_frame(model, frame_of(rows[i : i + 80], d, columns), d, 1000)
        for at in range(0, len(scores), 40):  # each logged as the server logs it: the columns, where its rows start
            ids, mine = columns[d.id_col][at : at + 40], scores[at : at + 40]
            plog.append(f"r{i + at}", ids, "champion", name, str(mv.version), mv.run_id, mine, 1.0, (columns, at))
            plog.append(f"r{i + at}", ids, "shadow", name, "0", "shadow-run", mine, 1.0)
    assert plog.flush() == 2 * len(rows)

    summary = drift(settings, today)
    assert summary["source"] == "online" and summary["rows"] == len(rows)  # each request row once
    assert summary["score_rows"] == {"batch": 0, "online": len(rows)} and summary["score_psi"] is not None
    assert summary["psi"]["logins_30d"] > summary["psi_threshold"], summary["psi"]
    assert summary["drifted_features"][0] == "logins_30d"
    assert summary["psi"]["age"] < summary["psi_threshold"]  # an unshifted feature reads as such
    saved = json.loads((settings.reports_dir / "drift" / f"{today}.json").read_text())
    assert saved["source"] == "online" and saved["psi"] == summary["psi"]


def test_concurrent_requests_are_batched_and_keep_the_same_bits(project: Any, server: ServerProcess) -> None:
    """Dynamic batching: 16 clients sending single rows at once; the server scores requests that
    arrived together in one predict call (serving_batch_requests), and every client still gets
    exactly the bits batch scoring wrote for its row."""
    from concurrent.futures import ThreadPoolExecutor

    settings, _, _ = project
    d = settings.params.data
    batch = pd.read_parquet(settings.predictions_dir / f"{DAY.isoformat()}.parquet").set_index(d.id_col)["score"]
    frame, rows = day_rows(settings, 320)
    expected = batch.loc[frame[d.id_col]].to_numpy(dtype="float64")
    before = metric_samples(server.url)

    def one(row: dict[str, Any]) -> float:
        r = httpx.post(server.url + "/invocations", json={"dataframe_records": [row]}, timeout=60)
        assert r.status_code == 200, r.text
        return r.json()["predictions"][0]

    with ThreadPoolExecutor(16) as pool:
        online = np.asarray(list(pool.map(one, rows)), dtype="float64")
    assert online.view("int64").tolist() == expected.view("int64").tolist()  # the same bits, row by row
    after = metric_samples(server.url)
    calls = after[("serving_batch_requests_count", ())] - before.get(("serving_batch_requests_count", ()), 0)
    requests = after[("serving_batch_requests_sum", ())] - before.get(("serving_batch_requests_sum", ()), 0)
    assert requests == len(rows), (requests, len(rows))
    assert calls < len(rows), f"{len(rows)} concurrent requests were scored in {calls:.0f} predict calls: none batched"


BAD = [
    ("empty body", b"", 400, "empty body"),
    ("not JSON", b"{rows:", 400, "not valid JSON"),
    ("no known key", b'{"data": []}', 400, "'data'"),
    ("no rows", b'{"dataframe_records": []}', 422, "no rows"),
    ("missing feature", "drop:income", 422, "'income'"),
    ("wrong type", "set:age=forty", 422, "'age'"),
    ("number as category", "set:region=3", 422, "'region'"),
    ("bool as number", "set:utilization=true", 422, "'utilization'"),
    ("split row too short", b'{"dataframe_split": {"columns": ["age", "income"], "data": [[1]]}}', 422, "row 0"),
    ("oversized batch", "many:1001", 413, "max_batch_rows"),
]


@pytest.mark.parametrize("case,body,status,names", BAD, ids=[b[0] for b in BAD])
def test_bad_payloads_get_a_4xx_naming_the_problem(project: Any, server: ServerProcess, case: str, body: Any, status: int,
                                                   names: str) -> None:
    settings = project[0]
    _, rows = day_rows(settings, 3)
    if isinstance(body, str):
        op, _, arg = body.partition(":")
        row = dict(rows[0])
        if op == "drop":
            del row[arg]
        elif op == "set":
            k, _, v = arg.partition("=")
            row[k] = json.loads(v) if v in ("true", "3") else v
        payload = json.dumps({"dataframe_records": [row] * (int(arg) if op == "many" else 1)}).encode()
    else:
        payload = body
    r = httpx.post(server.url + "/invocations", content=payload, headers={"content-type": "application/json"})
    assert r.status_code == status, r.text
    msg = r.json()["error"]
    assert names in msg and "\n" not in msg
    assert r.headers["x-model-version"] == project[1]


def test_predict_rejects_unknown_fields_and_handles_unseen_categories_as_the_model_does(project: Any,
                                                                                       server: ServerProcess) -> None:
    settings = project[0]
    _, rows = day_rows(settings, 1)
    r = httpx.post(server.url + "/predict", json={"rows": [{**rows[0], "colour": "red"}]})
    assert r.status_code == 422 and "'colour'" in r.json()["error"]
    unseen = {**rows[0], "region": "atlantis"}
    missing = {**rows[0], "region": None}
    r1 = httpx.post(server.url + "/predict", json={"rows": [unseen, missing]})
    assert r1.status_code == 200 and r1.headers["x-unseen-categories"] == "region=atlantis"
    a, b = r1.json()["predictions"]
    assert a == b  # an unseen category is scored as missing, exactly as the model does in batch


def test_health_version_and_metrics(project: Any, server: ServerProcess) -> None:
    _, v1, _ = project
    for path in ("/health/live", "/health/ready", "/version", "/metrics", "/rollout", "/nope"):
        r = httpx.get(server.url + path)
        assert r.headers["x-model-version"] == v1, path
    info = httpx.get(server.url + "/version").json()
    assert info["champion"]["version"] == v1 and info["champion"]["run_id"] and info["registry_reachable"] is True
    m = metric_samples(server.url)
    assert m[("serving_model_info", (("alias", "champion"), ("run_id", info["champion"]["run_id"]),
                                     ("sha256", info["champion"]["sha256"][:12]), ("version", v1)))] == 1
    ok = m[("serving_requests_total", (("endpoint", "invocations"), ("status", "200"), ("variant", "champion"), ("version", v1)))]
    assert ok >= 4
    refused = ("serving_requests_total", (("endpoint", "invocations"), ("status", "422"), ("variant", "none"), ("version", v1)))
    assert m[refused] >= 1
    assert m[("serving_request_latency_seconds_count", (("endpoint", "predict"), ("variant", "champion"), ("version", v1)))] >= 1
    assert m[("serving_registry_reachable", ())] == 1 and m[("serving_canary_share", ())] == 0
    assert any(k[0] == "serving_prediction_score_bucket" for k in m)


def test_reload_needs_the_token(server: ServerProcess) -> None:
    assert httpx.post(server.url + "/reload").status_code == 401
    assert httpx.post(server.url + "/reload", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert httpx.post(server.url + "/rollout/pause", headers={"Authorization": "Bearer wrong"}).status_code == 401


def test_the_admin_client_reloads_checks_and_reports_refusals(project: Any, server: ServerProcess) -> None:
    """pipelines/serving/client.py against the real server: what the CLI, promote and the rollout
    task call."""
    from pipelines.errors import PipelineError
    from pipelines.serving.client import ServerClient, ServerRefused, ServerUnreachable, reload_summary
    from tests.support.system import free_port

    _, v1, _ = project
    out = ServerClient(server.url, token=TOKEN).reload()
    assert out["champion"]["version"] == v1 and reload_summary(out) == f"serves v{v1}"
    assert ServerClient(server.url, token=TOKEN).rollout("check")["stage"] == rollout_status(server)["stage"]
    with pytest.raises(ServerRefused) as wrong:
        ServerClient(server.url, "wrong").reload()
    assert wrong.value.status == 401 and "missing or wrong bearer token" in wrong.value.body
    with pytest.raises(ServerRefused) as none:  # no challenger: nothing to pause
        ServerClient(server.url, token=TOKEN).rollout("pause", "client test")
    assert none.value.status == 409 and "no rollout" in str(none.value)
    with pytest.raises(PipelineError, match="unknown rollout action"):
        ServerClient(server.url, token=TOKEN).rollout("restart")
    with pytest.raises(ServerUnreachable, match="no online server"):
        ServerClient(f"http://127.0.0.1:{free_port()}", token=TOKEN, timeout_s=5).reload()
    with pytest.raises(PipelineError, match="http"):
        ServerClient("file:///etc/passwd")
    assert reload_summary(None).startswith("not notified")


def test_alias_moves_are_picked_up_by_the_poller_and_at_once_by_reload(project: Any, server: ServerProcess) -> None:
    from pipelines.model.registry import rollback

    settings, v1, v2 = project
    _, rows = day_rows(settings, 1)
    set_alias(settings, "champion", v2)
    poll = settings.params.serve.poll_seconds
    # within a poll (plus the load): no reload call here
    wait_for(lambda: httpx.post(server.url + "/invocations", json={"dataframe_records": rows}).headers["x-model-version"] == v2,
             poll * 2 + 30, "the poller did not pick up the alias move")
    loads = metric_samples(server.url)[("serving_model_swaps_total", (("alias", "champion"),))]
    rollback(settings, "serving test")
    r = httpx.post(server.url + "/reload", headers=AUTH, timeout=60)
    assert r.status_code == 200 and r.json()["champion"]["version"] == v1 and r.json()["previous"]["version"] == v2
    assert httpx.post(server.url + "/invocations", json={"dataframe_records": rows}).headers["x-model-version"] == v1
    # the previous champion was still in memory: the rollback loaded nothing
    assert metric_samples(server.url)[("serving_model_swaps_total", (("alias", "champion"),))] == loads


def test_cli_promote_and_rollback_call_the_servers_reload(project: Any, server: ServerProcess) -> None:
    import subprocess
    import sys

    settings, v1, v2 = project
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_REGISTRY_URI"}
    env.update(PIPELINES_SERVER_URL=server.url, PIPELINES_RELOAD_TOKEN=TOKEN, PYTHONPATH=str(Path(__file__).resolve().parents[2]))

    def cli(*args: str) -> str:
        proc = subprocess.run([sys.executable, "-m", "pipelines", "--params", str(settings.root / "params.yaml"), *args],
                              env=env, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-2000:]
        return proc.stdout

    assert f"server=serves v{v2}" in cli("promote", "--version", v2, "--reason", "serving test")
    assert httpx.get(server.url + "/version").json()["champion"]["version"] == v2
    assert f"server=serves v{v1}" in cli("rollback", "--reason", "serving test")
    assert httpx.get(server.url + "/version").json()["champion"]["version"] == v1
    # land a challenger from the command line: the server starts its rollout at once; clear ends it
    assert f"challenger={v2}" in cli("challenger", "--version", v2, "--reason", "serving test: online rollout")
    assert httpx.get(server.url + "/version").json()["challenger"]["version"] == v2
    assert rollout_status(server)["version"] == v2 and rollout_status(server)["stage"] in ("shadow", "canary")
    again = subprocess.run([sys.executable, "-m", "pipelines", "--params", str(settings.root / "params.yaml"),
                            "challenger", "--version", v2,
                            "--reason", "again"], env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 1 and f"v{v2} is the challenger already" in again.stderr, again.stderr
    assert f"cleared={v2}" in cli("challenger", "--clear", "--reason", "serving test: done")
    assert httpx.get(server.url + "/version").json()["challenger"] is None
    import mlflow

    tags = mlflow.MlflowClient().get_model_version(settings.params.project.model_name, v2).tags
    assert tags["challenger_reason"].endswith("serving test: online rollout")
    assert tags["challenger_cleared"].endswith("serving test: done")
    for bad, says in ((("--version", v1), f"v{v1} is the champion"), (("--version", "99"), "has no version 99"),
                      ((), "either --version N or --clear")):
        proc = subprocess.run([sys.executable, "-m", "pipelines", "--params", str(settings.root / "params.yaml"),
                               "challenger", *bad,
                               "--reason", "bad"], env=env, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 1 and says in proc.stderr, proc.stderr
    env["PIPELINES_RELOAD_TOKEN"] = "wrong"
    out = cli("promote", "--version", v2, "--reason", "serving test, wrong token")
    assert "server=not notified" in out  # the alias moved anyway; the server sees it at its next poll
    set_alias(settings, "champion", v1)


def test_no_failed_request_while_models_swap_under_load(project: Any, server: ServerProcess) -> None:
    settings, v1, v2 = project
    _, rows = day_rows(settings, 50)
    results: list[tuple[int, str]] = []
    stop = threading.Event()

    def client(k: int) -> None:
        with httpx.Client(timeout=30) as c:
            for i in range(400):  # bounded: stops at the count or when the swaps are done
                if stop.is_set():
                    break
                r = c.post(server.url + "/invocations", json={"dataframe_records": [rows[(k * 7 + i) % len(rows)]]})
                results.append((r.status_code, r.headers.get("x-model-version", "")))

    threads = [threading.Thread(target=client, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    try:
        for version in (v2, v1, v2, v1):
            set_alias(settings, "champion", version)
            assert httpx.post(server.url + "/reload", headers=AUTH, timeout=60).json()["champion"]["version"] == version
            time.sleep(0.3)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert results and all(code == 200 for code, _ in results), [r for r in results if r[0] != 200][:5]
    assert {v for _, v in results} == {v1, v2}


def test_registry_unreachable_keeps_serving_and_says_so(project: Any, tmp_path: Path) -> None:
    """A second server whose registry is a real `mlflow server` (on a copy of the store) that
    is then stopped."""
    import subprocess
    import sys

    from tests.support.system import free_port

    settings = project[0]
    copy = tmp_path / "mlflow.db"
    shutil.copy(settings.root / "mlflow.db", copy)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    mlflow_server = subprocess.Popen(
        [str(Path(sys.executable).parent / "mlflow"), "server", "--backend-store-uri", f"sqlite:///{copy}",
         "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
        env=env, stdout=subprocess.DEVNULL, stderr=(tmp_path / "mlflow.log").open("w"), start_new_session=True,
    )

    def stop_mlflow() -> None:  # its own process group: the CLI and the uvicorn it starts
        if mlflow_server.poll() is None:
            os.killpg(mlflow_server.pid, signal.SIGKILL)  # an outage, not a graceful stop
            mlflow_server.wait(timeout=30)

    saved = {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_URI", "MLFLOW_HTTP_REQUEST_MAX_RETRIES",
                                            "MLFLOW_HTTP_REQUEST_TIMEOUT")}
    os.environ.update(MLFLOW_TRACKING_URI=f"http://127.0.0.1:{port}", MLFLOW_HTTP_REQUEST_MAX_RETRIES="0",
                      MLFLOW_HTTP_REQUEST_TIMEOUT="5")
    srv = None
    try:
        wait_for(lambda: _up(f"http://127.0.0.1:{port}/health"), 120, "mlflow server did not start")
        srv = ServerProcess(settings, tmp_path / "server.log")
        assert srv.wait_ready()["registry"] == f"http://127.0.0.1:{port}"
        _, rows = day_rows(settings, 1)
        stop_mlflow()
        wait_for(lambda: not _up(f"http://127.0.0.1:{port}/health"), 30, "mlflow server still answers")
        r = httpx.post(srv.url + "/reload", headers=AUTH, timeout=120)
        assert r.status_code == 200 and r.json()["registry_reachable"] is False and r.json()["registry_error"], \
            (r.text, srv.log_path.read_text())
        answer = httpx.post(srv.url + "/invocations", json={"dataframe_records": rows})
        assert answer.status_code == 200 and answer.headers["x-model-version"] == project[1]
        ready = httpx.get(srv.url + "/health/ready")
        assert ready.status_code == 200 and ready.json()["registry_reachable"] is False
        assert metric_samples(srv.url)[("serving_registry_reachable", ())] == 0
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        if srv is not None:
            srv.stop()
        stop_mlflow()


def _up(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def test_sigkill_of_a_worker_under_load_fails_only_requests_in_flight(project: Any, tmp_path: Path) -> None:
    """`serve --workers 2`: uvicorn's supervisor replaces a worker killed with SIGKILL; the
    clients (4 threads, a new connection per request) see errors only for requests in flight."""
    import psutil

    settings, v1, _ = project
    set_alias(settings, "champion", v1)
    srv = ServerProcess(settings, tmp_path / "server.log", extra=("--workers", "2"))
    try:
        srv.wait_ready()
        parent = psutil.Process(srv.proc.pid)

        def workers() -> list[psutil.Process]:
            live = []
            for c in parent.children():
                try:
                    cmd = "" if c.status() == psutil.STATUS_ZOMBIE else " ".join(c.cmdline())
                except (psutil.ZombieProcess, psutil.NoSuchProcess):
                    cmd = ""  # the killed worker, until the supervisor reaps it
                if "spawn_main" in cmd and "resource_tracker" not in cmd:
                    live.append(c)
            return live

        wait_for(lambda: len(workers()) == 2, 60, "two workers did not start")
        _, rows = day_rows(settings, 20)
        results: list[Any] = []
        stop = threading.Event()

        def client(k: int) -> None:
            for i in range(3000):  # bounded: stops at the count or when told
                if stop.is_set():
                    return
                try:
                    r = httpx.post(srv.url + "/invocations", json={"dataframe_records": [rows[(k + i) % len(rows)]]}, timeout=60)
                    results.append(r.status_code)
                except httpx.TransportError as exc:
                    results.append(type(exc).__name__)

        threads = [threading.Thread(target=client, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        try:
            wait_for(lambda: len(results) >= 40, 60, "no traffic")
            victim = workers()[0]
            victim.kill()  # SIGKILL
            before = len(results)
            wait_for(lambda: len(workers()) == 2 and victim.pid not in {w.pid for w in workers()}, 120,
                     "the worker was not replaced")
            wait_for(lambda: len(results) >= before + 100, 120, "no traffic after the replacement")
        finally:
            stop.set()
            for t in threads:
                t.join()
        failed = [r for r in results if r != 200]
        assert len(failed) <= len(threads), failed  # at most the one request each client had in flight
        assert results[-40:] == [200] * 40
    finally:
        srv.stop()


def rollout_status(server: ServerProcess) -> dict[str, Any]:
    return httpx.get(server.url + "/rollout").json()


def drive(server: ServerProcess, rows: list[dict[str, Any]], until: Any, limit: int = 3000) -> list[httpx.Response]:
    """Send requests (bounded in count and time) until ``until(status)`` holds; every answer must be 200."""
    out = []
    deadline = time.monotonic() + 300  # a 2 s challenger answering every request would take 100 minutes
    with httpx.Client(timeout=30) as c:
        for i in range(limit):
            if time.monotonic() > deadline:
                break
            r = c.post(server.url + "/invocations", json={"dataframe_records": [rows[i % len(rows)]]})
            assert r.status_code == 200, r.text
            out.append(r)
            if i % 20 == 0 and until(rollout_status(server)):
                return out
    raise AssertionError(f"rollout did not get there in {limit} requests: {rollout_status(server)}")


@pytest.mark.parametrize("kind", ["raise", "slow"])
def test_a_failing_or_slow_challenger_is_rolled_back_with_a_record(project: Any, server: ServerProcess, kind: str) -> None:
    import mlflow

    settings = project[0]
    set_alias(settings, "champion", project[1])
    version = crafted_version(settings, kind, delay=2.0)  # 2 s a call: far above the test SLO (1 s) and the champion
    set_alias(settings, "challenger", version)
    httpx.post(server.url + "/reload", headers=AUTH, timeout=60)
    assert rollout_status(server)["version"] == version
    _, rows = day_rows(settings, 200)
    answers = drive(server, rows, lambda st: st["version"] == version and st["stage"] == "rejected")
    assert all(r.status_code == 200 for r in answers)  # the client never saw the challenger fail
    st = rollout_status(server)
    assert st["canary_percent"] == 0
    want = "error rate" if kind == "raise" else "p99 latency"
    assert want in st["reason"]
    if kind == "raise":  # only its calls on rows with age > 50 failed, in shadow (its own process) and canary alike
        assert not st["reason"].startswith("error rate 100.0%"), st["reason"]
    client = mlflow.MlflowClient()
    # the server records the decision right after it changes the stage
    mv = wait_for(lambda: (m := client.get_model_version(settings.params.project.model_name, version)).tags.get("rejected") and m,
                  30, "no rejected tag")
    assert want in mv.tags["rejected"] and mv.tags["rollout_stage"] == "rejected"
    files = [f.path for f in client.list_artifacts(mv.run_id, "rollout")]
    assert any(f.endswith("-reject.json") for f in files) and any(f.endswith("-reject.txt") for f in files)
    assert metric_samples(server.url)[("serving_canary_share", ())] == 0
    # after the rejection, requests are answered by the champion only
    assert {r.headers["x-model-version"] for r in drive_n(server, rows, 20)} == {project[1]}


def drive_n(server: ServerProcess, rows: list[dict[str, Any]], n: int) -> list[httpx.Response]:
    with httpx.Client(timeout=30) as c:
        return [c.post(server.url + "/invocations", json={"dataframe_records": [rows[i % len(rows)]]}) for i in range(n)]


def pairs_enough_to_promote(server: ServerProcess, settings: Any, rows: list[dict[str, Any]], day: date,
                            v1: str, v2: str) -> pd.DataFrame:
    """The day's paired scores of v1 (``score_1``) and v2 (``score_2``), one row per entity,
    once there are enough entities for the sequential test to promote v2 when each entity's
    label says v2 was the closer; drives traffic from entities not sent yet until then."""
    from pipelines.io import day_parts
    from pipelines.serving.sequential import decide, log_loss_terms

    d, sp = settings.params.data, settings.params.serve
    sent = 0

    def pairs() -> pd.DataFrame:
        log = pd.concat([pd.read_parquet(p) for p in day_parts(settings.online_predictions_dir, day)])
        a = log[log["model_version"] == v1][["request_id", d.id_col, "score"]]
        b = log[log["model_version"] == v2][["request_id", "score"]]
        return a.merge(b, on="request_id", suffixes=("_1", "_2")).drop_duplicates(d.id_col)

    def enough() -> bool:
        nonlocal sent
        both = pairs()
        y = (both["score_2"] > both["score_1"]).to_numpy(dtype="float64")
        diffs = log_loss_terms(both["score_1"].to_numpy(), y) - log_loss_terms(both["score_2"].to_numpy(), y)
        if decide(diffs, sp.alpha, sp.min_outcomes, sp.max_outcomes).decision == "promote":
            return True
        drive_n(server, rows[sent:] + rows[:sent], 20)  # more traffic, bounded by the wait
        sent = (sent + 20) % len(rows)
        return False

    wait_for(enough, 120, "not enough paired scores")
    return pairs()


def test_a_good_challenger_goes_shadow_then_canary_sticky_then_champion_on_live_outcomes(project: Any,
                                                                                         server: ServerProcess) -> None:
    settings, v1, v2 = project
    set_alias(settings, "champion", v1)
    set_alias(settings, "challenger", v2)
    httpx.post(server.url + "/reload", headers=AUTH, timeout=60)
    _, rows = day_rows(settings, 400)
    drive(server, rows, lambda st: st["version"] == v2 and st["stage"] == "canary" and st["canary_percent"] >= 25)
    # sticky: the same entity is answered by the same version every time within a stage
    # as the rollout DAG's task does it (pipelines/ops/tasks.py)
    from pipelines.ops import tasks

    os.environ.update(PIPELINES_SERVER_URL=server.url, PIPELINES_RELOAD_TOKEN=TOKEN)
    try:
        assert tasks.rollout()["stage"] == "canary"  # the schedule's check
        assert tasks.rollout("pause", "sticky check")["action"] == "pause"
    finally:
        os.environ.pop("PIPELINES_SERVER_URL")
        os.environ.pop("PIPELINES_RELOAD_TOKEN")
    first = {r.json()["predictions"][0]: r.headers["x-model-version"] for r in drive_n(server, rows[:40], 40)}
    again = drive_n(server, rows[:40], 40)
    assert [r.headers["x-model-version"] for r in again] == [
        r.headers["x-model-version"] for r in drive_n(server, rows[:40], 40)
    ]
    assert {r.headers["x-model-variant"] for r in again} == {"champion", "canary"}, first
    st = rollout_status(server)  # still paused: the stage cannot move between these two reads
    mine = [h["action"] for h in st["history"] if h["version"] == v2]
    mine = mine[len(mine) - 1 - mine[::-1].index("shadow"):]  # this rollout of v2 (an earlier test may have landed it too)
    assert mine[:2] == ["shadow", "advance"] and "reject" not in mine, st
    m = metric_samples(server.url)
    assert m[("serving_canary_share", ())] == st["canary_percent"]
    assert m[("serving_rollout_stage", (("stage", "canary"), ("version", v2)))] == 1
    assert m[("serving_shadow_abs_diff_count", ())] > 0
    httpx.post(server.url + "/rollout/resume", headers=AUTH)

    # promotion on live outcomes: labels mature (here: the challenger was right more often)
    from tests.support.clock import after_a_coming_midnight

    today = after_a_coming_midnight(within=300)  # the pairs, the labels and the promotion below: waits of up to 210 s
    d = settings.params.data
    both = pairs_enough_to_promote(server, settings, rows, today, v1, v2)
    labels = pd.DataFrame({d.id_col: both[d.id_col], d.target: (both["score_2"] > both["score_1"]).astype("int64")})
    labels.to_parquet(settings.labels_dir / f"{today.isoformat()}.parquet", index=False)
    wait_for(lambda: httpx.get(server.url + "/version").json()["champion"]["version"] == v2, 60, "not promoted on outcomes")
    import mlflow

    name = settings.params.project.model_name
    mv = wait_for(lambda: (m := mlflow.MlflowClient().get_model_version(name, v2)).tags.get("rollout_stage") == "promoted" and m,
                  30, "promotion not recorded")
    assert mv.tags["champion_reason"].startswith("online rollout (sequential test on live outcomes): promote")
    assert mv.tags["rollout_stage"] == "promoted"
    assert any(f.path.endswith("-promote.json") for f in mlflow.MlflowClient().list_artifacts(mv.run_id, "rollout"))


def test_a_corrupted_artifact_on_reload_is_refused_and_the_old_model_keeps_serving(project: Any, server: ServerProcess) -> None:
    """A fault of the fault suite (docs/operations/faults.md): the alias moves to a version
    whose artifact was altered on disk after registration. The reload verifies the hash,
    refuses it, and the champion in memory keeps answering."""
    import mlflow

    settings, v1, _ = project
    _, rows = day_rows(settings, 1)
    # a version the server has never loaded (the previous champion stays verified in memory)
    v3 = train_version(settings, max_iter=30, max_depth=2)
    client = mlflow.MlflowClient()
    model_id = client.get_model_version(settings.params.project.model_name, v3).source.split("/")[-1]
    target = next(p for p in (settings.root / "mlartifacts").rglob("model.skops") if model_id in str(p))
    original = target.read_bytes()
    serving = httpx.get(server.url + "/version").json()["champion"]["version"]
    try:
        target.write_bytes(original + b"tampered")
        set_alias(settings, "champion", v3)
        r = httpx.post(server.url + "/reload", headers=AUTH, timeout=60)
        assert r.json()["champion"]["version"] == serving, r.text
        assert "differs from the registered" in r.json()["load_errors"]["champion"], r.text
        answer = httpx.post(server.url + "/invocations", json={"dataframe_records": rows})
        assert answer.status_code == 200 and answer.headers["x-model-version"] == serving
        ready = httpx.get(server.url + "/health/ready")
        assert "differs from the registered" in ready.text, ready.text
    finally:
        target.write_bytes(original)
        set_alias(settings, "champion", v1)
        httpx.post(server.url + "/reload", headers=AUTH, timeout=60)
