"""A malformed or hostile params.yaml or suite JSON: one line naming the problem, exit 1, and
no work started (no data written, no MLflow store created, the repository's files untouched)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.support.project import REPO, build_project


def _params(**changes: object) -> dict:
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    for key, value in changes.items():
        section, name = key.split(".")
        params[section][name] = value
    return params


PARAMS = {
    "wrong type": (
        _params(**{"train.learning_rate": "fast"}),
        "train.learning_rate: expected a valid number, unable to parse string as a number, got 'fast'",
    ),
    "negative threshold": (_params(**{"drift.psi_threshold": -0.2}), "drift.psi_threshold: expected greater than 0, got -0.2"),
    "negative row bound": (
        _params(**{"validate.min_rows": -5}),
        "validate.min_rows: expected greater than or equal to 0, got -5",
    ),
    "unknown key (a typo)": (_params(**{"gate.min_auc": 0.7}), "unknown key gate.min_auc; did you mean gate.min_roc_auc?"),
    "unknown section": ({**_params(), "serving_typo": {"a": 1}}, "unknown key serving_typo"),
    "output outside the project": (
        _params(**{"data.predictions_dir": "../../elsewhere"}),
        "data.predictions_dir: must be a folder inside the project",
    ),
    "absolute output path": (
        _params(**{"data.reports_dir": "/tmp/reports"}),
        "data.reports_dir: must be a folder inside the project",
    ),
    "a list where a number goes": (
        _params(**{"gate.bootstrap_samples": [1000]}),
        "gate.bootstrap_samples: expected a valid integer",
    ),
}

SUITES = {
    "not JSON": ("{expectations: [", "is not valid JSON"),
    "not a suite": (json.dumps([1, 2, 3]), "is not a suite: expected an object with an 'expectations' list"),
    "expectation without a type": (
        json.dumps({"name": "daily_batch", "expectations": [{"kwargs": {}}]}),
        "expectation 0 needs a 'type' string",
    ),
    "unknown expectation type": (
        json.dumps(
            {"name": "daily_batch", "expectations": [{"type": "expect_column_to_be_awesome", "kwargs": {"column": "age"}}]}
        ),
        "invalid suite",
    ),
    "wrong argument type": (
        json.dumps(
            {
                "name": "daily_batch",
                "expectations": [{"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "age", "mostly": "lots"}}],
            }
        ),
        "invalid suite",
    ),
}


def _project(tmp_path: Path) -> Path:
    return build_project(tmp_path).root


def _run_cycle(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pipelines", "--params", str(root / "params.yaml"), "run"],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )


def _assert_refused_before_work(root: Path, res: subprocess.CompletedProcess[str], expected: str) -> None:
    lines = res.stderr.strip().splitlines()
    assert res.returncode == 1, res.stderr
    assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], res.stderr
    assert not (root / "data").exists() and not (root / "mlflow.db").exists(), "work started before the check"


@pytest.mark.parametrize("case", list(PARAMS))
def test_hostile_params_are_one_line_before_any_work(tmp_path: Path, case: str, record) -> None:
    root = _project(tmp_path)
    params, expected = PARAMS[case]
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    _assert_refused_before_work(root, _run_cycle(root), expected)
    record("malformed or hostile params.yaml (wrong types, negative bounds, unknown keys, paths outside the project)",
           1, "refused with one line naming the key, before any work", "nothing")


def test_params_that_are_not_yaml(tmp_path: Path, record) -> None:
    root = _project(tmp_path)
    (root / "params.yaml").write_text("data: [unclosed\n  - ")
    _assert_refused_before_work(root, _run_cycle(root), "params.yaml:2:5: expected ',' or ']'")
    record("malformed or hostile params.yaml (wrong types, negative bounds, unknown keys, paths outside the project)",
           1, "refused with one line naming the key, before any work", "nothing")


@pytest.mark.parametrize("case", list(SUITES))
def test_hostile_suites_are_one_line_before_any_work(tmp_path: Path, case: str, record) -> None:
    root = _project(tmp_path)
    text, expected = SUITES[case]
    (root / "expectations" / "daily_batch.json").write_text(text)
    _assert_refused_before_work(root, _run_cycle(root), expected)
    assert "daily_batch.json" in _run_cycle(root).stderr
    record("malformed suite JSON (not JSON, not a suite, unknown expectation, wrong argument types)",
           1, "refused with one line naming the file, before any work", "nothing")
