from pathlib import Path
from types import UnionType
from typing import Union, get_args, get_origin

import pytest
from pydantic import BaseModel

from pipelines.config import Params, load_settings
from pipelines.errors import PipelineError

REPO = Path(__file__).resolve().parents[2]


def test_repo_params_load() -> None:
    s = load_settings(REPO / "params.yaml")
    assert s.params.data.target == "default"
    assert "logins_30d" in s.params.data.features and "avg_spend_30d" in s.params.data.features
    assert len(s.params.data.features) >= 10
    assert s.root == REPO


def _error(tmp_path: Path, old: str, new: str) -> tuple[str, int]:
    """The one-line error of params.yaml with ``old`` replaced by ``new``, and the line it is on."""
    text = (REPO / "params.yaml").read_text()
    assert old in text
    text = text.replace(old, new, 1)
    (tmp_path / "params.yaml").write_text(text)
    line = text[: text.index(new)].count("\n") + 1 + (1 if new.startswith("\n") else 0)
    with pytest.raises(PipelineError) as exc:
        load_settings(tmp_path / "params.yaml")
    msg = str(exc.value)
    assert "\n" not in msg
    return msg, line


def test_unknown_key_names_its_line_and_the_closest_key(tmp_path: Path) -> None:
    msg, line = _error(tmp_path, "  psi_threshold: 0.2", "  psi_treshold: 0.2")
    assert msg == f"{tmp_path / 'params.yaml'}:{line}:3: unknown key drift.psi_treshold; did you mean drift.psi_threshold?"
    msg, line = _error(tmp_path, "drift:\n", "drfit:\n")  # a section
    assert msg.endswith(f"params.yaml:{line}:1: unknown key drfit; did you mean drift?")
    msg, _ = _error(tmp_path, "  max_depth: 4", "  chunk_rows: 4")  # a key of other sections
    assert msg.endswith("unknown key train.chunk_rows; did you mean score.chunk_rows or drift.chunk_rows?")


def test_unknown_key_with_nothing_close_gets_no_suggestion(tmp_path: Path) -> None:
    msg, line = _error(tmp_path, "  psi_threshold: 0.2", "  xyzzy: 0.2")
    assert msg.endswith(f"params.yaml:{line}:3: unknown key drift.xyzzy")
    assert "did you mean" not in msg


def test_yaml_syntax_error_is_file_line_col(tmp_path: Path) -> None:
    msg, line = _error(tmp_path, "seed: 42\n  learning_rate", "seed: 42\n\tlearning_rate")
    where = f"{tmp_path / 'params.yaml'}:{line + 1}:1"
    assert msg == f"{where}: found character '\\t' that cannot start any token (while scanning for the next token)"


def test_duplicate_key_is_an_error(tmp_path: Path) -> None:
    msg, line = _error(tmp_path, '  start: "2026-01-01"', '  start: "2026-01-01"\n  start: "2026-02-01"')
    assert msg.endswith(f"params.yaml:{line + 1}:3: duplicate key simulate.start (first at line {line})")


def test_wrong_type_names_key_line_and_what_was_expected(tmp_path: Path) -> None:
    msg, line = _error(tmp_path, "max_iter: 150", "max_iter: lots")
    expected = "expected a valid integer, unable to parse string as an integer, got 'lots'"
    assert msg.endswith(f"params.yaml:{line}:13: train.max_iter: {expected}")
    msg, line = _error(tmp_path, "  name: local", "  name: pandas")
    assert msg.endswith(f"params.yaml:{line}:9: engine.name: expected 'local', 'spark' or 'auto', got 'pandas'")
    msg, line = _error(tmp_path, "positive_label: null", "positive_label: [1]")  # every member of a union, in one phrase
    expected = "expected a valid string, a valid integer, a valid number or a valid boolean, got [1]"
    assert msg.endswith(f":{line}:3: data.positive_label: {expected}")


def test_missing_key_points_at_its_section(tmp_path: Path) -> None:
    msg, _ = _error(tmp_path, "  numerical: [age,", "  numericals: [age,")
    text = (tmp_path / "params.yaml").read_text()
    data_line = text[: text.index("\ndata:")].count("\n") + 2
    assert f"params.yaml:{data_line}:1: data.numerical: required key is missing; " in msg
    assert msg.endswith("unknown key data.numericals; did you mean data.numerical?")


def _models(model: type[BaseModel]) -> list[type[BaseModel]]:
    """``model`` and every model its fields hold (directly, in a union or in a container)."""
    found = [model]
    todo = [f.annotation for f in model.model_fields.values()]
    while todo:
        kind = todo.pop()
        if isinstance(kind, type) and issubclass(kind, BaseModel):
            found += [m for m in _models(kind) if m not in found]
        elif get_origin(kind) in (Union, UnionType) or get_args(kind):
            todo += list(get_args(kind))
    return found


def test_every_params_key_has_a_description() -> None:
    models = _models(Params)
    assert len(models) == 12  # Params and its eleven sections
    missing = [f"{m.__name__}.{name}" for m in models for name, f in m.model_fields.items() if not (f.description or "").strip()]
    assert missing == []


def test_bad_value_names_the_key(tmp_path: Path) -> None:
    msg, line = _error(tmp_path, "holdout_days: 3", "holdout_days: 0")
    assert msg.endswith(f"params.yaml:{line}:17: prepare.holdout_days: expected greater than or equal to 1, got 0")


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
    with pytest.raises(PipelineError, match=r"serve.canary_stages: .*end at 100"):
        load_settings(tmp_path / "params.yaml")
    text = (REPO / "params.yaml").read_text().replace("max_error_rate: 0.01", "max_error_rate: 2")
    (tmp_path / "params.yaml").write_text(text)
    with pytest.raises(PipelineError, match=r"serve\.max_error_rate"):
        load_settings(tmp_path / "params.yaml")


def test_a_cooldown_shorter_than_the_label_delay_is_refused_in_one_line(tmp_path: Path) -> None:
    """A second retrain must not start before the first one's labels can show its effect."""
    s = load_settings(REPO / "params.yaml")
    assert s.params.drift.cooldown_days >= s.params.simulate.label_delay_days  # the shipped settings hold it
    text = (REPO / "params.yaml").read_text().replace("cooldown_days: 7 ", "cooldown_days: 3 ")
    (tmp_path / "params.yaml").write_text(text)
    with pytest.raises(PipelineError) as exc:
        load_settings(tmp_path / "params.yaml")
    msg = str(exc.value)
    assert "\n" not in msg and "drift.cooldown_days 3 is below the label delay (simulate.label_delay_days 7)" in msg
    assert "set it to 7 or more" in msg
