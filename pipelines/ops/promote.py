"""Promotion as the operations layer runs it: under the registry's lock, judged against the
champion that is serving *now*, then the version's training data pushed to the DVC remote.

The registry (pipelines/model/registry.py) knows how to register and move aliases; the gate
(pipelines/model/gate.py) knows how to judge. Putting them together, and running the gate
again when another promotion moved the champion after this candidate was judged, is
orchestration, so it lives here.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from pipelines.config import Settings
from pipelines.errors import PipelineError
from pipelines.failpoint import failpoint
from pipelines.io import read_json, write_json
from pipelines.model import registry
from pipelines.telemetry import step_succeeded

log = logging.getLogger(__name__)


def promote(settings: Settings, override_reason: str | None = None) -> dict[str, Any]:
    """Register the gated candidate (the `promote` stage): champion if the gate passed, else
    challenger; ``override_reason`` promotes a candidate that failed, with the reason recorded.
    If the champion moved after the gate ran, the gate runs again against the new champion
    before anything moves. Safe to re-run."""
    from pipelines.model.gate import format_decision, gate
    from pipelines.tracking import dvc_experiment

    registry.require_justification(override_reason)
    experiment = dvc_experiment()
    if experiment is not None:
        if override_reason is not None:
            raise PipelineError(
                f"refusing to override the gate inside the DVC experiment {experiment!r}: an experiment never "
                "moves production; `dvc exp apply` it, commit, then promote through `dvc repro` or the training DAG"
            )
        return record_experiment(settings, experiment)
    client = registry.mlflow_client(settings)
    name = settings.params.project.model_name
    with registry.promotion_lock(client, name):
        failpoint("promote:locked")  # the lock is held, nothing registered yet
        candidate, decision = registry.gated_candidate(settings)
        judged = (decision.get("champion") or {}).get("version")
        now = registry.champion_version(settings)
        # (a promotion of this very candidate killed after moving the alias: nothing to re-judge)
        if now != judged and now != registry.registered_version(client, name, candidate["run_id"]):
            log.info("champion moved from %s to v%s after the gate ran; re-running the gate against it", judged or "none", now)
            decision = gate(settings)
            log.info("%s", format_decision(decision))
        out = registry.register_candidate(settings, client, candidate, decision, now, override_reason)
    step_succeeded(settings, "promote")
    notify_server()
    return out



def server_url(default: str = "") -> str:
    """$PIPELINES_SERVER_URL (else ``default``), checked to be http(s): urlopen would also open
    file: and ftp: URLs, and this one comes from the environment."""
    import urllib.parse

    url = os.environ.get("PIPELINES_SERVER_URL", "").rstrip("/") or default
    if url and urllib.parse.urlsplit(url).scheme not in ("http", "https"):
        raise PipelineError(f"PIPELINES_SERVER_URL must be an http:// or https:// URL, got {url!r}")
    return url


def notify_server(timeout_s: float = 60.0) -> dict[str, Any] | None:
    """Ask the online server to check the registry's aliases now (POST /reload), when one is
    configured: $PIPELINES_SERVER_URL (e.g. http://127.0.0.1:8000) and the bearer token in
    $PIPELINES_RELOAD_TOKEN. Without it, or if the call fails, the server still sees the move at
    its next poll (serve.poll_seconds): the alias is the truth, the call only makes it immediate."""
    try:
        url = server_url()
    except PipelineError as exc:
        log.warning("not telling any server to reload: %s", exc)
        return None
    if not url:
        return None
    from pipelines.serving.client import ServerClient

    try:
        out = ServerClient(url, timeout_s=timeout_s).reload()
    except PipelineError as exc:
        log.warning("could not tell the server at %s to reload (it will see the move at its next poll): %s", url, exc)
        return None
    log.info("server at %s now serves champion v%s", url, (out.get("champion") or {}).get("version"))
    return out


def record_experiment(settings: Settings, experiment: str) -> dict[str, Any]:
    """The `promote` stage under `dvc exp run`: the gate has judged the candidate against the
    current champion (metrics/gate.json, shown by `dvc exp show`); record the verdict on the
    candidate's MLflow run, tagged with the experiment's name, and register nothing."""
    candidate, decision = registry.gated_candidate(settings)
    client = registry.mlflow_client(settings)
    for key, value in {
        "dvc_experiment": experiment,
        "experiment_gate_verdict": decision["verdict"],
        "experiment_registered": "false",
    }.items():
        client.set_tag(candidate["run_id"], key, value)
    out = {
        "experiment": experiment,
        "registered": False,
        "version": None,
        "passed": bool(decision["passed"]),
        "verdict": decision["verdict"],
        "judged_against": (decision.get("champion") or {}).get("version"),
        "run_id": candidate["run_id"],
    }
    write_json(out, settings.reports_dir / "gate" / "registration.json")
    log.info(
        "DVC experiment %s: gate %s (%s); nothing registered, no alias moved. To ship it: "
        "`dvc exp apply %s`, commit, then `dvc repro` or the training DAG",
        experiment, "PASSED" if decision["passed"] else "FAILED", decision["verdict"], experiment,
    )
    return out


def promote_and_push(settings: Settings, override_reason: str | None = None) -> dict[str, Any]:
    """What a training run ends with (the whole cycle and the training DAG): the `promote`
    stage through `dvc repro` (or, to override a failed gate, :func:`promote` directly, since
    DVC would skip an up-to-date stage), then the version's training data to the DVC remote so
    `reproduce` can fetch it anywhere."""
    from pipelines.ops.reproduce import push
    from pipelines.ops.stages import dvc_stage

    registry.require_justification(override_reason)
    if override_reason is not None:
        out = promote(settings, override_reason)
    else:
        dvc_stage(settings, "promote")
        out = read_json(settings.reports_dir / "gate" / "registration.json")
    if out.get("version") is None:  # a DVC experiment: nothing was registered, nothing to push
        return {**out, "pushed": None}
    pushed = push(settings, out["version"])
    log.info("dvc push: training data of v%s in remote %s (%s)", pushed["version"], pushed["remote"], pushed["pushed"])
    return {**out, "pushed": pushed}
