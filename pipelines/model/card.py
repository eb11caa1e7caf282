"""A model card (Markdown) generated from the candidate's lineage and its gate decision record.

It becomes the registered version's description (the MLflow UI renders it) and the run's
``model_card.md`` artifact, so every version says what it is for, what it was trained on,
how good it is overall and per slice, what it cannot do, and why it is or is not champion.
"""

from __future__ import annotations

import math
from typing import Any

from pipelines.config import Settings
from pipelines.tracking import tag_bool


def _fmt(v: Any) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "n/a"
    return f"{v:.4f}" if isinstance(v, float) else str(v)


def render(settings: Settings, candidate: dict[str, Any], decision: dict[str, Any], version: str | None = None) -> str:
    d = settings.params.data
    champ = decision.get("champion")
    verdict = "PASSED" if decision["passed"] else "FAILED"
    lines = [
        f"# {settings.params.project.model_name}" + (f" v{version}" if version else ""),
        "",
        f"**Gate: {verdict}** ({decision['verdict']}).",
    ]
    if decision["reasons"]:
        lines += ["", "Why not champion:", *[f"- {r}" for r in decision["reasons"]]]
    lines += [
        "",
        "## Purpose",
        f"Probability that a customer defaults (`{d.target}` = 1), scored daily in batch for every customer "
        "in the day's feed. For ranking risk and for review thresholds; not for automated decisions "
        "without a human in the loop.",
        "",
        "## Training data",
        f"- Window: days {candidate.get('train_days')} (holdout, never trained on: {candidate.get('holdout_days')})",
        f"- Training set md5 (DVC): `{candidate.get('data_md5')}`; holdout md5: `{candidate.get('holdout_md5')}`",
        f"- Code: commit `{str(candidate.get('git_commit'))[:12]}`"
        + (" from a **dirty** working tree" if tag_bool(candidate.get("git_dirty")) else ""),
        f"- params.yaml md5 `{candidate.get('params_md5')}`; dependency lock sha256 `{str(candidate.get('lock_sha256'))[:16]}`",
        f"- Features: {', '.join(d.numerical)} (numerical); {', '.join(d.categorical)} (categorical)",
        "",
        "## Metrics (holdout)",
        f"- ROC AUC: {_fmt(decision['candidate'].get('roc_auc'))}"
        + (f" (champion v{champ['version']}: {_fmt(champ.get('roc_auc'))})" if champ else " (no champion to compare)"),
    ]
    diff = decision.get("auc_difference")
    if diff:
        lines.append(
            f"- AUC difference vs champion: {diff['diff']:+.4f}, "
            f"{settings.params.gate.confidence:.0%} CI [{diff['ci_low']:+.4f}, {diff['ci_high']:+.4f}]"
        )
    cand_slices, champ_slices = decision.get("candidate_slices") or {}, decision.get("champion_slices") or {}
    if cand_slices:
        lines += ["", "| slice | rows | ROC AUC | champion |", "|---|---:|---:|---:|"]
        for name, m in cand_slices.items():
            lines.append(
                f"| {name} | {m['rows']} | {_fmt(m['roc_auc'])} | {_fmt((champ_slices.get(name) or {}).get('roc_auc'))} |"
            )
    lines += ["", "## Gate checks", "| check | value | threshold | result |", "|---|---|---|---|"]
    for c in decision["checks"]:
        lines.append(f"| {c['check']} | {_fmt(c['value'])} | {c['threshold']} | {'pass' if c['passed'] else '**FAIL**'} |")
    lines += [
        "",
        "## Limitations",
        "- Trained on a limited window of recent days: behaviour outside the training ranges and "
        "categories (shown by the drift job) is extrapolation; unseen categories are scored as missing.",
        "- Labels mature with a delay, so the holdout is the most recent *matured* days, not today.",
        f"- Slices with fewer than {settings.params.gate.min_slice_rows} holdout rows are reported but not judged.",
        "- The simulated data of `make run` is synthetic: its metrics say nothing about a real portfolio.",
    ]
    return "\n".join(lines) + "\n"
