"""Command line: `python -m pipelines <command>`; each command is a thin wrapper over a function.

Exit code 0 on success; non-zero with a one-line reason on stderr on failure (a failed
validation is a failure and lists one line per failed expectation). The commands live by job
in data, model, serving, monitoring and ops; what they share (settings, output, exit) in common.

Process exit: with pyarrow 25 a short-lived process that has read Parquet can abort at
interpreter exit ("terminate called without an active exception", SIGABRT) after its work is
done (apache/arrow#34314). Arrow's global CPU/IO thread pools are joined by C++ static
destructors during finalization, and a race there ends in std::terminate; the pool threads
exist whether or not a read used threads. So every command, on every path (success, failure,
usage error, uncaught bug), leaves with ``os._exit`` once its output is flushed (``main``):
static destructors never run and the teardown never happens. Reads also use
``use_threads=False`` (pipelines/io.py). Airflow tasks are safe for the same reason: the task
supervisor's forked child ends with ``os._exit``.
"""

from __future__ import annotations

import logging
import sys
import traceback

import typer

from pipelines.cli import data, model, monitoring, ops, serving
from pipelines.cli.common import STATE, _exit, _quiet_libraries

app = typer.Typer(
    help="Credit-default MLOps pipeline: simulate, validate, train, gate, promote, score, watch drift.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def options(
    params: str | None = typer.Option(None, "--params", help="params.yaml to use (default: the project's)."),
    as_json: bool = typer.Option(False, "--json", help="Print each command's full result as JSON."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Only warnings and errors on stderr (no progress)."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Debug lines too (the tools run, their folders)."),
) -> None:
    from pipelines.log import setup

    if quiet and verbose:
        raise typer.BadParameter("--quiet and --verbose contradict each other")
    STATE["params"] = params
    STATE["json"] = as_json
    setup(logging.WARNING if quiet else logging.DEBUG if verbose else logging.INFO)
    _quiet_libraries()


# In the order `--help` lists them; `evaluate` is the hidden, deprecated name of `gate`.
for _command in (
    data.init, data.simulate, data.validate, data.prepare,
    model.train, model.gate, model.evaluate, model.promote, model.challenger, model.rollback,
    serving.score, serving.compact, monitoring.drift, monitoring.performance,
    model.push, model.reproduce, model.status, serving.serve, ops.replay, ops.run, ops.report,
):
    app.command(hidden=_command is model.evaluate)(_command)


def main() -> None:
    """Run the app and leave with ``os._exit`` on every path (see the module docstring)."""
    try:
        app()  # standalone mode: click prints usage errors and raises SystemExit
        code = 0
    except SystemExit as exc:
        if isinstance(exc.code, str):
            print(exc.code, file=sys.stderr)
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:  # noqa: BLE001 - a bug: show it, but still leave without finalization
        traceback.print_exc()
        code = 1
    _exit(code)
