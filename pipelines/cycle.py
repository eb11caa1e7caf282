"""The whole daily cycle once, on embedded defaults: what `make run` does.

simulate -> validate every new day -> `dvc repro` (prepare, validate_training, train,
evaluate, promote) -> score the latest day -> drift on the latest day -> a short summary.
"""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

from pipelines.config import Settings
from pipelines.errors import PipelineError, ValidationFailed
from pipelines.io import partition_files


def log(msg: str) -> None:
    print(f"==> {msg}", file=sys.stderr, flush=True)


def tool_env(root: Any = None, **extra: str) -> dict[str, str]:
    """Environment for `dvc` and the stage commands it runs (`python -m pipelines ...`): this
    interpreter's venv first on PATH, and PIPELINES_ROOT set to ``root`` when given."""
    bindir = os.path.dirname(sys.executable)
    env = {**os.environ, "PATH": f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}", **extra}
    if root is not None:
        env["PIPELINES_ROOT"] = str(root)
    return env


def validate_new_days(settings: Settings) -> dict[str, list[str]]:
    """Validate each raw day that has no up-to-date validated copy; collect failures."""
    from pipelines.validate import validate_batch

    validated = partition_files(settings.validated_dir)
    report_dir = settings.reports_dir / "validation"
    passed, failed = [], []
    for day, raw in partition_files(settings.raw_dir).items():
        report = report_dir / f"{day.isoformat()}.json"
        if day in validated and report.is_file() and report.stat().st_mtime >= raw.stat().st_mtime:
            continue
        try:
            validate_batch(settings, day)
            passed.append(day.isoformat())
        except ValidationFailed as exc:
            failed.append(day.isoformat())
            log(f"{exc}")
            for line in exc.failures:
                log(f"    {line}")
    return {"passed": passed, "failed": failed}


def dvc_repro(settings: Settings) -> None:
    """Run the training pipeline with the real dvc CLI."""
    proc = subprocess.run([sys.executable, "-m", "dvc", "repro"], cwd=settings.root, env=tool_env(settings.root))
    if proc.returncode != 0:
        raise PipelineError(f"`dvc repro` failed with exit code {proc.returncode} (see its output above)")


def run_cycle(settings: Settings) -> dict[str, Any]:
    from pipelines.drift import drift
    from pipelines.registry import status
    from pipelines.score import score
    from pipelines.simulate import simulate

    if settings.p.data.raw_dir == "data/raw":
        log("simulating daily batches (seeded; unchanged files are left alone)")
        sim = simulate(settings)
        log(f"{len(sim['batches'])} batches, {len(sim['labels'])} matured label files")
    log("validating new batches with Great Expectations")
    val = validate_new_days(settings)
    log(f"validated {len(val['passed'])} new day(s), {len(val['failed'])} quarantined")
    log("dvc repro: prepare -> validate_training -> train -> evaluate -> promote")
    dvc_repro(settings)
    from pipelines.reproduce import push_training_data

    pushed = push_training_data(settings)
    log(f"dvc push: training data of v{pushed['version']} in remote {pushed['remote']} ({pushed['pushed']})")
    days = list(partition_files(settings.validated_dir))
    if not days:
        raise PipelineError("no validated batch to score")
    latest = days[-1]
    log(f"scoring {latest} with the champion")
    scored = score(settings, latest)
    log(f"checking drift of {latest} against the champion's reference")
    drifted = drift(settings, latest)
    st = status(settings)
    return {"validation": val, "score": scored, "drift": drifted, "status": st}


def summary_lines(result: dict[str, Any]) -> list[str]:
    st, sc, dr = result["status"], result["score"], result["drift"]
    ch = st["champion"] or {}

    def rel(path: str | None) -> str:
        return os.path.relpath(path) if path else "none"

    def num(x: float | None) -> str:
        return f"{x:.4f}" if isinstance(x, (int, float)) else "n/a"

    lines = [
        f"Champion: {st['model_name']} v{ch.get('version')} (holdout ROC AUC {num(ch.get('holdout_roc_auc'))}, "
        f"train ROC AUC {num(ch.get('train_roc_auc'))}), tracked at {st['tracking_uri']}",
    ]
    dec = st.get("last_gate_decision") or {}
    if dec:
        lines.append(f"Last gate: {dec.get('verdict')}" + (f" - {'; '.join(dec['reasons'])}" if dec.get("reasons") else ""))
    if st.get("challenger"):
        lines.append(f"Challenger: v{st['challenger']['version']} ({st['challenger'].get('gate_reasons')})")
    lines += [
        f"Predictions: {rel(sc['predictions'])} ({sc['rows']} rows, model v{sc['model_version']})",
        f"Validation report: {rel(st.get('latest_validation_report'))} ({st['validated_days']} days validated, "
        f"{len(st['quarantined_days'])} quarantined)",
        f"Drift report: {rel(dr['report_html'])} - retrain {'DUE' if dr['retrain'] else 'not due'}: {dr['reason']}",
        "Inspect: `make mlflow-ui` then http://127.0.0.1:5000, or `.venv/bin/python -m pipelines status --json`; "
        "rebuild the champion from its lineage: `.venv/bin/python -m pipelines reproduce champion`",
    ]
    return lines
