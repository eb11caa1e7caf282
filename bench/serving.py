"""Online serving benchmark: our server against `mlflow models serve` of the same champion.

    .venv/bin/python bench/serving.py --params <project>/params.yaml [--seconds 10] [--rates 25 50]
                                      [--clients 1 4 16] [--challenger VERSION] [--workers 1]

Needs a project with a registered champion (e.g. after `make run`). Both servers run on this
machine's loopback, one at a time, on the same cores, serving `models:/<name>@champion`; the
load generator (aiohttp, in this process) sends single-row `/invocations` requests:

- saturation: closed loop, N clients each sending the next request when the last answered, for
  ``--seconds``: achieved req/s and latency;
- fixed arrival rates (open loop): requests sent on a fixed schedule for ``--seconds`` (bounded
  count = rate x seconds), latency measured from the scheduled send time (no coordinated
  omission); ours only, at half of its saturation rate and at ``--rates``;
- shadow: ours with ``--challenger`` in shadow at the same fixed rate (p99 difference), half of
  saturation or ``--rollout-rates``; with the share of requests over 20 and 50 ms as the client
  saw them and inside the server (its own latency histogram), to tell where a tail comes from;
- swap and rollback under load: at that fixed rate, the champion alias is moved to the challenger
  and back with the CLI (`promote --version`, `rollback`, each of which calls POST /reload), in
  processes of their own: failed requests counted.

Prints a Markdown table for BENCHMARKS.md. Every process it starts is stopped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
TOKEN = "bench-token"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(cmd: list[str], env: dict[str, str], url: str, health: str, cwd: Path) -> subprocess.Popen[bytes]:
    import urllib.request

    # closed here once the server has its own handle; the name stays for the error messages
    with tempfile.NamedTemporaryFile(prefix="bench-serving-", suffix=".log", delete=False) as log:
        proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{cmd[:4]} exited {proc.returncode}: see {log.name}")
        try:
            with urllib.request.urlopen(url + health, timeout=2) as r:
                if r.status == 200:
                    return proc
        except OSError:
            time.sleep(0.3)  # not up yet
    stop(proc)
    raise SystemExit(f"{cmd[:4]} not ready after 180 s: see {log.name}")


def stop(proc: subprocess.Popen[bytes]) -> None:
    import signal

    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)  # its own session: the server and what it started
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def request_bodies(settings: Any) -> list[bytes]:
    """Single-row `/invocations` bodies (dataframe_records) of the last validated day's first 500 rows."""
    import pandas as pd

    from pipelines.io import partition_files

    d = settings.params.data
    day = list(partition_files(settings.validated_dir).values())[-1]
    frame = pd.read_parquet(day).head(500)
    rows = json.loads(frame[[d.id_col, *d.features]].astype({d.id_col: str}).to_json(orient="records"))
    return [json.dumps({"dataframe_records": [r]}).encode() for r in rows]


def server_env(settings: Any, code: Path) -> dict[str, str]:
    """The environment of a server (and the CLI) run from the code tree ``code`` on this project's store."""
    from pipelines.tracking import tracking_uri

    bindir = str(Path(sys.executable).parent)
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_REGISTRY_URI"}
    env.update(PATH=f"{bindir}:{env.get('PATH', '')}", MLFLOW_TRACKING_URI=tracking_uri(settings), PYTHONPATH=str(code),
               PIPELINES_RELOAD_TOKEN=TOKEN)
    return env


def summary(lat_s: list[float], errors: int, seconds: float) -> dict[str, Any]:
    a = np.asarray(lat_s) * 1000
    ok = len(a)
    return {
        "requests": ok + errors,
        "errors": errors,
        "req_per_s": round(ok / seconds, 1),
        **({f"p{q}": round(float(np.percentile(a, q)), 2) for q in (50, 95, 99)} if ok else {}),
        "max": round(float(a.max()), 2) if ok else None,
    }


def server_histogram(url: str) -> dict[float, float]:
    """The server's own latency histogram of ``/invocations`` (handler start to reply, every
    variant): cumulative count by bucket bound, read from ``/metrics``."""
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    out: dict[float, float] = {}
    for fam in text_string_to_metric_families(urllib.request.urlopen(url + "/metrics", timeout=30).read().decode()):
        if fam.name == "serving_request_latency_seconds":
            for smp in fam.samples:
                if smp.name.endswith("_bucket") and smp.labels.get("endpoint") == "invocations":
                    le = float(smp.labels["le"])
                    out[le] = out.get(le, 0.0) + smp.value
    return out


def share_over(hist: dict[float, float], bound_s: float) -> float:
    """The share of a histogram's observations above ``bound_s`` (a bucket bound)."""
    return 1 - hist.get(bound_s, 0.0) / hist[float("inf")] if hist.get(float("inf")) else float("nan")


async def _post(session: Any, url: str, body: bytes, since: float, lat: list[float]) -> bool:
    """One request; its latency (from ``since``) goes into ``lat`` on a 200; False on an error."""
    import aiohttp

    try:
        async with session.post(url, data=body, headers={"content-type": "application/json"}) as r:
            await r.read()
            if r.status == 200:
                lat.append(time.perf_counter() - since)
                return True
    except aiohttp.ClientError:
        pass  # counted by the caller as an error, like a non-200 answer
    return False


async def closed_loop(url: str, bodies: list[bytes], clients: int, seconds: float) -> dict[str, Any]:
    import aiohttp

    lat: list[float] = []
    errors = 0
    end = time.perf_counter() + seconds

    async def client(k: int, session: Any) -> None:
        nonlocal errors
        i = k
        while time.perf_counter() < end:
            if not await _post(session, url, bodies[i % len(bodies)], time.perf_counter(), lat):
                errors += 1
            i += clients

    started = time.perf_counter()
    async with aiohttp.ClientSession() as session:
        await asyncio.gather(*(client(k, session) for k in range(clients)))
    return summary(lat, errors, time.perf_counter() - started)


async def open_loop(url: str, bodies: list[bytes], rate: float, seconds: float, during: Any = None) -> dict[str, Any]:
    """``rate`` requests a second on a fixed schedule for ``seconds``; ``during`` (a blocking
    function) runs in a thread meanwhile."""
    import aiohttp

    n = int(rate * seconds)
    lat: list[float] = []
    errors = 0
    t0 = time.perf_counter() + 0.2

    async def one(i: int, session: Any) -> None:
        nonlocal errors
        scheduled = t0 + i / rate
        await asyncio.sleep(max(0.0, scheduled - time.perf_counter()))
        if not await _post(session, url, bodies[i % len(bodies)], scheduled, lat):
            errors += 1

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=256)) as session:
        side = asyncio.create_task(asyncio.to_thread(during)) if during else None
        await asyncio.gather(*(one(i, session) for i in range(n)))
        if side:
            await side
    return {**summary(lat, errors, seconds), "_lat": lat}


def wait_for_shadow_scorer(url: str, body: bytes) -> None:
    """Send requests until the off-path scorer (its own process) has scored one: the rounds
    measure shadow mode running, not its start."""
    import urllib.request

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        req = urllib.request.Request(url + "/invocations", data=body, headers={"content-type": "application/json"})
        urllib.request.urlopen(req, timeout=10).read()
        with urllib.request.urlopen(url + "/metrics", timeout=10) as r:
            if any(
                line.startswith("serving_shadow_abs_diff_count") and float(line.split()[-1]) > 0
                for line in r.read().decode().splitlines()
            ):
                return
        time.sleep(0.5)
    raise SystemExit("the challenger scored nothing in shadow within 60 s")


def main() -> None:  # noqa: PLR0912, PLR0915 a benchmark: its measured phases in order, then its tables
    ap = argparse.ArgumentParser()
    ap.add_argument("--params", required=True, help="params.yaml of a project with a registered champion")
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--clients", type=int, nargs="+", default=[1, 4, 16])
    ap.add_argument("--rates", type=float, nargs="*", default=[])
    ap.add_argument(
        "--rollout-rates",
        type=float,
        nargs="*",
        default=[],
        help="fixed rates of the shadow and swap rows (default: half of our saturation); give each also in --rates to compare",
    )
    ap.add_argument("--challenger", help="a registered version to run in shadow, and to swap to and back under load")
    ap.add_argument(
        "--shadow-rounds", type=int, default=3, help="alternating rounds of champion only and with the challenger in shadow"
    )
    ap.add_argument("--workers", type=int, default=1, help="our server's worker processes (serve --workers)")
    args = ap.parse_args()

    import mlflow

    from pipelines.config import load_settings
    from pipelines.tracking import setup_mlflow

    settings = load_settings(args.params)
    setup_mlflow(settings)
    name = settings.params.project.model_name
    bodies = request_bodies(settings)
    bindir = str(Path(sys.executable).parent)
    env = server_env(settings, REPO)
    champion = mlflow.MlflowClient().get_model_version_by_alias(name, "champion").version
    results: list[tuple[str, str, dict[str, Any]]] = []

    def ours(challenger: bool) -> tuple[subprocess.Popen[bytes], str]:
        client = mlflow.MlflowClient()
        if challenger:
            client.set_registered_model_alias(name, "challenger", args.challenger)
        else:
            try:
                client.delete_registered_model_alias(name, "challenger")
            except mlflow.exceptions.MlflowException as exc:
                print(f"(no challenger alias to remove: {exc.error_code})", file=sys.stderr)
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        proc = start(
            [
                sys.executable,
                "-m",
                "pipelines",
                "--params",
                str(settings.root / "params.yaml"),
                "serve",
                "--port",
                str(port),
                "--workers",
                str(args.workers),
            ],
            env,
            url,
            "/health/ready",
            settings.root,
        )
        if challenger:  # held in shadow: the project's bake time and request count would soon make it a canary
            import urllib.request

            req = urllib.request.Request(
                url + "/rollout/pause?reason=benchmark", method="POST", headers={"Authorization": f"Bearer {TOKEN}"}
            )
            state = json.loads(urllib.request.urlopen(req, timeout=30).read())
            assert state["stage"] == "shadow", state
        return proc, url

    # 1. mlflow models serve of the same champion
    port = free_port()
    mproc = start([f"{bindir}/mlflow", "models", "serve", "-m", f"models:/{name}@champion", "--env-manager", "local",
                   "-p", str(port), "-h", "127.0.0.1"], env, f"http://127.0.0.1:{port}", "/health", settings.root)
    try:
        results.extend(
            (
                "mlflow models serve",
                f"closed loop, {c} client(s)",
                asyncio.run(closed_loop(f"http://127.0.0.1:{port}/invocations", bodies, c, args.seconds)),
            )
            for c in args.clients
        )
    finally:
        stop(mproc)
    mlflow_sat = max(r[2]["req_per_s"] for r in results)

    # 2. ours, champion only
    proc, url = ours(False)
    try:
        results.extend(
            ("ours", f"closed loop, {c} client(s)", asyncio.run(closed_loop(url + "/invocations", bodies, c, args.seconds)))
            for c in args.clients
        )
        sat = max(r[2]["req_per_s"] for r in results if r[0] == "ours")
        half = round(sat / 2)
        results.extend(
            ("ours", f"fixed {rate:g} req/s", asyncio.run(open_loop(url + "/invocations", bodies, rate, args.seconds)))
            for rate in [half, *args.rates]
        )
    finally:
        stop(proc)

    if args.challenger:
        rollout_rates = args.rollout_rates or [half]
        tails: dict[tuple[float, bool], dict[float, tuple[float, float]]] = {}  # share over 20 and 50 ms: (client, server)
        # 3. shadow against no shadow, same rate: rounds alternate the two servers, so a noisy
        #    spell of the machine falls on both; each side's latencies are pooled over its rounds
        for rate in rollout_rates:
            pooled: dict[bool, list[list[float]]] = {False: [], True: []}
            errs = {False: 0, True: 0}
            inside: dict[bool, dict[float, float]] = {False: {}, True: {}}  # the servers' own histograms, summed
            for _ in range(args.shadow_rounds):
                for shadow in (False, True):
                    proc, url = ours(shadow)
                    try:
                        if shadow:
                            wait_for_shadow_scorer(url, bodies[0])
                        before = server_histogram(url)
                        r = asyncio.run(open_loop(url + "/invocations", bodies, rate, args.seconds))
                        for le, n in server_histogram(url).items():  # this round's requests only
                            inside[shadow][le] = inside[shadow].get(le, 0.0) + n - before.get(le, 0.0)
                    finally:
                        stop(proc)
                    pooled[shadow].append(r.pop("_lat"))
                    errs[shadow] += r["errors"]
            for shadow in (False, True):
                lat = [x for lats in pooled[shadow] for x in lats]
                client = np.asarray(lat)
                tails[(rate, shadow)] = {
                    b: (float((client > b).mean()) if len(client) else float("nan"), share_over(inside[shadow], b))
                    for b in (0.02, 0.05)
                }
                who = "ours + shadow" if shadow else "ours, champion only"
                results.append((who, f"fixed {rate:g} req/s, {args.shadow_rounds} alternating rounds pooled",
                                summary(lat, errs[shadow], args.seconds * args.shadow_rounds)))

        # 4. swap to the challenger and back (rollback), under load
        proc, url = ours(True)
        try:
            def swaps() -> None:
                # as an operator does it: the CLI, which moves the alias and calls the server's
                # /reload; in a process of its own, so its work never starves this load generator
                def cli(*cmd: str) -> None:
                    subprocess.run([sys.executable, "-m", "pipelines", "--params", str(settings.root / "params.yaml"), *cmd],
                                   env={**env, "PIPELINES_SERVER_URL": url}, cwd=settings.root, check=True,
                                   capture_output=True, timeout=300)

                time.sleep(args.seconds / 4)
                cli("promote", "--version", str(args.challenger), "--reason", "benchmark: swap under load")
                time.sleep(args.seconds / 4)
                cli("rollback", "--reason", "benchmark: rollback under load")

            results.extend(
                (
                    "ours, swap + rollback",
                    f"fixed {rate:g} req/s",
                    asyncio.run(open_loop(url + "/invocations", bodies, rate, args.seconds, swaps)),
                )
                for rate in rollout_rates
            )
        finally:
            stop(proc)
            mlflow.MlflowClient().delete_registered_model_alias(name, "challenger")
        assert mlflow.MlflowClient().get_model_version_by_alias(name, "champion").version == champion

    ours_sat = max(r[2]["req_per_s"] for r in results if r[0] == "ours" and "closed" in r[1])
    print(
        f"\ncores: {os.cpu_count()}, our workers: {args.workers}, "
        f"rows: single-row /invocations, {args.seconds:g} s per row below\n"
    )
    print("| server | load | requests | errors | req/s | p50 ms | p95 ms | p99 ms | max ms |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for who, load, r in results:
        print(
            f"| {who} | {load} | {r['requests']} | {r['errors']} | {r['req_per_s']} "
            f"| {r.get('p50')} | {r.get('p95')} | {r.get('p99')} | {r.get('max')} |"
        )
    for who, load, r in results:
        if who == "ours + shadow":
            base = next(b for w, other, b in results if w == "ours, champion only" and other == load)
            print(
                f"\nshadow at {load}: p99 {base['p99']} -> {r['p99']} ms ({r['p99'] - base['p99']:+.2f} ms), "
                f"p50 {base['p50']} -> {r['p50']} ms"
            )
    if args.challenger:
        print(
            "\nwhere the tail is: share of requests over 20 / 50 ms as the client saw them, "
            "and inside the server (its own histogram)\n"
        )
        print("| rate | server | client > 20 ms | server > 20 ms | client > 50 ms | server > 50 ms |")
        print("| ---: | --- | ---: | ---: | ---: | ---: |")
        for (rate, shadow), t in tails.items():
            print(
                f"| {rate:g} | {'+ shadow' if shadow else 'champion only'} | {t[0.02][0]:.2%} | {t[0.02][1]:.2%} "
                f"| {t[0.05][0]:.2%} | {t[0.05][1]:.2%} |"
            )
    print(f"\nsaturation: ours {ours_sat} req/s, mlflow models serve {mlflow_sat} req/s ({ours_sat / mlflow_sat:.2f}x)")
    sys.stdout.flush()
    os._exit(0)  # see pipelines/cli/__init__.py: pyarrow can abort at interpreter exit


if __name__ == "__main__":
    main()
