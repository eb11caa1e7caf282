"""Model commands: train, gate (and its deprecated name), the registry's moves, and a version's
lineage (push its data, rebuild it, show the status)."""

from __future__ import annotations

import json
from typing import Any

import typer

from pipelines.cli.common import STATE, _run, _settings, log
from pipelines.errors import PipelineError


def train() -> None:
    """Train the candidate Pipeline and log it to MLflow (writes models/candidate.json)."""
    from pipelines.model.train import train as fn

    _run(lambda: fn(_settings()), stage="train")


def gate() -> None:
    """Judge the candidate against the champion on the same holdout; write the decision record."""
    from pipelines.model.gate import format_decision
    from pipelines.model.gate import gate as fn

    def go() -> Any:
        decision = fn(_settings())
        log.info("%s", format_decision(decision))
        return decision

    _run(go, stage="gate")


def evaluate() -> None:
    """Deprecated name of `gate`: runs the same step."""
    log.warning("`evaluate` is deprecated: use `gate` (the same step)")
    gate()


def promote(
    version: str | None = typer.Option(None, help="Manually make this version champion (needs --reason)."),
    reason: str | None = typer.Option(None, help="Written justification for a manual promotion."),
    override: str | None = typer.Option(
        None, help="Promote the gated candidate even if the gate failed; the value is the recorded justification."
    ),
) -> None:
    """Register the gated candidate (champion if it passed, else challenger), or promote by hand."""
    from pipelines.model.registry import promote_version
    from pipelines.ops.promote import notify_server
    from pipelines.ops.promote import promote as fn

    if version:
        _run(lambda: {**promote_version(_settings(), version, reason or ""), "server": _reloaded(notify_server())})
    else:
        _run(lambda: fn(_settings(), override_reason=override), stage="promote")


def _reloaded(out: Any) -> str:
    """What the online server said after a reload call (see ops/promote.notify_server)."""
    from pipelines.serving.client import reload_summary

    return reload_summary(out)


def challenger(
    version: str | None = typer.Option(None, help="The registered version to roll out online (shadow, canary, champion)."),
    clear: bool = typer.Option(False, "--clear", help="End the rollout: remove the challenger alias."),
    reason: str = typer.Option(..., help="Why (recorded on the version)."),
) -> None:
    """Land a registered version as challenger for the online rollout, or clear it (the champion never moves)."""
    from pipelines.model.registry import challenger as fn
    from pipelines.ops.promote import notify_server

    def land() -> dict[str, Any]:
        if clear == (version is not None):
            raise PipelineError("give either --version N or --clear")
        return {**fn(_settings(), None if clear else version, reason), "server": _reloaded(notify_server())}

    _run(land)


def rollback(reason: str = typer.Option(..., help="Why the current champion is being rolled back.")) -> None:
    """Move the champion alias back to the previous champion."""
    from pipelines.model.registry import rollback as fn
    from pipelines.ops.promote import notify_server

    _run(lambda: {**fn(_settings(), reason), "server": _reloaded(notify_server())})


def push() -> None:
    """`dvc push` the training data to the DVC remote and tag the last registered version with it."""
    from pipelines.ops.reproduce import push as fn

    _run(lambda: fn(_settings()))


def reproduce(
    ref: str = typer.Argument("champion", help="Version number (3 or v3) or alias (champion, challenger)."),
    keep: bool = typer.Option(False, help="Keep the temporary worktree for inspection."),
) -> None:
    """Rebuild a registered version from its lineage (commit, DVC data, params) and compare.

    Exit 0 only on an exact match (identical holdout predictions and metrics); exit 1 with what
    differs, or with why it cannot be rebuilt (dirty tree, data missing from the DVC remote).
    Never touches the live registry aliases or the working tree.
    """
    from pipelines.ops.reproduce import reproduce as fn
    from pipelines.ops.reproduce import require_exact, verdict_lines

    def go() -> Any:
        report = fn(_settings(), ref, keep=keep)
        for line in verdict_lines(report):
            log.info("%s", line)
        return require_exact(report)

    _run(go)


def status(as_json: bool = typer.Option(False, "--json", help="Machine-readable output.")) -> None:
    """Champion, challenger, last gate decision and where the latest outputs are."""
    from pipelines.model.status import status as fn

    as_json = as_json or STATE["json"]
    res = _run(lambda: fn(_settings()), emit=False)
    if as_json:
        print(json.dumps(res, indent=2, default=str))
    else:
        from pipelines.ops.cycle import status_lines

        print("\n".join(status_lines(res, detail=True)))
