"""Model CI: the gate's verdict on a change, as the pull request that makes it shows it.

`python -m pipelines report --markdown` (`make model-ci-report`, the CI workflows) reads the
decision record the `gate` stage wrote in the workspace (``metrics/decision.json``, after `dvc exp
run` on the change or `dvc exp apply` of an experiment),
asks the real `dvc metrics diff` how the metrics moved against the base branch's committed
ones, and writes one Markdown page: the decision and every check with its value and threshold,
the bootstrap interval of the AUC difference, the slices, the metrics diff and where the plots
are. ``markdown_report`` is pure: the record and the diff in, the page out.
"""

from __future__ import annotations

import json
import math
from typing import Any

from pipelines.config import Settings
from pipelines.errors import PipelineError
from pipelines.io import read_json
from pipelines.tools import dvc, reason

MARKER = "<!-- model-ci-report -->"  # the CI finds its one comment by this line and updates it
PLOTS = ("ROC", "precision-recall", "calibration (reliability)", "score distribution", "per-slice ROC AUC")
LOCAL_PLOTS = "dvc_plots/index.html"  # where `dvc plots diff` renders the page (make model-ci-plots)


def load_decision(settings: Settings) -> dict[str, Any]:
    """The decision record of the workspace's candidate (``metrics/decision.json``: git keeps it
    with each experiment, so after `dvc exp apply` it is that experiment's), or a one-line error."""
    path = settings.path("metrics", "decision.json")
    if not path.is_file():
        raise PipelineError(f"no gate decision at {path}: run the pipeline first (`dvc exp run` or `dvc repro gate`)")
    return read_json(path)


def experiment_name(settings: Settings, decision: dict[str, Any]) -> str | None:
    """The DVC experiment that produced this decision (the `promote` stage's record of it), if any."""
    path = settings.reports_dir / "gate" / "registration.json"
    if not path.is_file():
        return None
    reg = read_json(path)
    return reg.get("experiment") if reg.get("run_id") == decision["candidate"]["run_id"] else None


def metrics_diff(settings: Settings, baseline: str) -> tuple[dict[str, Any], str]:
    """`dvc metrics diff <baseline> --all --json`: every metric of the baseline's commit against
    the workspace's; ({} and why) when there is nothing to compare with."""
    proc = dvc(["metrics", "diff", baseline, "--all", "--json"], settings.root)
    if proc.returncode != 0:
        return {}, f"`dvc metrics diff {baseline}` failed: {reason(proc)}"
    try:
        diff = json.loads(proc.stdout or "{}")
    except json.JSONDecodeError:
        return {}, f"`dvc metrics diff {baseline}` printed no JSON: {reason(proc)}"
    if not diff:
        return {}, f"no metrics to compare: `{baseline}` has no committed metrics (commit `dvc.lock` and `metrics/` there)"
    return diff, ""


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.4f}"
    if isinstance(value, int):
        return str(value)
    return str(value).replace("|", "\\|").replace("\n", " ")


def _signed(value: Any) -> str:
    return f"{value:+.4f}" if isinstance(value, (int, float)) and not isinstance(value, bool) else _fmt(value)


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header), *("| " + " | ".join(r) + " |" for r in rows)]


def _checks(decision: dict[str, Any]) -> list[str]:
    rows = []
    for c in decision["checks"]:
        judged = c["value"] is not None
        status = "pass" if c["passed"] and judged else "not judged" if c["passed"] else "**FAIL**"
        rows.append([status, f"`{c['check']}`", _fmt(c["value"]), _fmt(c["threshold"]), _fmt(c["detail"])])
    return _table(["", "check", "value", "threshold", "detail"], rows)


def _interval(decision: dict[str, Any], gate: dict[str, Any]) -> list[str]:
    boot = decision.get("auc_difference")
    if not boot:
        return ["No champion to compare with: the absolute thresholds alone decide."]
    conf = gate.get("confidence", 0.95)
    bound = gate.get("max_roc_auc_regression")
    return [
        f"AUC(candidate) - AUC(champion) = **{boot['diff']:+.4f}**, {conf:.0%} paired bootstrap interval "
        f"[{boot['ci_low']:+.4f}, {boot['ci_high']:+.4f}] over {gate.get('bootstrap_samples', '?')} resamples; "
        f"the lower end must be >= -{bound}."
    ]


def _slices(decision: dict[str, Any]) -> list[str]:
    cand, champ = decision.get("candidate_slices") or {}, decision.get("champion_slices") or {}
    if not cand:
        return ["No slice was measured."]
    judged = {c["check"].removeprefix("slice "): c for c in decision["checks"] if c["check"].startswith("slice ")}
    rows = []
    for name, s in cand.items():
        h = champ.get(name) or {}
        c = judged.get(name)
        verdict = "-" if c is None else "not judged" if c["value"] is None else "pass" if c["passed"] else "**FAIL**"
        diff = s["roc_auc"] - h["roc_auc"] if h else None
        rows.append([f"`{name}`", str(s["rows"]), _fmt(s["roc_auc"]), _fmt(h.get("roc_auc")), _signed(diff), verdict])
    return _table(["slice", "rows", "candidate AUC", "champion AUC", "difference", "verdict"], rows)


def _diff(diff: dict[str, Any], note: str, baseline: str) -> list[str]:
    if not diff:
        return [note]
    rows = []
    for path, metrics in sorted(diff.items()):
        for name, m in sorted(metrics.items()):
            old, new = m.get("old"), m.get("new")
            change = m.get("diff")
            if isinstance(old, bool) or isinstance(new, bool):  # DVC subtracts booleans as numbers
                change = None
            elif isinstance(old, int) and isinstance(new, int) and change is not None:
                change = f"{int(change):+d}"
            rows.append([f"`{path}`", f"`{name}`", _fmt(old), _fmt(new), _signed(change)])
    return _table(["file", "metric", f"`{baseline}`", "this change", "change"], rows)


def markdown_report(
    decision: dict[str, Any], gate: dict[str, Any], diff: dict[str, Any], diff_note: str, baseline: str,
    plots_url: str | None = None, experiment: str | None = None,
) -> str:
    """The pull request's report (pure): the decision record, the ``gate`` params it was judged
    with, and `dvc metrics diff` against ``baseline`` in; Markdown out."""
    passed = decision["passed"]
    champ = decision.get("champion")
    cand = decision["candidate"]
    failed = [c for c in decision["checks"] if not c["passed"]]
    days = list(decision["holdout"].get("days") or [])
    head = "passes" if passed else "blocks"
    lines = [
        MARKER,
        f"## Model CI: the gate {head} this change: {decision['verdict']}",
        "",
        f"**{'PASSED' if passed else 'BLOCKED'}**: candidate (holdout ROC AUC {_fmt(cand.get('roc_auc'))}, run "
        f"`{cand['run_id'][:12]}`) against "
        + (f"champion v{champ['version']} (ROC AUC {_fmt(champ.get('roc_auc'))})" if champ else "no champion")
        + f" on the same {decision['holdout']['rows']} holdout rows"
        + (f" (days {' to '.join(days[:1] + days[-1:])})" if days else "")
        + (f"; DVC experiment `{experiment}`" if experiment else "")
        + ".",
    ]
    if failed:
        lines += ["", f"Blocked by {len(failed)} check(s):", *(f"- {r}" for r in decision.get("reasons", []))]
    lines += ["", "### Checks", "", *_checks(decision)]
    lines += ["", "### AUC against the champion", "", *_interval(decision, gate)]
    lines += ["", "### Slices", "", *_slices(decision)]
    lines += ["", f"### Metrics against `{baseline}` (`dvc metrics diff {baseline}`)", "", *_diff(diff, diff_note, baseline)]
    where = f"[the rendered plots]({plots_url})" if plots_url else f"`{LOCAL_PLOTS}` (`make model-ci-plots`)"
    lines += [
        "", "### Plots", "",
        f"Candidate and champion on the holdout, this change against `{baseline}`: {', '.join(PLOTS)} in {where}; "
        f"locally `dvc plots diff {baseline}`.",
    ]
    lineage = decision.get("lineage") or {}
    if lineage.get("git_commit"):
        lines += ["", f"<sub>commit `{str(lineage['git_commit'])[:12]}`, params md5 `{lineage.get('params_md5')}`, "
                      f"evaluated {decision.get('evaluated_at')}</sub>"]
    return "\n".join(lines) + "\n"


def report(settings: Settings, baseline: str = "main", plots_url: str | None = None) -> tuple[str, dict[str, Any]]:
    """The Markdown report of the workspace's gate decision against ``baseline``; (page, decision)."""
    decision = load_decision(settings)
    diff, note = metrics_diff(settings, baseline)
    gate = settings.params.gate.model_dump()
    page = markdown_report(decision, gate, diff, note, baseline, plots_url, experiment_name(settings, decision))
    return page, decision


def blocked_reason(decision: dict[str, Any]) -> str:
    """The one line a blocked gate exits with."""
    reasons = decision.get("reasons") or ["no reason recorded"]
    more = f" (+{len(reasons) - 1} more)" if len(reasons) > 1 else ""
    return f"the gate blocks this candidate: {reasons[0]}{more}"
