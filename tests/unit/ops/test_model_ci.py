"""The pull request's report and the gate's plot data, as pure functions on tiny inputs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from pipelines.model import gate_plots
from pipelines.ops.model_ci import MARKER, blocked_reason, markdown_report

GATE = {"confidence": 0.95, "max_roc_auc_regression": 0.01, "bootstrap_samples": 1000}


def decision(passed: bool) -> dict:
    vs = {"check": "roc_auc_vs_champion", "value": -0.0836 if not passed else 0.0004,
          "threshold": "95% CI lower bound of the AUC difference >= -0.01", "passed": passed,
          "detail": "diff -0.0836, 95% CI [-0.1269, -0.0479]"}
    return {
        "passed": passed,
        "verdict": "promote to champion" if passed else "register as challenger only",
        "reasons": [] if passed else [f"roc_auc_vs_champion: -0.0836 (needs {vs['threshold']}) - {vs['detail']}"],
        "checks": [
            {"check": "roc_auc_min", "value": 0.61, "threshold": ">= 0.6", "passed": True, "detail": "MetricThreshold passed"},
            vs,
            {"check": "slice region=north", "value": None, "threshold": "needs >= 200 rows", "passed": True,
             "detail": "not judged: 120 rows"},
            {"check": "slice region=south", "value": -0.02, "threshold": "AUC difference >= -0.05", "passed": True,
             "detail": "candidate 0.6800 vs champion 0.7000 on 400 rows"},
        ],
        "evaluated_at": "2026-01-15T00:00:00+00:00",
        "candidate": {"run_id": "a" * 32, "model_uri": "models:/m-1", "roc_auc": 0.61},
        "champion": {"version": "1", "run_id": "b" * 32, "roc_auc": 0.69},
        "holdout": {"rows": 1500, "days": ["2026-01-05", "2026-01-06", "2026-01-07"]},
        "candidate_slices": {"region=north": {"rows": 120, "roc_auc": 0.5}, "region=south": {"rows": 400, "roc_auc": 0.68}},
        "champion_slices": {"region=north": {"rows": 120, "roc_auc": 0.6}, "region=south": {"rows": 400, "roc_auc": 0.7}},
        "auc_difference": {"diff": -0.0836, "ci_low": -0.1269, "ci_high": -0.0479},
        "lineage": {"git_commit": "c" * 40, "params_md5": "d" * 32},
    }


DIFF = {"metrics/gate.json": {
    "candidate_roc_auc": {"old": 0.69, "new": 0.61, "diff": -0.08}, "passed": {"old": True, "new": False, "diff": -1},
    "checks_failed": {"old": 0, "new": 8, "diff": 8},
}}


def test_a_blocked_candidate_reports_every_check_the_interval_slices_and_the_metrics_diff() -> None:
    page = markdown_report(decision(False), GATE, DIFF, "", "main", None, "weak")
    assert page.startswith(MARKER + "\n## Model CI: the gate blocks this change: register as challenger only")
    assert "**BLOCKED**" in page and "champion v1 (ROC AUC 0.6900)" in page and "DVC experiment `weak`" in page
    assert "| **FAIL** | `roc_auc_vs_champion` | -0.0836 | 95% CI lower bound of the AUC difference >= -0.01 |" in page
    assert "| not judged | `slice region=north` | - |" in page
    assert "[-0.1269, -0.0479] over 1000 resamples; the lower end must be >= -0.01" in page
    assert "| `region=south` | 400 | 0.6800 | 0.7000 | -0.0200 | pass |" in page
    assert "| `metrics/gate.json` | `candidate_roc_auc` | 0.6900 | 0.6100 | -0.0800 |" in page
    assert "| `metrics/gate.json` | `passed` | true | false | - |" in page
    assert "| `metrics/gate.json` | `checks_failed` | 0 | 8 | +8 |" in page
    assert "`dvc_plots/index.html` (`make model-ci-plots`)" in page
    assert blocked_reason(decision(False)).startswith("the gate blocks this candidate: roc_auc_vs_champion: -0.0836")


def test_a_passing_candidate_without_a_baseline_says_why_there_is_no_diff() -> None:
    d = decision(True)
    page = markdown_report(d, GATE, {}, "no metrics to compare: `main` has no committed metrics", "main", "https://ci/run/1")
    assert "the gate passes this change: promote to champion" in page and "**FAIL**" not in page
    assert "no metrics to compare" in page and "[the rendered plots](https://ci/run/1)" in page
    first = {**d, "champion": None, "auc_difference": None, "champion_slices": None}
    assert "No champion to compare with" in markdown_report(first, GATE, {}, "none", "main")


def test_plot_data_is_small_sorted_and_empty_for_a_model_without_scores(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 5000)
    p = np.clip(y * 0.3 + rng.random(5000) * 0.7, 0, 1)
    slices = {"region=a": {"rows": 10, "roc_auc": 0.7}, "region=b": {"rows": 5, "roc_auc": float("nan")}}
    data = gate_plots.plot_data(y, p, slices)
    roc = data["roc"]
    assert len(roc) <= gate_plots.MAX_POINTS and roc[0] == {"fpr": 0.0, "tpr": 0.0} and roc[-1] == {"fpr": 1.0, "tpr": 1.0}
    recall = [r["recall"] for r in data["precision_recall"]]
    assert recall == sorted(recall)
    assert abs(sum(r["share"] for r in data["scores"]) - 1) < 1e-5 and len(data["scores"]) == gate_plots.SCORE_BINS
    assert sum(r["rows"] for r in data["calibration"]) == 5000
    assert data["slices"] == [{"slice": "region=a", "roc_auc": 0.7, "rows": 10}]  # no AUC, no bar
    names = gate_plots.write_plots(tmp_path, {"candidate": data})
    assert len(names) == len(gate_plots.PLOTS) * 2
    assert json.loads((tmp_path / "roc_champion.json").read_text()) == []
    assert gate_plots.plot_data(y, None, None) == {name: [] for name in gate_plots.PLOTS}
    nan = gate_plots.plot_data(np.array([0, 1, 1]), np.array([np.nan, 0.5, 0.9]), {})
    assert nan["roc"] == [] and sum(r["share"] for r in nan["scores"]) == 1  # one class left: no curve
