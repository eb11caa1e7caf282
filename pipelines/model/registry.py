"""Model Registry lifecycle with aliases only (champion, challenger), never stages.

The champion's history is kept as a JSON list in the registered model's ``champion_history``
tag, which is what `rollback` walks back. Each version is tagged with its lineage and gate
decision, so the MLflow UI shows why it is or is not champion.
"""

from __future__ import annotations

import getpass
import json
import logging
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pipelines.config import Settings
from pipelines.errors import PipelineError
from pipelines.failpoint import failpoint
from pipelines.io import read_json, write_json
from pipelines.model.champion import artifact_sha256, current_alias
from pipelines.telemetry import publish
from pipelines.tracking import tag_bool, tag_text

log = logging.getLogger(__name__)

HISTORY_TAG = "champion_history"
LOCK_SUFFIX = ".promotion-lock"
LOCK_TIMEOUT_S = 300.0  # how long a promotion waits for another one to finish
LOCK_STALE_S = 1800.0  # a lock older than this was left by a crashed process and is broken


def mlflow_client(settings: Settings) -> Any:
    from pipelines.tracking import setup_mlflow

    return setup_mlflow(settings)


def champion_history(client: Any, name: str) -> list[str]:
    from mlflow.exceptions import MlflowException

    try:
        rm = client.get_registered_model(name)
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            return []  # no model registered yet: no history
        raise
    return json.loads(rm.tags.get(HISTORY_TAG, "[]"))


@contextmanager
def promotion_lock(client: Any, name: str, timeout_s: float = LOCK_TIMEOUT_S) -> Iterator[None]:
    """Only one promotion at a time, across processes and machines that share the registry.

    The lock is a registered model named ``<name>.promotion-lock``: creating a registered model
    is atomic in every MLflow backend (a unique name in its database), so exactly one of two
    racing promotions creates it; the other waits until it is deleted. A lock older than
    LOCK_STALE_S (its holder crashed) is broken, with a message.
    """
    from mlflow.exceptions import MlflowException

    from pipelines.tracking import OWNER_TAG, owner_alive, owner_tag

    lock = name + LOCK_SUFFIX
    owner = f"{getpass.getuser()}@{socket.gethostname()} pid {os.getpid()}"
    deadline = time.monotonic() + timeout_s
    waited = False
    while True:
        try:
            client.create_registered_model(
                lock,
                tags={"owner": owner, "acquired_at": f"{time.time():.3f}", **owner_tag()},
                description=f"Held while a promotion of {name} runs (pipelines/model/registry.py); deleted when it ends.",
            )
            break
        except MlflowException as exc:
            if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
        try:
            held = client.get_registered_model(lock)
        except MlflowException:
            continue  # released between our two calls: try again at once
        if "acquired_at" not in held.tags:
            # Read half-way through its release: the registry's row came back without its tags
            # (they are read in a second query). Not a lock to break: look again.
            time.sleep(0.1)
            continue
        age = time.time() - float(held.tags["acquired_at"])
        if owner_alive(held.tags.get(OWNER_TAG)) is False:
            # Its holder was killed on this machine (SIGKILL, OOM): nobody will release it.
            log.warning("breaking the promotion lock of %s: that process is gone", held.tags.get("owner"))
            _break_lock(client, lock)
            continue
        if age > LOCK_STALE_S:
            log.warning("breaking a stale promotion lock held by %s for %.0f s", held.tags.get("owner"), age)
            _break_lock(client, lock)
            continue
        if time.monotonic() > deadline:
            raise PipelineError(f"another promotion ({held.tags.get('owner')}) holds the registry lock {lock!r}; try again later")
        if not waited:
            log.info("waiting for another promotion to finish (%s)", held.tags.get("owner"))
            waited = True
        time.sleep(0.5)
    try:
        yield
    finally:
        client.delete_registered_model(lock)


def _break_lock(client: Any, lock: str) -> None:
    """Delete a dead holder's lock; another waiter may have broken it first."""
    from mlflow.exceptions import MlflowException

    try:
        client.delete_registered_model(lock)
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
            raise


def _set_champion(client: Any, name: str, version: str, reason: str) -> None:
    """Move `champion` to ``version`` and record it. Each write is safe to repeat, in an order
    that a crash between any two leaves repairable by running again (see _record_champion)."""
    history = champion_history(client, name)
    if history and history[-1] != version:
        client.set_model_version_tag(name, history[-1], "replaced_by", f"v{version} ({reason})")
    client.set_registered_model_alias(name, "champion", version)
    failpoint("promote:alias")  # the alias moved, the history and the version's tags not yet
    _record_champion(client, name, version, reason, repair_only=False)


def _record_champion(client: Any, name: str, version: str, reason: str, repair_only: bool = True) -> None:
    """The champion history ends with ``version`` and the version says since when and why.
    With ``repair_only`` (a re-run finding the alias already moved) the version's tags are
    written only if the killed promotion did not get to them."""
    history = champion_history(client, name)
    if not history or history[-1] != version:
        history.append(version)
        client.set_registered_model_tag(name, HISTORY_TAG, json.dumps(history))
    if not repair_only or client.get_model_version(name, version).tags.get("champion_reason") is None:
        client.set_model_version_tag(name, version, "champion_since", datetime.now(UTC).isoformat(timespec="seconds"))
        client.set_model_version_tag(name, version, "champion_reason", reason)


def require_justification(override_reason: str | None) -> None:
    """An override of a failed gate needs a written reason (the one place this is checked)."""
    if override_reason is not None and not override_reason.strip():
        raise PipelineError(
            "overriding the gate needs a written justification (`promote --override \"...\"`; "
            "the 'justification' param of the training DAG)"
        )


def gated_candidate(settings: Settings) -> tuple[dict[str, Any], dict[str, Any]]:
    """models/candidate.json and the gate's decision about it (they must belong together)."""
    candidate = read_json(settings.models_dir / "candidate.json")
    decision = read_json(settings.reports_dir / "gate" / "decision.json")
    if decision["candidate"]["run_id"] != candidate["run_id"]:
        raise PipelineError("the gate decision is for another candidate; run `dvc repro` (gate) first")
    return candidate, decision


def registered_version(client: Any, name: str, run_id: str) -> str | None:
    """The version registered from this training run, if any (a run is registered at most once)."""
    found = client.search_model_versions(f"name='{name}' and run_id='{run_id}'")
    return str(found[0].version) if found else None


def champion_version(settings: Settings) -> str | None:
    now = current_alias(settings, "champion")
    return str(now.version) if now else None


def _lineage_tags(candidate: dict[str, Any], decision: dict[str, Any]) -> dict[str, str]:
    return {
        "run_id": candidate["run_id"],
        "git_commit": candidate["git_commit"],
        "git_dirty": tag_text(candidate["git_dirty"]),
        "data_md5": candidate["data_md5"],
        "holdout_md5": candidate["holdout_md5"],
        "params_md5": candidate["params_md5"],
        "lock_sha256": candidate.get("lock_sha256", ""),
        "train_days": candidate["train_days"],
        "holdout_roc_auc": str(decision["candidate"]["roc_auc"]),
        "drift_profile_sha256": candidate.get("drift_profile_sha256", ""),
        "trained_through": candidate["holdout_days"].split("..")[-1],
        "window_follows_shift": candidate.get("window_follows_shift", ""),
        "train_day_count": candidate.get("train_day_count", ""),
    }


def _register(settings: Settings, client: Any, name: str, candidate: dict[str, Any], decision: dict[str, Any]) -> str:
    """The candidate's registered version (registered now unless it already is), with its
    lineage tags and the artifact hash the champion store verifies."""
    import mlflow

    version = registered_version(client, name, candidate["run_id"])
    if version is None:
        version = str(mlflow.register_model(candidate["model_uri"], name, tags=_lineage_tags(candidate, decision)).version)
    if tag_bool(candidate["git_dirty"]):
        log.warning(
            "v%s was trained from a dirty working tree (uncommitted changes on %s); `python -m pipelines reproduce` "
            "will refuse it. Commit, then retrain, for a reproducible model.", version, candidate["git_commit"][:12],
        )
    if not client.get_model_version(name, version).tags.get("model_sha256"):
        local = mlflow.artifacts.download_artifacts(artifact_uri=f"models:/{name}/{version}")
        client.set_model_version_tag(name, version, "model_sha256", artifact_sha256(Path(local)))
    return version


def _record_verdict(
    settings: Settings, client: Any, name: str, version: str, candidate: dict[str, Any], decision: dict[str, Any]
) -> None:
    """The decision record (naming the version), the model card and the gate tags on the version."""
    from pipelines.model.card import render

    # The logged record names the version it decided about (the local decision.json is a DVC
    # output of `gate` and stays as that stage wrote it).
    client.log_dict(
        candidate["run_id"], {**decision, "candidate": {**decision["candidate"], "version": version}}, "gate/decision.json"
    )
    card = render(settings, candidate, decision, version)
    client.update_model_version(name, version, description=card)
    client.log_text(candidate["run_id"], card, "model_card.md")
    client.set_model_version_tag(name, version, "gate_passed", str(decision["passed"]).lower())
    client.set_model_version_tag(name, version, "gate_reasons", "; ".join(decision["reasons"]) or "all checks passed")
    client.set_model_version_tag(
        name, version, "gate_judged_against", f"v{decision['champion']['version']}" if decision.get("champion") else "none"
    )


def register_candidate(
    settings: Settings, client: Any, candidate: dict[str, Any], decision: dict[str, Any], now_version: str | None,
    override_reason: str | None = None,
) -> dict[str, Any]:
    """Register the gated candidate; champion if the gate passed (or was overridden with a
    reason), else challenger. Call it under :func:`promotion_lock`, with a decision judged
    against ``now_version``, the champion serving now (pipelines/ops/promote.py sees to both).
    Safe to re-run: a candidate already registered is not registered twice."""
    require_justification(override_reason)
    name = settings.params.project.model_name
    version = _register(settings, client, name, candidate, decision)
    failpoint("promote:registered")  # registered (and tagged), no alias moved yet
    _record_verdict(settings, client, name, version, candidate, decision)
    if version == now_version:
        # The gate ran again on the model that is already champion (e.g. after a change to the
        # gate's params), or a promotion was killed after moving the alias: the record is
        # updated (and the history repaired), the aliases stay where they are.
        if decision["passed"] or override_reason:
            _record_champion(
                client, name, version, "passed the gate" if decision["passed"] else f"gate overridden: {override_reason}"
            )
        role = "champion (already; gate re-run " + ("passed)" if decision["passed"] else "failed: consider `rollback`)")
    elif decision["passed"]:
        _set_champion(client, name, version, "passed the gate")
        role = "champion"
    elif override_reason:
        who = getpass.getuser()
        client.set_model_version_tag(name, version, "gate_override", f"by {who}: {override_reason.strip()}")
        _set_champion(client, name, version, f"gate overridden by {who}: {override_reason.strip()}")
        role = "champion (gate overridden)"
    else:
        client.set_registered_model_alias(name, "challenger", version)
        role = "challenger"
    out = {
        "model_name": name,
        "version": version,
        "role": role,
        "passed": decision["passed"],
        "judged_against": (decision.get("champion") or {}).get("version"),
        "reasons": decision["reasons"],
    }
    write_json(out, settings.reports_dir / "gate" / "registration.json")
    if role.startswith("champion"):
        publish_champion(settings, version)
    return out


def publish_champion(settings: Settings, version: str) -> None:
    """The champion's version as a metric (pipelines/telemetry.py): its history in Prometheus is
    the alias's history."""
    if version.isdigit():
        publish(settings, "promote", [("pipelines_champion_version", {}, int(version))])


def promote_version(settings: Settings, version: str, reason: str, by: str | None = None) -> dict[str, Any]:
    """Make ``version`` champion by hand (or, with ``by``, by another recorded decision such as
    the online rollout's); a written reason is required and recorded."""
    if not reason or not reason.strip():
        raise PipelineError("a manual promotion needs a written reason (--reason)")
    client = mlflow_client(settings)
    name = settings.params.project.model_name
    from mlflow.exceptions import MlflowException

    try:
        client.get_model_version(name, version)
    except MlflowException as exc:
        raise PipelineError(f"model {name} has no version {version}") from exc
    with promotion_lock(client, name):
        _set_champion(client, name, str(version), f"{by or 'manual by ' + getpass.getuser()}: {reason.strip()}")
    publish_champion(settings, str(version))
    return {"model_name": name, "champion": str(version), "reason": reason.strip()}


def challenger(settings: Settings, version: str | None, reason: str) -> dict[str, Any]:
    """Land ``version`` under the ``challenger`` alias (the online server rolls it out: shadow,
    canary, then champion on live outcomes), or with ``version`` None end the rollout by
    removing the alias. A written reason is required and recorded; the champion never moves."""
    if not reason or not reason.strip():
        raise PipelineError("landing or clearing a challenger needs a written reason (--reason)")
    client = mlflow_client(settings)
    name = settings.params.project.model_name
    from mlflow.exceptions import MlflowException

    who = getpass.getuser()
    with promotion_lock(client, name):
        champion = champion_version(settings)
        if version is None:
            try:
                was = client.get_model_version_by_alias(name, "challenger").version
            except MlflowException as exc:
                raise PipelineError(f"model {name} has no challenger to clear") from exc
            client.delete_registered_model_alias(name, "challenger")
            client.set_model_version_tag(name, was, "challenger_cleared", f"by {who}: {reason.strip()}")
            return {"model_name": name, "challenger": None, "cleared": str(was), "champion": champion, "reason": reason.strip()}
        try:
            mv = client.get_model_version(name, version)
        except MlflowException as exc:
            raise PipelineError(f"model {name} has no version {version}") from exc
        version = str(mv.version)
        if version == champion:
            raise PipelineError(f"v{version} is the champion: a challenger must be another version")
        try:
            current = str(client.get_model_version_by_alias(name, "challenger").version)
        except MlflowException:
            current = None
        if current == version:  # the server would not start a new rollout for the same version
            raise PipelineError(f"v{version} is the challenger already: `challenger --clear` first to restart its rollout")
        client.set_model_version_tag(name, version, "challenger_reason", f"by {who}: {reason.strip()}")
        client.set_registered_model_alias(name, "challenger", version)
    out = {"model_name": name, "challenger": version, "replaced": current, "champion": champion, "reason": reason.strip()}
    if mv.tags.get("rejected"):
        out["note"] = f"v{version} was rejected by an earlier rollout: {mv.tags['rejected']}"
    return out


def rollback(settings: Settings, reason: str) -> dict[str, Any]:
    """Move champion back to the previous champion and record who did it and why."""
    if not reason or not reason.strip():
        raise PipelineError("a rollback needs a written reason (--reason)")
    client = mlflow_client(settings)
    name = settings.params.project.model_name
    with promotion_lock(client, name):
        history = champion_history(client, name)
        if len(history) < 2:  # noqa: PLR2004 the current champion and the one before it
            raise PipelineError(f"no previous champion to roll back to (history: {history or 'empty'})")
        current, previous = history[-1], history[-2]
        who = getpass.getuser()
        client.set_registered_model_alias(name, "champion", previous)
        client.set_registered_model_tag(name, HISTORY_TAG, json.dumps(history[:-1]))
        client.set_model_version_tag(name, current, "rolled_back", f"by {who}: {reason.strip()}")
        client.set_model_version_tag(name, previous, "champion_reason", f"rollback from v{current} by {who}: {reason.strip()}")
    publish_champion(settings, previous)
    return {"model_name": name, "champion": previous, "rolled_back": current, "by": who, "reason": reason.strip()}
