"""Where a replay runs: a project of its own, and the process pointed at it.

A replay (pipelines/ops/replay.py) never touches the user's data/ or registry: it runs in
``<out>/project``, a copy of the code with params.yaml set to the story's settings, its own git
repository (the lineage commit), DVC state, data/ and SQLite MLflow store. :func:`plan` picks the
story, its calendar and the output folder; :func:`logged` points the steps at the project and
sends their progress to ``<out>/replay.log``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from pipelines.errors import PipelineError
from pipelines.ops.stories import Story
from pipelines.ops.stories import story as get_story

# What a replay project needs from the code's project: the package, the pipeline and the
# interpreter launcher its stages run (scripts/python), the suites.
PROJECT_FILES = (
    "pipelines", "scripts", "expectations", "dvc.yaml", "params.yaml", ".dvc", ".dvcignore", ".gitignore", "requirements.lock",
    "deploy/prometheus/rules",  # the alert rules the replay applies to each day's metrics
)
# What Airflow needs on top (prepare_airflow): the DAGs.
AIRFLOW_FILES = ("dags",)


def make_project(source: Path, dest: Path, params: dict[str, Any], extra: tuple[str, ...] = ()) -> Path:
    """A fresh project at ``dest``: the code of ``source`` (and the ``extra`` files or folders),
    params.yaml with ``params`` ("section.key": value) applied, its own git repository (the
    lineage commit) and DVC state."""
    from pipelines.tools import check, git

    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    ignore = shutil.ignore_patterns("__pycache__", "cache", "tmp", "*.pyc")
    for name in (*PROJECT_FILES, *extra):
        src = source / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=ignore)
        elif src.is_file():
            shutil.copy2(src, dest / name)
    (dest / "metrics").mkdir(exist_ok=True)
    raw = yaml.safe_load((dest / "params.yaml").read_text())
    for key, value in params.items():
        section, _, name = key.partition(".")
        if section not in raw or name not in raw[section]:
            raise PipelineError(f"story setting {key} is not in params.yaml")
        raw[section][name] = value
    (dest / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    ident = ["-c", "user.name=replay", "-c", "user.email=replay@localhost"]
    check(git(["init", "-q"], dest), "git init")
    check(git([*ident, "add", "-A"], dest), "git add")
    check(git([*ident, "commit", "-qm", "replay project"], dest), "git commit")
    return dest


@contextlib.contextmanager
def project_env(root: Path) -> Iterator[None]:
    """Point every step at the replay project (PIPELINES_ROOT) and its embedded MLflow store,
    whatever MLFLOW_TRACKING_URI says outside; restored afterwards."""
    keys = ("PIPELINES_ROOT", "MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")
    saved = {k: os.environ.get(k) for k in keys}
    os.environ["PIPELINES_ROOT"] = str(root)
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    os.environ.pop("MLFLOW_REGISTRY_URI", None)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v



# The per-day HTML reports (GE Data Docs, the Evidently drift report) are more than half of a
# day's cost and nobody reads 100 of them: the timeline is the replay's report. --reports keeps them.
NO_DAILY_HTML = {"validate.data_docs": False, "drift.html_report": False}


def plan(
    story_name: str, days: int | None, out: Path | None, quick: bool, reports: bool, settings: dict[str, Any] | None,
) -> tuple[Story, dict[str, Any], Path, Path]:
    """The story, its calendar and settings (with ``settings`` on top), the code's project and
    the output folder (created; never one that holds the project)."""
    from pipelines.config import project_root

    st = get_story(story_name)
    cal = st.calendar(quick, days)
    source = project_root()
    out = (out or source / "replays" / st.name).resolve()
    if out == source or source.is_relative_to(out):
        raise PipelineError(f"--out {out} would hold the project itself: pick an empty folder")
    out.mkdir(parents=True, exist_ok=True)
    cal["params"] = {**cal["params"], **({} if reports else NO_DAILY_HTML), **(settings or {})}
    return st, cal, source, out


@contextlib.contextmanager
def logged(root: Path, out: Path) -> Iterator[Any]:
    """Inside the replay project (:func:`project_env`), with the steps' progress (log records,
    stderr) in ``<out>/replay.log``; yields that file."""
    with project_env(root), (out / "replay.log").open("a") as log_file:
        handler = logging.StreamHandler(log_file)
        pkg = logging.getLogger("pipelines")
        saved = [h for h in pkg.handlers if getattr(h, "_pipelines", False)]
        for h in saved:  # step progress to the log file; the day lines stay readable
            pkg.removeHandler(h)
        pkg.addHandler(handler)
        try:
            with contextlib.redirect_stderr(log_file):
                yield log_file
        finally:
            pkg.removeHandler(handler)
            for h in saved:
                pkg.addHandler(h)
