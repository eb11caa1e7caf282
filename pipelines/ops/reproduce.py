"""Rebuild a registered model version from its lineage and prove it is the same model.

A version records what a rebuild needs (pipelines/model/train.py, pipelines/model/registry.py): the git
commit and whether the tree was dirty, the DVC (md5) hashes of its training set and holdout,
the params.yaml hash, the dependency lock hash and its training window. `push`
sends the data to the DVC remote after registration, so a fresh clone can fetch it.

`reproduce` then, without touching the live registry or the working tree:
1. checks out the recorded commit in a temporary git worktree;
2. fetches the recorded training set and holdout from the DVC remote *by hash* (`dvc pull`
   of two throw-away .dvc files; dvc.lock is not needed) and verifies their md5;
3. re-runs the training stages (validate_training, train) of *that* commit's dvc.yaml with
   that commit's params.yaml, into a scratch MLflow store inside the worktree;
4. compares with the registered version: holdout predictions byte for byte, training AUC,
   the frozen drift profile. Exit 0 only on an exact match; otherwise a report of what differs
   and the likely why (another lock, a dirty tree, different params).
"""

from __future__ import annotations

import logging
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from pipelines.config import Settings
from pipelines.errors import PipelineError
from pipelines.io import file_digest, file_md5, read_json, write_json
from pipelines.tools import dvc, git, reason, run, tool_env

log = logging.getLogger(__name__)

TRAINING_FILES = {"train": "data/training/train.parquet", "holdout": "data/training/holdout.parquet"}
TAG_OF = {"train": "data_md5", "holdout": "holdout_md5"}


def dvc_remote(root: Path) -> tuple[str, str]:
    """(name, absolute url) of the project's default DVC remote."""
    from dvc.repo import Repo

    repo = Repo(str(root))
    try:
        name = repo.config["core"].get("remote")
        if not name:
            raise PipelineError("no default DVC remote: set one with `dvc remote add -d <name> <url>`")
        return name, str(repo.config["remote"][name]["url"])
    finally:
        repo.close()


def push(settings: Settings, version: str | None = None) -> dict[str, Any]:
    """`dvc push` the pipeline's cached outputs (training set, holdout, reference sample) to
    the default remote, then tag the registered version (default: the last one `promote`
    registered) with the remote it can be fetched from."""
    if version is None:
        registration = settings.reports_dir / "gate" / "registration.json"
        version = read_json(registration)["version"] if registration.is_file() else None
    proc = dvc(["push"], settings.root)
    if proc.returncode != 0:
        raise PipelineError(f"`dvc push` failed: {reason(proc)}")
    name, url = dvc_remote(settings.root)
    if version:
        from pipelines.tracking import setup_mlflow

        client = setup_mlflow(settings)
        client.set_model_version_tag(settings.params.project.model_name, version, "dvc_remote", f"{name} ({url})")
    summary = (proc.stdout.strip().splitlines() or ["nothing to push"])[-1]
    return {"remote": name, "url": url, "pushed": summary, "version": version}


def _resolve(settings: Settings, ref: str) -> Any:
    from mlflow.exceptions import MlflowException

    from pipelines.tracking import setup_mlflow

    client = setup_mlflow(settings)
    name = settings.params.project.model_name
    try:
        if ref.lstrip("v").isdigit():
            return client.get_model_version(name, ref.lstrip("v"))
        return client.get_model_version_by_alias(name, ref)
    except MlflowException as exc:
        raise PipelineError(f"model {name} has no version or alias {ref!r}") from exc


def _fetch_by_hash(worktree: Path, remote_url: str, remote_name: str, wanted: dict[str, str]) -> dict[str, Path]:
    """Pull files from the DVC remote by md5 (throw-away .dvc files); name what is missing."""
    stage_dir = worktree / ".reproduce"
    stage_dir.mkdir()
    targets = []
    for key, md5 in wanted.items():
        dvcfile = stage_dir / f"{key}.parquet.dvc"
        dvcfile.write_text(f"outs:\n- md5: {md5}\n  hash: md5\n  path: {key}.parquet\n")  # hash: md5 = DVC 3 layout
        targets.append(str(dvcfile.relative_to(worktree)))
    if "://" not in remote_url:
        # A filesystem remote: check the stored objects first. (`dvc pull` deletes an object
        # whose content does not match its hash, which would turn "corrupted" into "missing".)
        problems = []
        for key, md5 in wanted.items():
            stored = Path(remote_url) / "files" / "md5" / md5[:2] / md5[2:]
            if not stored.is_file():
                problems.append(f"{TRAINING_FILES[key]} (md5 {md5}) is missing from DVC remote {remote_name} ({stored})")
            elif (actual := file_md5(stored)) != md5:
                problems.append(
                    f"{TRAINING_FILES[key]} in DVC remote {remote_name} is corrupted: {stored} has md5 {actual}, registered {md5}"
                )
        if problems:
            raise PipelineError("cannot reproduce: " + "; ".join(problems))
    cfg = dvc(["remote", "modify", "--local", remote_name, "url", remote_url], worktree)
    if cfg.returncode != 0:
        raise PipelineError(f"cannot point the worktree at DVC remote {remote_name}: {reason(cfg)}")
    pull = dvc(["pull", *targets], worktree)
    out: dict[str, Path] = {}
    problems = []
    for key, md5 in wanted.items():
        path = stage_dir / f"{key}.parquet"
        if not path.is_file():
            problems.append(f"{TRAINING_FILES[key]} (md5 {md5}) is missing from DVC remote {remote_name} ({remote_url})")
            continue
        actual = file_md5(path)
        if actual != md5:
            problems.append(f"{TRAINING_FILES[key]} in DVC remote {remote_name} is corrupted: md5 {actual}, registered {md5}")
            continue
        out[key] = path
    if problems:
        raise PipelineError("cannot reproduce: " + "; ".join(problems))
    if pull.returncode != 0:
        raise PipelineError(f"`dvc pull` failed: {reason(pull)}")
    return out


def _predict(model_dir: Path, holdout_path: Path, settings: Settings) -> np.ndarray:
    import mlflow

    from pipelines.io import read_frame
    from pipelines.model.features import score_frame

    model = mlflow.sklearn.load_model(str(model_dir))
    return score_frame(model, read_frame(holdout_path), settings.params.data, settings.params.score.chunk_rows)


def _reproducible(settings: Settings, mv: Any) -> str:
    """The version's commit, or a one-line reason why it cannot be rebuilt exactly."""
    name, version, tags = settings.params.project.model_name, str(mv.version), mv.tags
    commit = tags.get("git_commit", "")
    missing = [t for t in ("git_commit", "data_md5", "holdout_md5", "params_md5") if not tags.get(t)]
    if missing:
        raise PipelineError(f"{name} v{version} lacks lineage tags {missing}: it cannot be reproduced")
    if tags.get("git_dirty") == "true":
        raise PipelineError(
            f"{name} v{version} was trained from a dirty working tree (commit {commit[:12]} plus uncommitted changes): "
            "it cannot be reproduced exactly"
        )
    if git(["cat-file", "-e", f"{commit}^{{commit}}"], settings.root).returncode != 0:
        raise PipelineError(f"commit {commit[:12]} of {name} v{version} is not in this repository (fetch it first)")
    return commit


def _environment_checks(
    settings: Settings, worktree: Path, tags: dict[str, str], commit: str
) -> tuple[dict[str, Any], list[str], str | None]:
    """params.yaml and the dependency lock at the commit against what the version recorded."""
    from pipelines.tracking import lock_sha256

    checks: dict[str, Any] = {}
    differences: list[str] = []
    actual_params = file_md5(worktree / "params.yaml")
    checks["params_md5"] = {"registered": tags["params_md5"], "at_commit": actual_params}
    if actual_params != tags["params_md5"]:
        differences.append(
            f"params.yaml at {commit[:12]} has md5 {actual_params}, the version was trained with {tags['params_md5']}"
        )
    lock = worktree / "requirements.lock"
    installed_lock = lock_sha256(settings)
    checks["lock_sha256"] = {
        "registered": tags.get("lock_sha256"),
        "at_commit": file_digest(lock, "sha256") if lock.is_file() and lock.stat().st_size else None,
        "this_environment": installed_lock,
    }
    env_note = None
    if tags.get("lock_sha256") and tags["lock_sha256"] != installed_lock:
        env_note = "this environment is installed from another requirements.lock than the one the version was trained with"
    return checks, differences, env_note


def _rebuild(worktree: Path, tmp: Path, mv: Any, remote_name: str, remote_url: str) -> dict[str, Any]:
    """Fetch the recorded data by hash and re-run that commit's training stages in ``worktree``."""
    import mlflow

    log.info("fetching the training data from DVC remote %s by hash", remote_name)
    files = _fetch_by_hash(worktree, remote_url, remote_name, {"train": mv.tags["data_md5"], "holdout": mv.tags["holdout_md5"]})
    for key, rel in TRAINING_FILES.items():
        dest = worktree / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(files[key], dest)
    window_local = mlflow.artifacts.download_artifacts(run_id=mv.run_id, artifact_path="training_window.json", dst_path=str(tmp))
    shutil.copyfile(window_local, worktree / "data/training/window.json")

    log.info("re-running the training stages (validate_training, train) of that commit, into a scratch MLflow store")
    # The worktree is the project root (never an inherited PIPELINES_ROOT), and no MLFLOW_*
    # variables: the rebuild logs to the worktree's own SQLite store, never the live one.
    stage_env = {k: v for k, v in tool_env(worktree, PYTHONPATH=str(worktree)).items() if not k.startswith("MLFLOW_")}
    for stage_cmd in (["validate", "--training"], ["train"]):
        proc = run([sys.executable, "-m", "pipelines", *stage_cmd], worktree, stage_env)
        if proc.returncode != 0:
            raise PipelineError(f"rebuild step `{' '.join(stage_cmd)}` failed: {reason(proc)}")
    return read_json(worktree / "models" / "candidate.json")


def _compare(
    settings: Settings,
    worktree: Path,
    tmp: Path,
    mv: Any,
    rebuilt: dict[str, Any],
    checks: dict[str, Any],
    differences: list[str],
) -> None:
    """Holdout predictions byte for byte, training AUC and the drift profile: registered vs rebuilt."""
    import mlflow

    from pipelines.tracking import tracking_uri

    name, version, tags = settings.params.project.model_name, str(mv.version), mv.tags
    log.info("comparing the rebuilt model with the registered one on the recorded holdout")
    registered_dir = Path(
        mlflow.artifacts.download_artifacts(artifact_uri=f"models:/{name}/{version}", dst_path=str(tmp / "registered"))
    )
    live_uri = tracking_uri(settings)
    mlflow.set_tracking_uri(f"sqlite:///{worktree / 'mlflow.db'}")
    try:
        rebuilt_dir = Path(mlflow.artifacts.download_artifacts(artifact_uri=rebuilt["model_uri"], dst_path=str(tmp / "rebuilt")))
    finally:
        mlflow.set_tracking_uri(live_uri)
    holdout = worktree / TRAINING_FILES["holdout"]
    p_reg = _predict(registered_dir, holdout, settings)
    p_new = _predict(rebuilt_dir, holdout, settings)
    identical = p_reg.shape == p_new.shape and p_reg.tobytes() == p_new.tobytes()
    checks["holdout_predictions"] = {
        "rows": len(p_reg),
        "identical": identical,
        "max_abs_diff": float(np.max(np.abs(p_reg - p_new))) if p_reg.shape == p_new.shape and len(p_reg) else None,
    }
    if not identical:
        differences.append(f"holdout predictions differ (max abs diff {checks['holdout_predictions']['max_abs_diff']})")
    reg_auc = mlflow.MlflowClient().get_run(mv.run_id).data.metrics.get("train_roc_auc")
    checks["train_roc_auc"] = {"registered": reg_auc, "rebuilt": rebuilt.get("train_roc_auc")}
    if reg_auc is None or round(reg_auc, 6) != rebuilt.get("train_roc_auc"):
        differences.append(f"training ROC AUC {rebuilt.get('train_roc_auc')} vs registered {reg_auc}")
    checks["drift_profile_sha256"] = {
        "registered": tags.get("drift_profile_sha256"),
        "rebuilt": rebuilt.get("drift_profile_sha256"),
    }
    if tags.get("drift_profile_sha256") and tags["drift_profile_sha256"] != rebuilt.get("drift_profile_sha256"):
        differences.append("the frozen drift profile differs")


def reproduce(settings: Settings, ref: str, keep: bool = False) -> dict[str, Any]:
    """Rebuild version/alias ``ref`` in a temporary worktree and compare it with the registry."""
    name = settings.params.project.model_name
    mv = _resolve(settings, ref)
    version = str(mv.version)
    commit = _reproducible(settings, mv)
    remote_name, remote_url = dvc_remote(settings.root)

    tmp = Path(tempfile.mkdtemp(prefix=f"reproduce-v{version}-"))
    worktree = tmp / "src"
    log.info("checking out commit %s of v%s in a temporary worktree %s", commit[:12], version, worktree)
    add = git(["worktree", "add", "--detach", str(worktree), commit], settings.root, timeout=600)
    if add.returncode != 0:
        shutil.rmtree(tmp, ignore_errors=True)
        raise PipelineError(f"git worktree add failed: {reason(add)}")
    try:
        checks, differences, env_note = _environment_checks(settings, worktree, mv.tags, commit)
        rebuilt = _rebuild(worktree, tmp, mv, remote_name, remote_url)
        _compare(settings, worktree, tmp, mv, rebuilt, checks, differences)
        if differences and env_note:
            differences.append(f"likely why: {env_note}")
        report = {
            "model_name": name,
            "version": version,
            "exact": not differences,
            "commit": commit,
            "remote": f"{remote_name} ({remote_url})",
            "data": {TRAINING_FILES[k]: mv.tags[TAG_OF[k]] for k in TRAINING_FILES},
            "checks": checks,
            "differences": differences,
            "environment_note": env_note,
        }
        write_json(report, settings.reports_dir / "reproduce" / f"{name}-v{version}.json")
        return report
    finally:
        if keep:
            log.info("kept the worktree at %s (remove it with `git worktree remove --force %s`)", worktree, worktree)
        else:
            git(["worktree", "remove", "--force", str(worktree)], settings.root, timeout=600)
            shutil.rmtree(tmp, ignore_errors=True)


def verdict_lines(report: dict[str, Any]) -> list[str]:
    """A reproduce report for people: the verdict with the holdout comparison, then one line
    per difference."""
    version, holdout = report["version"], report["checks"]["holdout_predictions"]
    head = (
        f"reproduce v{version}: {'EXACT MATCH' if report['exact'] else 'DIFFERENT'} "
        f"({holdout['rows']} holdout predictions {'identical' if holdout['identical'] else 'differ'})"
    )
    return [head, *(f"  - {line}" for line in report["differences"])]


def require_exact(report: dict[str, Any]) -> dict[str, Any]:
    """The report of an exact rebuild; anything else is a failure naming what differs."""
    if not report["exact"]:
        raise PipelineError(f"v{report['version']} could not be reproduced exactly: {'; '.join(report['differences'])}")
    return report
