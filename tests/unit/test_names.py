"""One name per step: every Airflow task, DVC stage and CLI command is a function of that name
in the package, and the entry point calls it."""

from __future__ import annotations

import ast
import importlib
import inspect
import re
import textwrap
from pathlib import Path

import pytest
import typer.main
import yaml

from pipelines.cli import app

REPO = Path(__file__).resolve().parents[2]

# Where each step's function lives: every CLI command and every DVC stage has an entry here.
STEPS = {
    "init": "pipelines.data.onboard",
    "simulate": "pipelines.data.simulate",
    "validate": "pipelines.data.validate_modes",
    "validate_training": "pipelines.data.validate",
    "prepare": "pipelines.data.prepare",
    "train": "pipelines.model.train",
    "gate": "pipelines.model.gate",
    "promote": "pipelines.ops.promote",
    "challenger": "pipelines.model.registry",
    "rollback": "pipelines.model.registry",
    "score": "pipelines.serving.score",
    "compact": "pipelines.serving.compact",
    "drift": "pipelines.monitoring.drift",
    "performance": "pipelines.monitoring.performance",
    "push": "pipelines.ops.reproduce",
    "reproduce": "pipelines.ops.reproduce",
    "status": "pipelines.model.status",
    "serve": "pipelines.serving.launch",
    "replay": "pipelines.ops.replay",
    "run": "pipelines.ops.cycle",
    "report": "pipelines.ops.model_ci",
}
TASKS = "pipelines.ops.tasks"  # every Airflow task calls the function of its name here
DEPRECATED = {"evaluate": "gate"}  # hidden CLI aliases, kept for old scripts


def _is_function(module: str, name: str) -> bool:
    return inspect.isfunction(getattr(importlib.import_module(module), name, None))


def _dag_tasks() -> list[tuple[str, ast.FunctionDef]]:
    """(file, function) of every @task-decorated function in dags/ (its name is the task id)."""
    found = []
    for path in sorted((REPO / "dags").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.FunctionDef):
                continue
            for dec in node.decorator_list:
                target = dec.func if isinstance(dec, ast.Call) else dec
                base = target.value if isinstance(target, ast.Attribute) else target
                if isinstance(base, ast.Name) and base.id == "task":
                    assert not (isinstance(dec, ast.Call) and any(k.arg == "task_id" for k in dec.keywords)), (
                        f"{path.name}: task {node.name} renames itself with task_id=")
                    found.append((path.name, node))
    return found


def _calls(node: ast.AST, owner: str, name: str) -> bool:
    return any(
        isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and n.func.attr == name
        and isinstance(n.func.value, ast.Name) and n.func.value.id == owner
        for n in ast.walk(node)
    )


def test_every_dag_task_calls_the_function_of_its_name() -> None:
    tasks = _dag_tasks()
    assert {"prepare", "gate", "score", "drift", "rollout"} <= {t.name for _, t in tasks}, "the DAG files were not read"
    for file, task in tasks:
        assert _is_function(TASKS, task.name), f"{file}: task {task.name} has no function {TASKS}.{task.name}"
        assert _calls(task, "tasks", task.name), f"{file}: task {task.name} does not call tasks.{task.name}(...)"


def test_every_dvc_stage_is_a_function_and_runs_its_command() -> None:
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    for stage, spec in stages.items():
        assert stage in STEPS, f"stage {stage} has no function listed in STEPS"
        assert _is_function(STEPS[stage], stage), f"stage {stage}: no function {STEPS[stage]}.{stage}"
        command = re.search(r"-m pipelines (\w+)(.*)", spec["cmd"])
        assert command, f"stage {stage} does not run `python -m pipelines <command>`: {spec['cmd']}"
        assert command.group(1) == stage or (stage, command.group(1), command.group(2).strip()) == (
            "validate_training", "validate", "--training"), f"stage {stage} runs `{command.group(1)}`"


def _cli_function(name: str) -> ast.FunctionDef:
    """The source of the function the app runs for command ``name`` (in pipelines/cli/)."""
    callback = next(c.callback for c in app.registered_commands if c.callback and c.callback.__name__ == name)
    node = ast.parse(textwrap.dedent(inspect.getsource(callback))).body[0]
    assert isinstance(node, ast.FunctionDef)
    return node


def test_every_cli_command_is_a_function_of_its_name_and_calls_it() -> None:
    commands = typer.main.get_command(app).commands  # type: ignore[attr-defined]
    visible = {name for name, cmd in commands.items() if not cmd.hidden}
    assert visible == set(STEPS) - {"validate_training"}, "STEPS and the CLI's commands differ"
    assert {name for name, cmd in commands.items() if cmd.hidden} == set(DEPRECATED)
    for name in sorted(visible):
        assert _is_function(STEPS[name], name), f"command {name}: no function {STEPS[name]}.{name}"
        imports = {
            (n.module, a.name) for n in ast.walk(_cli_function(name)) if isinstance(n, ast.ImportFrom) for a in n.names
        }
        assert (STEPS[name], name) in imports, f"command {name} does not call {STEPS[name]}.{name}"


@pytest.mark.parametrize(("old", "new"), sorted(DEPRECATED.items()))
def test_a_deprecated_alias_runs_the_step_it_names(old: str, new: str) -> None:
    assert _calls(_cli_function(old), "log", "warning") and any(
        isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == new for n in ast.walk(_cli_function(old))
    ), f"`{old}` should warn, then run `{new}`"
