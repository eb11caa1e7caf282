"""Our server from two code trees, A against B, in one run: interleaved rounds, the same project.

    .venv/bin/python bench/serving_ab.py --params <project>/params.yaml \\
        --trees before=<worktree of the old commit> after=. [--rates 50 100 140] [--rounds 3] [--seconds 10]

For a change to the serving code: `git worktree add /tmp/before <commit>` gives the other tree.
For a change of settings, give the same tree twice and one of them other params with
``--params-of NAME=<project>/other.yaml`` (a file next to ``--params``, e.g. another poll interval).
Each round starts each tree's server in turn (`python -m pipelines serve`, that tree first on
PYTHONPATH, one worker, the same registry and champion) and measures, one after the other:
saturation (closed loop, ``--clients`` clients) and each fixed arrival rate (open loop,
latency from the scheduled send time), with bench/serving.py's load generator on loopback.
Rounds alternate the trees, so a noisy spell of this shared machine falls on both; each row pools
a tree's latencies over its rounds. Prints a Markdown table; every server is stopped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.serving import closed_loop, free_port, open_loop, request_bodies, server_env, start, stop, summary  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--params", required=True, help="params.yaml of a project with a registered champion")
    ap.add_argument("--trees", nargs=2, required=True, metavar="NAME=DIR", help="two code trees, e.g. before=/tmp/before after=.")
    ap.add_argument("--rates", type=float, nargs="+", default=[50.0, 100.0, 140.0], help="fixed arrival rates (req/s)")
    ap.add_argument("--clients", type=int, default=16, help="closed-loop clients for saturation")
    ap.add_argument("--params-of", nargs="*", default=[], metavar="NAME=PARAMS",
                    help="the params file a tree's server reads instead of --params (a file in the same project folder)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=10.0, help="per measurement")
    args = ap.parse_args()

    from pipelines.config import load_settings
    from pipelines.tracking import setup_mlflow

    trees: dict[str, Path] = {}
    for spec in args.trees:
        name, _, folder = spec.partition("=")
        path = Path(folder).resolve()
        if not name or not (path / "pipelines" / "serving" / "__init__.py").is_file():
            raise SystemExit(f"--trees {spec}: expected NAME=DIR, DIR a checkout of this repository")
        trees[name] = path
    settings = load_settings(args.params)
    setup_mlflow(settings)
    params = {name: Path(args.params).resolve() for name in trees}
    for spec in args.params_of:
        name, _, file = spec.partition("=")
        path = Path(file).resolve()
        if name not in trees or not path.is_file() or path.parent != params[name].parent:
            raise SystemExit(f"--params-of {spec}: expected NAME=FILE, NAME one of --trees, FILE a params file next to --params")
        params[name] = path
    bodies = request_bodies(settings)

    lat: dict[tuple[str, float], list[float]] = {(t, r): [] for t in trees for r in args.rates}
    errors: dict[tuple[str, float], int] = {(t, r): 0 for t in trees for r in args.rates}
    saturation: dict[str, list[float]] = {t: [] for t in trees}
    for k in range(args.rounds):
        for name, path in trees.items():
            port = free_port()
            url = f"http://127.0.0.1:{port}"
            # -P: the working directory (the project) does not go first on sys.path, so a project
            # that is itself a checkout cannot put its own code in place of the tree's
            proc = start([sys.executable, "-P", "-m", "pipelines", "--params", str(params[name]), "serve", "--port", str(port)],
                         server_env(settings, path), url, "/health/ready", settings.root)
            try:
                asyncio.run(closed_loop(url + "/invocations", bodies, 4, 2.0))  # warm the connection pool and the caches
                saturation[name].append(
                    asyncio.run(closed_loop(url + "/invocations", bodies, args.clients, args.seconds))["req_per_s"]
                )
                for rate in args.rates:
                    r: dict[str, Any] = asyncio.run(open_loop(url + "/invocations", bodies, rate, args.seconds))
                    lat[(name, rate)].extend(r.pop("_lat"))
                    errors[(name, rate)] += r["errors"]
            finally:
                stop(proc)
            print(
                f"round {k + 1}/{args.rounds}: {name} done (saturation {saturation[name][-1]} req/s)", file=sys.stderr, flush=True
            )

    print("| tree | load | requests | errors | req/s | p50 ms | p95 ms | p99 ms | max ms |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name in trees:
        runs = ", ".join(f"{x:g}" for x in saturation[name])
        print(f"| {name} | closed loop, {args.clients} clients, saturation per round | | | {runs} | | | | |")
    for rate in args.rates:
        for name in trees:
            s = summary(lat[(name, rate)], errors[(name, rate)], args.seconds * args.rounds)
            print(
                f"| {name} | fixed {rate:g} req/s, {args.rounds} rounds pooled "
                f"| {s['requests']} | {s['errors']} | {s['req_per_s']} "
                f"| {s.get('p50')} | {s.get('p95')} | {s.get('p99')} | {s['max']} |"
            )


if __name__ == "__main__":
    main()
