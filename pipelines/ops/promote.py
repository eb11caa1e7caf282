"""Promotion as the operations layer runs it: under the registry's lock, judged against the
champion that is serving *now*, then the version's training data pushed to the DVC remote.

The registry (pipelines/model/registry.py) knows how to register and move aliases; the gate
(pipelines/model/evaluate.py) knows how to judge. Putting them together, and running the gate
again when another promotion moved the champion after this candidate was judged, is
orchestration, so it lives here.
"""

from __future__ import annotations

import json
import logging
import os
import urllib.error
import urllib.request
from typing import Any

from pipelines.config import Settings
from pipelines.io import read_json
from pipelines.model import registry

log = logging.getLogger(__name__)


def promote(settings: Settings, override_reason: str | None = None) -> dict[str, Any]:
    """Register the gated candidate (the `promote` stage): champion if the gate passed, else
    challenger; ``override_reason`` promotes a candidate that failed, with the reason recorded.
    If the champion moved after the gate ran, the gate runs again against the new champion
    before anything moves. Safe to re-run."""
    from pipelines.model.evaluate import evaluate, format_decision

    registry.require_justification(override_reason)
    client = registry.mlflow_client(settings)
    with registry.promotion_lock(client, settings.p.project.model_name):
        candidate, decision = registry.gated_candidate(settings)
        judged = (decision.get("champion") or {}).get("version")
        now = registry.champion_version(settings)
        if now != judged:
            log.info("champion moved from %s to v%s after the gate ran; re-running the gate against it", judged or "none", now)
            decision = evaluate(settings)
            log.info("%s", format_decision(decision))
        out = registry.register_candidate(settings, client, candidate, decision, now, override_reason)
    notify_server()
    return out


def notify_server(timeout_s: float = 60.0) -> dict[str, Any] | None:
    """Ask the online server to check the registry's aliases now (POST /reload), when one is
    configured: $PIPELINES_SERVER_URL (e.g. http://127.0.0.1:8000) and the bearer token in
    $PIPELINES_RELOAD_TOKEN. Without it, or if the call fails, the server still sees the move at
    its next poll (serve.poll_seconds): the alias is the truth, the call only makes it immediate."""
    url = os.environ.get("PIPELINES_SERVER_URL", "").rstrip("/")
    if not url:
        return None
    req = urllib.request.Request(
        f"{url}/reload", method="POST", headers={"Authorization": f"Bearer {os.environ.get('PIPELINES_RELOAD_TOKEN', '')}"}
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout_s) as resp:
            out = json.loads(resp.read() or b"{}")
    except (urllib.error.URLError, OSError, ValueError) as exc:
        log.warning("could not tell the server at %s to reload (it will see the move at its next poll): %s", url, exc)
        return None
    log.info("server at %s now serves champion v%s", url, (out.get("champion") or {}).get("version"))
    return out


def promote_and_push(settings: Settings, override_reason: str | None = None) -> dict[str, Any]:
    """What a training run ends with (the whole cycle and the training DAG): the `promote`
    stage through `dvc repro` (or, to override a failed gate, :func:`promote` directly, since
    DVC would skip an up-to-date stage), then the version's training data to the DVC remote so
    `reproduce` can fetch it anywhere."""
    from pipelines.ops.reproduce import push_training_data
    from pipelines.ops.stages import dvc_stage

    registry.require_justification(override_reason)
    if override_reason is not None:
        out = promote(settings, override_reason)
    else:
        dvc_stage(settings, "promote")
        out = read_json(settings.reports_dir / "gate" / "registration.json")
    pushed = push_training_data(settings, out["version"])
    log.info("dvc push: training data of v%s in remote %s (%s)", pushed["version"], pushed["remote"], pushed["pushed"])
    return {**out, "pushed": pushed}
