from pathlib import Path

import pytest

from pipelines.config import load_settings
from pipelines.errors import PipelineError

REPO = Path(__file__).resolve().parents[2]


def test_repo_params_load() -> None:
    s = load_settings(REPO / "params.yaml")
    assert s.params.data.target == "default"
    assert "logins_30d" in s.params.data.features and "avg_spend_30d" in s.params.data.features
    assert len(s.params.data.features) >= 10
    assert s.root == REPO


def test_unknown_key_is_a_one_line_error(tmp_path: Path) -> None:
    text = (REPO / "params.yaml").read_text().replace("  psi_threshold: 0.2", "  psi_treshold: 0.2")
    (tmp_path / "params.yaml").write_text(text)
    with pytest.raises(PipelineError) as exc:
        load_settings(tmp_path / "params.yaml")
    msg = str(exc.value)
    assert "drift.psi_treshold" in msg and "\n" not in msg


def test_bad_value_names_the_key(tmp_path: Path) -> None:
    text = (REPO / "params.yaml").read_text().replace("holdout_days: 3", "holdout_days: 0")
    (tmp_path / "params.yaml").write_text(text)
    with pytest.raises(PipelineError, match="prepare.holdout_days"):
        load_settings(tmp_path / "params.yaml")


def test_feature_in_two_roles_rejected(tmp_path: Path) -> None:
    text = (REPO / "params.yaml").read_text().replace("categorical: [region,", "categorical: [age, region,")
    (tmp_path / "params.yaml").write_text(text)
    with pytest.raises(PipelineError, match="more than one role: age"):
        load_settings(tmp_path / "params.yaml")


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(PipelineError, match="params file not found"):
        load_settings(tmp_path / "nope.yaml")


def test_serve_section_is_validated(tmp_path: Path) -> None:
    s = load_settings(REPO / "params.yaml")
    assert s.params.serve.host == "127.0.0.1" and s.params.serve.canary_stages == [5, 25, 50, 100]
    assert s.online_predictions_dir == REPO / "data" / "predictions_online"
    text = (REPO / "params.yaml").read_text().replace("canary_stages: [5, 25, 50, 100]", "canary_stages: [5, 50, 25]")
    (tmp_path / "params.yaml").write_text(text)
    with pytest.raises(PipelineError, match="serve.canary_stages: .*end at 100"):
        load_settings(tmp_path / "params.yaml")
    text = (REPO / "params.yaml").read_text().replace("max_error_rate: 0.01", "max_error_rate: 2")
    (tmp_path / "params.yaml").write_text(text)
    with pytest.raises(PipelineError, match="serve.max_error_rate"):
        load_settings(tmp_path / "params.yaml")
