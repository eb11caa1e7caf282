"""The CLI contract: --help everywhere, one-line reasons and non-zero exits on failure."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import typer.main

from pipelines.cli import app

REPO = Path(__file__).resolve().parents[2]
GROUP: typer.core.TyperGroup = typer.main.get_command(app)  # type: ignore[assignment]
COMMANDS = sorted(GROUP.commands)  # every command of the app, hidden aliases included


def _cli(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pipelines", *args], cwd=cwd, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("command", COMMANDS)
def test_help(command: str) -> None:
    res = _cli(command, "--help")
    assert res.returncode == 0 and "Usage" in res.stdout


def test_every_command_and_option_has_a_help_text() -> None:
    """The reference docs are rendered from these texts: none may be missing."""
    assert GROUP.help and all(getattr(p, "help", None) for p in GROUP.params)
    missing = [
        f"{name} {param.name}" for name, cmd in GROUP.commands.items() for param in cmd.params
        if not getattr(param, "help", None)
    ]
    assert not missing, f"options or arguments without a help text: {missing}"
    assert not [name for name, cmd in GROUP.commands.items() if not (cmd.help or "").strip()], "commands without a help text"


def test_evaluate_is_a_hidden_deprecated_alias_of_gate(tmp_path: Path) -> None:
    assert "gate" in COMMANDS and GROUP.commands["evaluate"].hidden
    listed = _cli("--help").stdout
    assert " gate " in listed and " evaluate " not in listed
    (tmp_path / "p.yaml").write_text("data: {numerical: [a], categorical: [a]}\n")
    gate = _cli("--params", str(tmp_path / "p.yaml"), "gate")
    old = _cli("--params", str(tmp_path / "p.yaml"), "evaluate")
    assert gate.returncode == old.returncode == 1
    warning, *rest = old.stderr.strip().splitlines()
    assert warning == "warning: `evaluate` is deprecated: use `gate` (the same step)"
    assert rest == gate.stderr.strip().splitlines(), "the same step, the same one-line reason"


def test_bad_date_is_one_line(tmp_path: Path) -> None:
    res = _cli("score", "--date", "2026-13-45")
    assert res.returncode == 1
    assert res.stderr.strip() == "error: not a date (expected YYYY-MM-DD): '2026-13-45'"


def test_bad_params_file_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "p.yaml").write_text("data: {numerical: [a], categorical: [a]}\n")
    res = _cli("--params", str(tmp_path / "p.yaml"), "prepare")
    assert res.returncode == 1
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "more than one role: a" in lines[0]


def test_unknown_command_is_a_usage_error() -> None:
    assert _cli("bogus").returncode == 2


def test_drift_input_needs_a_date_and_a_known_engine() -> None:
    res = _cli("drift", "--input", "/tmp/elsewhere.parquet")
    assert res.returncode == 1
    assert res.stderr.strip() == (
        "error: --input needs --date: the day the batch is for (its report and the retrain streak are kept by day)"
    )
    res = _cli("drift", "--date", "2026-01-05", "--engine", "polars")
    assert res.returncode == 1 and res.stderr.strip() == "error: unknown engine 'polars' (--engine): use local, spark or auto"


def test_init_on_an_empty_folder_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "raw").mkdir()
    (tmp_path / "labels").mkdir()
    (tmp_path / "params.yaml").write_text((REPO / "params.yaml").read_text())  # never the repository's own
    res = _cli("--params", str(tmp_path / "params.yaml"), "init",
               "--raw", str(tmp_path / "raw"), "--labels", str(tmp_path / "labels"), "--target", "y")
    assert res.returncode == 1
    assert res.stderr.strip() == (
        f"error: raw folder {tmp_path / 'raw'} is empty: expected one file per day, <YYYY-MM-DD>.parquet or .csv"
    )


def test_a_quarantined_day_is_named_by_every_command_that_meets_it(tmp_path: Path) -> None:
    """score, validate and drift on a day whose batch failed validation: the same one line, saying
    where the reasons are and how to bring the day back (not "run validate first", not "no batch")."""
    (tmp_path / "params.yaml").write_text((REPO / "params.yaml").read_text())
    qdir = tmp_path / "data" / "quarantine" / "2026-01-05"
    qdir.mkdir(parents=True)
    (qdir / "validation_result.json").write_text('{"success": false, "failures": ["income: 60% nulls"]}\n')
    (qdir / "2026-01-05.csv").write_text("customer_id\n1\n")
    expected = (
        "error: batch 2026-01-05 is quarantined (failed validation): "
        "reasons in data/quarantine/2026-01-05/validation_result.json; "
        "fix the source and re-deliver data/raw/2026-01-05.csv, then run validate --date 2026-01-05"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    for command in ("score", "validate", "drift"):
        res = subprocess.run([sys.executable, "-m", "pipelines", "--params", "params.yaml", command, "--date", "2026-01-05"],
                             cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
        assert res.returncode == 1, (command, res.stderr)
        assert res.stderr.strip() == expected, command
