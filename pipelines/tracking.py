"""MLflow set-up at run time (never at import): honour MLFLOW_TRACKING_URI, else a SQLite
store inside the project with artifacts beside it."""

from __future__ import annotations

import os
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from pipelines.config import Settings
from pipelines.errors import PipelineError, first_line
from pipelines.io import file_digest

if TYPE_CHECKING:
    from mlflow import MlflowClient


def default_tracking_uri(settings: Settings) -> str:
    return f"sqlite:///{settings.path('mlflow.db')}"


def tracking_uri(settings: Settings) -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or default_tracking_uri(settings)


OWNER_TAG = "pipelines.owner"   # "<host> <pid> <process start time>" of the process running the run
SAME_START_SECONDS = 0.01  # a process started this close to the recorded start time is the owner (a reused pid is not)


def owner_tag() -> dict[str, str]:
    """Who runs an MLflow run (or holds a lock): enough to tell later whether it is still alive."""
    import socket

    import psutil

    return {OWNER_TAG: f"{socket.gethostname()} {os.getpid()} {psutil.Process().create_time():.3f}"}


def owner_alive(owner: str | None) -> bool | None:
    """True/False for an owner on this host; None when it cannot be told (another host, no tag)."""
    import socket

    import psutil

    try:
        host, pid, started = (owner or "").split()
        pid_n, started_f = int(pid), float(started)
    except ValueError:
        return None
    if host != socket.gethostname():
        return None
    try:
        return abs(psutil.Process(pid_n).create_time() - started_f) < SAME_START_SECONDS  # a reused pid is another process
    except psutil.NoSuchProcess:
        return False


def reap_orphan_runs(client: MlflowClient, experiment_id: str) -> list[str]:
    """Mark FAILED the runs still RUNNING whose process is gone (SIGKILLed, its machine lost):
    otherwise MLflow shows them running forever."""
    import logging

    log = logging.getLogger(__name__)
    reaped = []
    for run in client.search_runs([experiment_id], filter_string="attributes.status = 'RUNNING'", max_results=500):
        owner = run.data.tags.get(OWNER_TAG)
        if owner_alive(owner) is False:
            client.set_tag(run.info.run_id, "pipelines.reaped", f"its process ({owner}) ended without closing it")
            client.set_terminated(run.info.run_id, status="FAILED")
            log.warning(
                "MLflow run %s (%s) was left running by a process that is gone: marked FAILED", run.info.run_id, run.info.run_name
            )
            reaped.append(run.info.run_id)
    return reaped


def unreachable(uri: str, exc: BaseException) -> str:
    """One line for a tracking server that cannot be reached: which server, and why."""
    import re

    text = str(exc)
    why = re.search(r"\[Errno -?\d+\] ([^\"')]+)", text) or re.search(r"(Read timed out|timed out|Connection aborted)", text)
    return f"cannot reach the MLflow tracking server at {uri}: {why.group(1).strip() if why else first_line(exc)}"


def probe_server(uri: str, timeout: float = 10.0) -> None:
    """For a tracking server (http/https), fail fast with one line when it is down, instead of
    after MLflow's minutes of retries; a file or SQLite store needs no probe."""
    if not uri.startswith(("http://", "https://")):
        return
    import requests

    try:
        resp = requests.get(uri.rstrip("/") + "/health", timeout=timeout)
    except requests.RequestException as exc:
        raise PipelineError(unreachable(uri, exc)) from exc
    if resp.status_code >= HTTPStatus.INTERNAL_SERVER_ERROR:
        raise PipelineError(f"the MLflow tracking server at {uri} is unhealthy: HTTP {resp.status_code} on /health")


def setup_mlflow(settings: Settings) -> MlflowClient:
    """Point MLflow at the configured store and make sure the experiment exists."""
    import mlflow

    uri = tracking_uri(settings)
    probe_server(uri)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(os.environ.get("MLFLOW_REGISTRY_URI") or uri)
    client = mlflow.MlflowClient()
    name = settings.params.project.experiment
    if client.get_experiment_by_name(name) is None:
        # With the embedded default, keep artifacts inside the project; a server decides its own.
        # (mlflow.set_tracking_uri exports MLFLOW_TRACKING_URI, so compare URIs, not the env.)
        location = settings.path("mlartifacts").as_uri() if uri == default_tracking_uri(settings) else None
        client.create_experiment(name, artifact_location=location)
    experiment = mlflow.set_experiment(name)
    reap_orphan_runs(client, experiment.experiment_id)
    return client


def dvc_experiment() -> str | None:
    """The name of the `dvc exp run` experiment this process runs in (DVC sets DVC_EXP_NAME for
    the stages it runs), or None for a plain `dvc repro`, a DAG task or the CLI. An experiment
    trains and is judged, but never registers a version or moves an alias."""
    return os.environ.get("DVC_EXP_NAME") or None


def tag_bool(value: object) -> bool | None:
    """A boolean MLflow tag ("true"/"false") as a real boolean for results and JSON (a bool is
    kept); None when the tag is absent or holds anything else."""
    if isinstance(value, bool):
        return value
    return {"true": True, "false": False}.get(str(value).strip().lower()) if value is not None else None


def tag_text(value: object) -> str:
    """A boolean as MLflow tags spell it: "true"/"false"."""
    return "true" if tag_bool(value) else "false"


def git_commit(settings: Settings) -> dict[str, Any]:
    """The code version: commit hash and whether the working tree had uncommitted changes."""
    from pipelines.tools import git

    def run(*args: str) -> str:
        try:
            out = git(list(args), settings.root, timeout=20)
        except PipelineError:  # no git, or it hung: the lineage says "unknown"
            return ""
        return out.stdout.strip() if out.returncode == 0 else ""

    commit = run("rev-parse", "HEAD") or "unknown"
    # dvc.lock and metrics/ are rewritten by `dvc repro` itself, mid-pipeline: not code changes.
    dirty = run("status", "--porcelain", "--untracked-files=no", "--", ".", ":!dvc.lock", ":!metrics")
    return {"git_commit": commit, "git_dirty": bool(dirty)}


def params_md5(settings: Settings) -> str:
    return file_digest(settings.path("params.yaml"), "md5")


def lock_sha256(settings: Settings) -> str:
    """The environment's version: a hash of the committed dependency lock."""
    lock = settings.path("requirements.lock")
    return file_digest(lock, "sha256") if lock.is_file() else "no-lock"


def library_versions() -> dict[str, Any]:
    from importlib.metadata import version

    libs = ["scikit-learn", "pandas", "numpy", "pyarrow", "mlflow", "dvc", "great_expectations", "evidently"]
    return {f"lib.{name}": version(name) for name in libs}
