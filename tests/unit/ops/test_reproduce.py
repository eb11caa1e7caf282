"""The verdict of `reproduce` (pipelines/ops/reproduce.py): readable lines, and exact or a failure."""

import pytest

from pipelines.errors import PipelineError
from pipelines.ops.reproduce import require_exact, verdict_lines


def _report(differences: list[str]) -> dict:
    return {
        "version": "3",
        "exact": not differences,
        "checks": {"holdout_predictions": {"rows": 1200, "identical": not differences, "max_abs_diff": 0.0}},
        "differences": differences,
    }


def test_an_exact_rebuild_is_one_line_and_passes() -> None:
    report = _report([])
    assert verdict_lines(report) == ["reproduce v3: EXACT MATCH (1200 holdout predictions identical)"]
    assert require_exact(report) is report


def test_a_different_rebuild_lists_what_differs_and_fails() -> None:
    report = _report(["holdout predictions differ (max abs diff 0.01)", "likely why: another lock"])
    assert verdict_lines(report) == [
        "reproduce v3: DIFFERENT (1200 holdout predictions differ)",
        "  - holdout predictions differ (max abs diff 0.01)",
        "  - likely why: another lock",
    ]
    with pytest.raises(PipelineError) as exc:
        require_exact(report)
    assert str(exc.value) == (
        "v3 could not be reproduced exactly: holdout predictions differ (max abs diff 0.01); likely why: another lock"
    )
