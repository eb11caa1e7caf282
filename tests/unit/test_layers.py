"""The package's map, enforced: import-linter contracts (pyproject.toml) and a truthful dvc.yaml."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]


def test_import_linter_contracts_are_kept() -> None:
    lint = Path(sys.executable).parent / "lint-imports"
    out = subprocess.run([str(lint), "--no-cache"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]
    assert "0 broken" in out.stdout and "4 kept" in out.stdout, out.stdout[-2000:]


def _modules() -> dict[str, Path]:
    mods = {}
    for f in (REPO / "pipelines").rglob("*.py"):
        rel = f.relative_to(REPO).with_suffix("")
        mods[".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)] = f
    return mods


def _nodes(tree: ast.AST, local: bool) -> list[ast.AST]:
    """Every node of ``tree``; without ``local``, none inside a function (what runs at import)."""
    found, todo = [], [tree]
    while todo:
        node = todo.pop()
        found.append(node)
        todo += [c for c in ast.iter_child_nodes(node) if local or not isinstance(c, (ast.FunctionDef, ast.AsyncFunctionDef))]
    return found


def _reachable(start: str, mods: dict[str, Path], local: bool = True) -> set[str]:
    """Every module ``start`` can import (module level, and inside a function unless not ``local``), and their packages."""
    seen: set[str] = set()
    todo = [start]
    while todo:
        m = todo.pop()
        if m in seen:
            continue
        seen.add(m)
        parts = m.split(".")
        todo += [".".join(parts[:i]) for i in range(1, len(parts))]
        for node in _nodes(ast.parse(mods[m].read_text()), local):
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            for name in names:
                n = name
                while n and n not in mods:
                    n = n.rpartition(".")[0]
                if n and n != m:
                    todo.append(n)
    return seen


# The function each stage's command runs, and what the CLI itself runs around every command.
STAGE_ENTRY = {
    "prepare": "pipelines.data.prepare",
    "validate_training": "pipelines.data.validate_modes",  # `validate --training`
    "train": "pipelines.model.train",
    "gate": "pipelines.model.gate",
    "promote": "pipelines.ops.promote",
}
CLI = ["pipelines.config", "pipelines.log", "pipelines.errors"]  # the global options, the settings, the one error type
STAGE_CHECK = "pipelines.monitoring.inflight"  # every stage command first checks the training marker (cli/common._run)
ENTRY_POINT = "pipelines.__main__"  # `python -m pipelines` loads it and every module it imports at module level
NOT_RUN_BY_PROMOTE = {"pipelines.ops.stages", "pipelines.ops.reproduce"}  # promote_and_push only (after the stage)


def test_every_stage_depends_on_the_code_it_runs() -> None:
    mods = _modules()
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    assert set(stages) == set(STAGE_ENTRY)
    loaded = _reachable(ENTRY_POINT, mods, local=False)
    assert "pipelines.cli.model" in loaded, "the CLI's command modules were not followed"
    for name, entry in STAGE_ENTRY.items():
        deps = [d for d in stages[name]["deps"] if d.startswith("pipelines")]
        needed = set().union(*(_reachable(m, mods) for m in [entry, *CLI, STAGE_CHECK])) | loaded
        if name == "promote":
            needed -= NOT_RUN_BY_PROMOTE
        paths = {mods[mod].relative_to(REPO).as_posix() for mod in needed}
        for path in sorted(paths):
            covered = any(path == d or path.startswith(d.rstrip("/") + "/") for d in deps)
            assert covered, f"stage {name} runs {path} but does not depend on it"
        stale = [d for d in deps if not any(p == d or p.startswith(d.rstrip("/") + "/") for p in paths)]
        assert not stale, f"stage {name} depends on code it does not run: {stale}"


def test_every_data_path_comes_from_params() -> None:
    text = (REPO / "dvc.yaml").read_text()
    hard = [line.strip() for line in text.splitlines() if re.search(r"(^|[\s-])data/", line) and not line.strip().startswith("#")]
    assert hard == [], f"hard-coded data paths in dvc.yaml: {hard}"
    assert "${data.labels_dir}" in text and "${data.validated_dir}" in text


def test_every_import_of_the_package_resolves() -> None:
    """Imports inside functions run only when the function does, and import-linter skips a
    module that does not exist: after a move, a stale `from pipelines.gate import ...` would
    hide until that code path ran in production. Check each one resolves, name included."""
    import ast
    import importlib

    stale = []
    for path in sorted((REPO / "pipelines").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("pipelines"):
                module = importlib.import_module(node.module)
                stale += [f"{path.relative_to(REPO)}: {node.module}.{a.name}" for a in node.names
                          if not hasattr(module, a.name) and importlib.util.find_spec(f"{node.module}.{a.name}") is None]
            elif isinstance(node, ast.Import):
                for a in node.names:
                    if a.name.startswith("pipelines"):
                        importlib.import_module(a.name)
    assert not stale, stale


def test_modules_and_functions_stay_small() -> None:
    """No module in pipelines/ over 400 lines, no function over 60: a module with one job, a
    function a reader holds in their head."""
    import ast

    big = []
    for path in sorted((REPO / "pipelines").rglob("*.py")):
        text = path.read_text()
        rel = path.relative_to(REPO).as_posix()
        if len(text.splitlines()) > 400:
            big.append(f"{rel}: {len(text.splitlines())} lines")
        functions = [n for n in ast.walk(ast.parse(text)) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]
        big.extend(f"{rel}:{n.lineno} {n.name}: {n.end_lineno - n.lineno + 1} lines"
                   for n in functions if n.end_lineno - n.lineno + 1 > 60)
    assert not big, "over the size limits:\n" + "\n".join(big)
