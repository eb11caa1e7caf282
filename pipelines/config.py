"""Load and validate params.yaml, the single source of configuration (its models: pipelines/params.py).

Every mistake in the file is one line that points into it, compiler style:
``params.yaml:LINE:COL: <problem>``, with the closest valid key for an unknown one.

No side effects at import: nothing is created, no tracking URI is set. Deployment settings
(MLflow URI, project root) come from environment variables read when a function asks.
"""

from __future__ import annotations

import difflib
import logging
import os
from functools import cached_property
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from pipelines.errors import PipelineError
from pipelines.params import (
    DataParams,
    DriftParams,
    EngineParams,
    GateParams,
    Params,
    PrepareParams,
    ProjectParams,
    Scenario,
    ScoreParams,
    ServeParams,
    SimulateParams,
    TrainParams,
    ValidateParams,
)

__all__ = [
    "BINARY_CLASSES", "DataParams", "DriftParams", "EngineParams", "GateParams", "Params", "PrepareParams", "ProjectParams",
    "Scenario",
    "ScoreParams", "ServeParams", "Settings", "SimulateParams", "TrainParams", "ValidateParams", "load_settings", "project_root",
]

class Settings:
    """Resolved configuration: params plus the project root all relative paths hang off."""

    def __init__(self, params: Params, root: Path) -> None:
        self.params = params
        self.root = root

    def path(self, *parts: str) -> Path:
        """A path inside the project (absolute paths in params are kept as they are)."""
        return self.root.joinpath(*parts)

    @cached_property
    def raw_dir(self) -> Path:
        return self.path(self.params.data.raw_dir)

    @cached_property
    def labels_dir(self) -> Path:
        return self.path(self.params.data.labels_dir)

    @property
    def validated_dir(self) -> Path:
        return self.path(self.params.data.validated_dir)

    @property
    def quarantine_dir(self) -> Path:
        return self.path(self.params.data.quarantine_dir)

    @property
    def training_dir(self) -> Path:
        return self.path(self.params.data.training_dir)

    @property
    def predictions_dir(self) -> Path:
        return self.path(self.params.data.predictions_dir)

    @property
    def shadow_predictions_dir(self) -> Path:
        """The challenger's scores of the same rows, beside the champion's."""
        return self.predictions_dir.with_name(self.predictions_dir.name + "_shadow")

    @property
    def online_predictions_dir(self) -> Path:
        """The online server's prediction log: <dir>/<day>/part-*.parquet."""
        return self.path(self.params.serve.predictions_dir)

    @property
    def reports_dir(self) -> Path:
        return self.path(self.params.data.reports_dir)

    @property
    def shift_file(self) -> Path:
        """The shift behind the last retrain request (written by the drift job): the training
        window follows it."""
        return self.reports_dir / "drift" / "shift.json"

    @cached_property
    def engine(self) -> EngineParams:
        """The engine setting, with the deprecated drift.engine / drift.spark_master of an older
        params file filling in when it has no engine section (arrow is local)."""
        p = self.params
        if "engine" in p.model_fields_set or (p.drift.engine is None and p.drift.spark_master is None):
            return p.engine
        old = {"name": "local" if p.drift.engine == "arrow" else p.drift.engine, "spark_master": p.drift.spark_master}
        return p.engine.model_copy(update={k: v for k, v in old.items() if v is not None})

    @property
    def models_dir(self) -> Path:
        return self.path("models")

    @property
    def expectations_dir(self) -> Path:
        return self.path("expectations")


def project_root() -> Path:
    """The project root: $PIPELINES_ROOT if set, else the folder holding this package."""
    env = os.environ.get("PIPELINES_ROOT")
    return Path(env).resolve() if env else Path(__file__).resolve().parent.parent


log = logging.getLogger(__name__)
SHOWN_VALUE_CHARS = 80  # a longer value given is not repeated in the error
BINARY_CLASSES = 2  # the target is binary: its labels have two classes
Key = tuple[str | int, ...]
Marks = dict[Key, tuple[yaml.Mark, yaml.Mark]]  # where each key (or list item) and its value start


def _shown(path: Path) -> str:
    """The file as a person would type it: relative to the working folder when inside it."""
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _marks(node: yaml.Node | None, shown: str, key: Key = (), out: Marks | None = None) -> Marks:
    """The position of every key and list item of a composed YAML document (a value's own position
    when it is a scalar, its key's otherwise); a key given twice is an error (YAML keeps the last)."""
    out = {} if out is None else out
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            here = (*key, k.value)
            if here in out:
                first = out[here][0]
                raise PipelineError(
                    f"{shown}:{k.start_mark.line + 1}:{k.start_mark.column + 1}: duplicate key {'.'.join(map(str, here))} "
                    f"(first at line {first.line + 1})"
                )
            out[here] = (k.start_mark, v.start_mark if isinstance(v, yaml.ScalarNode) else k.start_mark)
            _marks(v, shown, here, out)
    elif isinstance(node, yaml.SequenceNode):
        for i, v in enumerate(node.value):
            out[(*key, i)] = (v.start_mark, v.start_mark)
            _marks(v, shown, (*key, i), out)
    return out


def _fields(model: type[BaseModel]) -> dict[str, Any]:
    """A model's keys as params.yaml spells them (aliases), each with its type."""
    return {(f.alias or n): f.annotation for n, f in model.model_fields.items()}


def _all_keys(model: type[BaseModel], prefix: str = "") -> list[str]:
    keys = []
    for name, kind in _fields(model).items():
        keys.append(prefix + name)
        if isinstance(kind, type) and issubclass(kind, BaseModel):
            keys += _all_keys(kind, f"{prefix}{name}.")
    return keys


def _suggestion(key: Key) -> str:
    """ "; did you mean <closest valid key>?" for an unknown key, or "" when nothing is close."""
    model: Any = Params
    for part in key[:-1]:
        model = _fields(model).get(str(part)) if isinstance(model, type) and issubclass(model, BaseModel) else None
    here = _fields(model) if isinstance(model, type) and issubclass(model, BaseModel) else {}
    near = difflib.get_close_matches(str(key[-1]), list(here), n=1, cutoff=0.75)
    if near:
        return f"; did you mean {'.'.join(map(str, (*key[:-1], near[0])))}?"
    everywhere = _all_keys(Params)
    same_leaf = [k for k in everywhere if k.rpartition(".")[2] == str(key[-1])]  # in another section
    near = same_leaf[:3] or difflib.get_close_matches(".".join(map(str, key)), everywhere, n=1, cutoff=0.8)
    return f"; did you mean {' or '.join(near)}?" if near else ""


def _problem(e: dict[str, Any]) -> tuple[str, str]:
    """What pydantic found wrong, said as what was expected, and the value given (or "")."""
    msg = str(e["msg"]).removeprefix("Value error, ")
    msg = "expected " + msg.removeprefix("Input should be ") if msg.startswith("Input should be ") else msg
    value = e.get("input")
    shown = repr(value)
    return msg, ("" if isinstance(value, dict) or value is None or len(shown) > SHOWN_VALUE_CHARS else shown)


def _join(problems: list[str]) -> str:
    """The failed members of a union as one expectation: "expected a, b or c"."""
    if len(problems) > 1 and all(p.startswith("expected ") for p in problems):
        rest = [p.removeprefix("expected ") for p in problems]
        return "expected " + ", ".join(rest[:-1]) + " or " + rest[-1]
    return "; ".join(problems)


def _one_line(err: ValidationError, marks: Marks, shown: str) -> str:
    """Each problem as ``file:LINE:COL: key: problem`` (a key missing from the file points at its
    section), the problems of one key (the members of a union) joined, all on one line."""
    found: dict[Key, list[str]] = {}
    where: dict[Key, str] = {}
    given: dict[Key, str] = {}
    for e in err.errors():
        loc: Key = tuple("validate" if x == "validate_" else x for x in e["loc"])
        known = loc
        while known and known not in marks:
            known = known[:-1]
        key = loc[: len(known) + 1] if e["type"] == "missing" else known  # union member names are dropped
        dotted = ".".join(map(str, key))
        if e["type"] == "extra_forbidden":
            text = f"unknown key {dotted}{_suggestion(key)}"
        elif e["type"] == "missing":
            text = "required key is missing"
        else:
            text, value = _problem(e)
            given.setdefault(key, value)
        if known:
            key_mark, value_mark = marks[known]
            mark = value_mark if e["type"] not in ("extra_forbidden", "missing") and key == known else key_mark
            where.setdefault(key, f"{shown}:{mark.line + 1}:{mark.column + 1}: ")
        else:
            where.setdefault(key, f"{shown}: ")
        if text not in found.setdefault(key, []):
            found[key].append(text)
    lines = []
    for key, problems in found.items():
        named = "" if not key or problems[0].startswith("unknown key") else ".".join(map(str, key)) + ": "
        got = f", got {given[key]}" if given.get(key) else ""
        lines.append(f"{where[key]}{named}{_join(problems)}{got}")
    return "; ".join(lines)


def _parse(text: str, shown: str) -> tuple[Any, Marks]:
    """The document and where each key sits in it; a YAML syntax error as file:LINE:COL."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        return (loader.construct_document(node) if node is not None else None), _marks(node, shown)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        what = " ".join(x for x in (exc.problem, f"({exc.context})" if exc.context else "") if x) or "not valid YAML"
        at = f"{mark.line + 1}:{mark.column + 1}:" if mark else ""
        raise PipelineError(f"{shown}:{at} {what}") from exc
    except yaml.YAMLError as exc:
        raise PipelineError(f"{shown}: not valid YAML: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from exc
    finally:
        loader.dispose()


def load_settings(params_file: Path | str | None = None) -> Settings:
    """Read and validate params.yaml; raise PipelineError with a one-line reason if it is wrong."""
    root = project_root()
    path = Path(params_file) if params_file else root / "params.yaml"
    if not path.is_file():
        raise PipelineError(f"params file not found: {path}")
    shown = _shown(path)
    raw, marks = _parse(path.read_text(), shown)
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise PipelineError(f"{shown}:1:1: must be a mapping of sections (project, data, ...)")
    try:
        params = Params.model_validate(raw)
    except ValidationError as exc:
        raise PipelineError(_one_line(exc, marks, shown)) from exc
    _deprecated_keys(params, marks, shown)
    return Settings(params, path.resolve().parent)


DEPRECATED = {("drift", "engine"): "name", ("drift", "spark_master"): "spark_master"}  # -> engine.<key>
_warned: set[tuple[str, Key]] = set()


def _deprecated_keys(params: Params, marks: Marks, shown: str) -> None:
    """A warning (once per file and key in a process) for each deprecated key the file still has;
    an error when it disagrees with the engine section that replaces it."""
    for key, new in DEPRECATED.items():
        old = getattr(params.drift, key[1])
        if old is None:
            continue
        mark = marks[key][0] if key in marks else None
        where = f"{shown}:{mark.line + 1}:{mark.column + 1}: " if mark else f"{shown}: "
        value = "local" if old == "arrow" else old
        if "engine" in params.model_fields_set and getattr(params.engine, new) != value:
            raise PipelineError(
                f"{where}drift.{key[1]} {old!r} disagrees with engine.{new} {getattr(params.engine, new)!r}: "
                f"drift.{key[1]} is deprecated, remove it"
            )
        if (shown, key) not in _warned:
            _warned.add((shown, key))
            log.warning("%sdrift.%s is deprecated: use engine.%s (one engine setting for drift, scoring and live "
                        "performance)%s", where, key[1], new, "; arrow is now called local" if old == "arrow" else "")
