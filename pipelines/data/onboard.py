"""Onboarding your own data (`python -m pipelines init`): inspect the daily files, infer the
column roles, write the `data` section of params.yaml and the sizes that fit the data, and
propose both validation suites, for a person to review before the first `make run`.

Every problem a first look at the files can find fails here with one line, before anything
is written: an empty folder, schemas that differ across days, no timestamp column, a target
missing from the labels, more than two label values, too few labelled days, ids that do not
join.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd

from pipelines.config import BINARY_CLASSES, Settings, load_settings
from pipelines.errors import PipelineError
from pipelines.io import partition_files, read_frame, write_json

MAX_FILES_READ = 90             # days read to infer roles (spread over the whole range)
MIN_TRAIN_DAYS = 2              # a training window needs at least this many labelled days...
MIN_HOLDOUT_ROWS = 1000         # ...and the holdout about this many rows for a stable AUC interval
MAX_SLICE_LEVELS = 8            # a categorical column with more values makes too many slices
HIGH_CARDINALITY = 0.5          # a text column with more distinct values than this share of rows
                                # is an identifier or free text, not a feature
MIN_IDENTIFIER_VALUES = 100     # ...when it also has more distinct values than this
MIN_TIMESTAMP_SHARE = 0.99      # the timestamp column holds a date-time on its file's day in this share of rows
MIN_ID_MATCH = 0.5              # the id column matches at least this share of the labels to raw rows of their day
SHOWN_LABEL_VALUES = 5          # a non-binary target's values named in its error
MIN_SLICE_SHARE = 0.05          # every value of a slicing column holds at least this share of rows
MIN_BAND_VALUES = 10            # a numerical column with fewer distinct values is not cut into bands
BOOLEAN_LABELS = {"0", "1", "True", "False", "0.0", "1.0"}


@dataclass
class Inspection:
    """What init found in the files."""

    raw_days: dict[date, Path]
    label_days: dict[date, Path]
    raw: pd.DataFrame                     # the read raw days, concatenated
    labels: pd.DataFrame                  # the read label days, concatenated
    id_col: str = ""
    timestamp_col: str = ""
    numerical: list[str] = field(default_factory=list)
    categorical: list[str] = field(default_factory=list)
    excluded: dict[str, str] = field(default_factory=dict)
    label_values: list[str] = field(default_factory=list)

    @property
    def labelled_days(self) -> list[date]:
        return sorted(set(self.raw_days) & set(self.label_days))


def _days(folder: Path, what: str) -> dict[date, Path]:
    if not folder.is_dir():
        raise PipelineError(f"{what} folder not found: {folder}")
    days = partition_files(folder)
    if not days:
        raise PipelineError(f"{what} folder {folder} is empty: expected one file per day, <YYYY-MM-DD>.parquet or .csv")
    return days


def _spread(days: dict[date, Path], n: int = MAX_FILES_READ) -> dict[date, Path]:
    """At most n days, spread evenly from the first to the last (always both ends)."""
    keys = sorted(days)
    if len(keys) <= n:
        return days
    step = (len(keys) - 1) / (n - 1)
    return {keys[round(i * step)]: days[keys[round(i * step)]] for i in range(n)}


def _read_days(days: dict[date, Path], what: str) -> pd.DataFrame:
    """Read the days and check that every file has the first one's columns."""
    frames, first = [], None
    for day, path in _spread(days).items():
        frame = read_frame(path)
        cols = list(frame.columns)
        if first is None:
            first = (path, cols)
        elif set(cols) != set(first[1]):
            missing = sorted(set(first[1]) - set(cols))
            extra = sorted(set(cols) - set(first[1]))
            raise PipelineError(
                f"{what} files' schemas differ: {path.name} "
                + (f"lacks {missing}" if missing else "")
                + (" and " if missing and extra else "")
                + (f"has extra {extra}" if extra else "")
                + f" compared with {first[0].name}"
            )
        frames.append(frame.assign(_day=day))
    return pd.concat(frames, ignore_index=True)


def _timestamp_column(raw: pd.DataFrame, exclude: set[str]) -> str:
    """The column holding each event's date-time on its file's own day (the daily suite checks
    exactly that)."""
    best, best_share = "", 0.0
    for col in raw.columns:
        if col in exclude or col == "_day":
            continue
        values = raw[col]
        if pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
            continue
        parsed = (
            pd.to_datetime(values, errors="coerce", utc=True, format="mixed")
            if not pd.api.types.is_datetime64_any_dtype(values)
            else values
        )
        if not pd.api.types.is_datetime64_any_dtype(parsed):
            continue
        on_day = (pd.Series(parsed).dt.date == raw["_day"]).mean()
        if on_day > best_share:
            best, best_share = col, float(on_day)
    if best_share < MIN_TIMESTAMP_SHARE:
        raise PipelineError(
            "no timestamp column: no column of the raw files holds date-times on each file's own day "
            "(the event time; the daily suite expects a file's events on its day)"
        )
    return best


def _id_column(inspection: Inspection, target: str) -> str:
    """The column shared by raw and labels files, unique within a raw day, whose values join
    best day by day."""
    raw, labels = inspection.raw, inspection.labels
    shared = [c for c in labels.columns if c in raw.columns and c not in (target, "_day")]
    if not shared:
        raise PipelineError(
            "ids do not join: the labels files share no column with the raw files "
            f"(labels have {sorted(c for c in labels.columns if c != '_day')})"
        )
    days = [d for d in inspection.labelled_days if d in set(labels["_day"]) and d in set(raw["_day"])]
    scores = {}
    for col in shared:
        if raw.groupby("_day")[col].apply(lambda s: s.duplicated().any()).any():
            continue
        matched = total = 0
        for day in days:
            ids = set(raw.loc[raw["_day"] == day, col].astype(str))
            lab = labels.loc[labels["_day"] == day, col].astype(str)
            matched += int(lab.isin(ids).sum())
            total += len(lab)
        scores[col] = matched / total if total else 0.0
    if not scores or max(scores.values()) < MIN_ID_MATCH:
        detail = ", ".join(f"{c}: {s:.0%}" for c, s in scores.items()) or "no shared column is unique within a day"
        raise PipelineError(f"ids do not join: labels match few rows of the raw batch of the same day ({detail})")
    return max(scores, key=lambda c: scores[c])


def _label_values(labels: pd.DataFrame, target: str, positive_label: str | None) -> list[str]:
    values = sorted(labels[target].dropna().astype(str).unique())
    if len(values) > BINARY_CLASSES:
        shown = ", ".join(values[:SHOWN_LABEL_VALUES]) + ("..." if len(values) > SHOWN_LABEL_VALUES else "")
        raise PipelineError(f"target {target!r} has {len(values)} values ({shown}): a binary target has two")
    if len(values) < BINARY_CLASSES:
        raise PipelineError(f"target {target!r} has a single value ({', '.join(values) or 'none'}): nothing to learn")
    if positive_label is None and not set(values) <= BOOLEAN_LABELS:
        raise PipelineError(
            f"target {target!r} has the values {values[0]!r} and {values[1]!r}: "
            "pass --positive-label with the one that means positive"
        )
    if positive_label is not None and positive_label not in values:
        raise PipelineError(f"--positive-label {positive_label!r} is not a value of {target!r} ({values[0]!r}, {values[1]!r})")
    return values


def _feature_roles(raw: pd.DataFrame, skip: set[str]) -> tuple[list[str], list[str], dict[str, str]]:
    numerical, categorical, excluded = [], [], {}
    for col in raw.columns:
        if col in skip or col == "_day":
            continue
        values = raw[col]
        distinct = values.nunique(dropna=True)
        if distinct == 0:
            excluded[col] = "always null"
        elif distinct == 1:
            excluded[col] = "a single value"
        elif pd.api.types.is_bool_dtype(values):
            categorical.append(col)
        elif pd.api.types.is_numeric_dtype(values):
            numerical.append(col)
        elif pd.api.types.is_datetime64_any_dtype(values):
            excluded[col] = "a date-time (derive features from it upstream)"
        elif distinct > HIGH_CARDINALITY * values.notna().sum() and distinct > MIN_IDENTIFIER_VALUES:
            excluded[col] = f"{distinct} distinct values: an identifier or free text"
        else:
            categorical.append(col)
    return numerical, categorical, excluded


def inspect(raw_dir: Path, labels_dir: Path, target: str, positive_label: str | None) -> Inspection:
    """Read the files and infer every role; each problem is one PipelineError line."""
    insp = Inspection(_days(raw_dir, "raw"), _days(labels_dir, "labels"), pd.DataFrame(), pd.DataFrame())
    insp.raw = _read_days(insp.raw_days, "raw")
    insp.labels = _read_days({d: p for d, p in insp.label_days.items() if d in insp.raw_days} or insp.label_days, "labels")
    if target not in insp.labels.columns:
        raise PipelineError(
            f"target {target!r} is not a column of the labels files "
            f"(they have {sorted(c for c in insp.labels.columns if c != '_day')})"
        )
    if target in insp.raw.columns:
        raise PipelineError(f"target {target!r} is a column of the raw files: the daily batches must not carry the label")
    insp.label_values = _label_values(insp.labels, target, positive_label)
    if not insp.labelled_days:
        raise PipelineError(
            "no day has both a raw file and a labels file: ids cannot join (are the files named by the same days?)"
        )
    insp.id_col = _id_column(insp, target)
    insp.timestamp_col = _timestamp_column(insp.raw, {insp.id_col})
    insp.numerical, insp.categorical, insp.excluded = _feature_roles(insp.raw, {insp.id_col, insp.timestamp_col})
    if not insp.numerical and not insp.categorical:
        raise PipelineError("no feature column left once id and timestamp are set aside")
    return insp


def suggest_sizes(labelled_days: int, rows_per_day: float, min_day_rows: int) -> dict[str, int]:
    """Holdout of about MIN_HOLDOUT_ROWS rows (at most a quarter of the days), the training
    window on every other labelled day (pure)."""
    holdout = max(1, min(math.ceil(MIN_HOLDOUT_ROWS / max(rows_per_day, 1.0)), labelled_days // 4))
    window = min(labelled_days - holdout, 365)
    if window < MIN_TRAIN_DAYS:
        raise PipelineError(
            f"too few labelled days: {labelled_days}; a training window of {MIN_TRAIN_DAYS} days plus a holdout of "
            f"{holdout} needs at least {MIN_TRAIN_DAYS + holdout}"
        )
    holdout_rows = holdout * rows_per_day
    return {
        "window_days": int(window),
        "holdout_days": int(holdout),
        "min_rows": max(1, min_day_rows // 2),
        "min_slice_rows": max(30, round(holdout_rows * 0.05)),
    }


def suggest_slices(raw: pd.DataFrame, numerical: list[str], categorical: list[str]) -> dict[str, list[float] | None]:
    """Up to two categorical columns with few, well-filled values (one slice per value) and one
    numerical column in quartile bands (pure)."""
    slices: dict[str, list[float] | None] = {}
    cats = []
    for col in categorical:
        shares = raw[col].value_counts(normalize=True)
        if 2 <= len(shares) <= MAX_SLICE_LEVELS and shares.min() >= MIN_SLICE_SHARE:  # noqa: PLR2004 a slice needs two values
            cats.append((len(shares), col))
    for _, col in sorted(cats)[:2]:
        slices[col] = None
    for col in numerical:
        values = pd.to_numeric(raw[col], errors="coerce").dropna()
        if values.nunique() < MIN_BAND_VALUES:
            continue
        edges = sorted({float(f"{q:.2g}") for q in values.quantile([0.25, 0.5, 0.75])})
        if len(edges) >= 2:  # noqa: PLR2004 two distinct quartiles make bands
            slices[col] = edges
            break
    return slices


def write_params(params_file: Path, updates: dict[str, dict[str, Any]]) -> None:
    """Write the updates into params.yaml, keeping its comments and order (ruamel round trip)."""
    from ruamel.yaml import YAML
    from ruamel.yaml.comments import CommentedSeq
    from ruamel.yaml.scalarstring import DoubleQuotedScalarString
    from yaml import safe_load as yaml_safe_load

    yaml = YAML()
    yaml.preserve_quotes = True
    yaml.width = 4096  # never re-wrap a long flow list (it would leave trailing spaces)
    yaml.representer.add_representer(type(None), lambda r, _: r.represent_scalar("tag:yaml.org,2002:null", "null"))
    doc = yaml.load(params_file.read_text())
    def plain(v: Any) -> Any:
        # A string YAML would read as something else ("Yes" is a boolean to YAML 1.1 readers
        # such as PyYAML and DVC) is written quoted.
        if isinstance(v, str) and yaml_safe_load(v) != v:
            return DoubleQuotedScalarString(v)
        if isinstance(v, list):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {plain(k): plain(x) for k, x in v.items()}
        return v

    for name, values in updates.items():
        section = doc.setdefault(name, {})
        for key, given in values.items():
            value = plain(given)
            if isinstance(value, list):
                seq = CommentedSeq(value)
                seq.fa.set_flow_style()
                value = seq
            elif isinstance(value, dict):
                value = {k: (CommentedSeq(v) if isinstance(v, list) else v) for k, v in value.items()}
                for v in value.values():
                    if isinstance(v, CommentedSeq):
                        v.fa.set_flow_style()
            section[key] = value  # ruamel keeps the key's comment
    tmp = params_file.with_name(params_file.name + ".tmp")
    with tmp.open("w") as fh:
        yaml.dump(doc, fh)
    tmp.replace(params_file)


def _relative(path: Path, root: Path) -> str:
    try:
        return str(path.resolve().relative_to(root.resolve()))
    except ValueError:
        return str(path.resolve())


def init(
    root: Path, raw_dir: Path, labels_dir: Path, target: str, positive_label: str | None = None,
    params_file: Path | None = None,
) -> dict[str, Any]:
    """Inspect the files, write params.yaml's data section and sizes, propose both suites."""
    from pipelines.data.prepare import binary_labels
    from pipelines.data.validate import normalize, propose_suite

    params_file = params_file or root / "params.yaml"
    raw_dir, labels_dir = (p if p.is_absolute() else root / p for p in (raw_dir, labels_dir))
    insp = inspect(raw_dir, labels_dir, target, positive_label)
    per_day = insp.raw.groupby("_day").size()
    sizes = suggest_sizes(len(insp.labelled_days), float(per_day.median()), int(per_day.min()))
    slices = suggest_slices(insp.raw, insp.numerical, insp.categorical)
    data = {
        "source": "files",
        "raw_dir": _relative(raw_dir, root),
        "labels_dir": _relative(labels_dir, root),
        "id_col": insp.id_col,
        "timestamp_col": insp.timestamp_col,
        "target": target,
        "positive_label": positive_label,
        "numerical": insp.numerical,
        "categorical": insp.categorical,
    }
    write_params(params_file, {
        "data": data,
        "prepare": {"window_days": sizes["window_days"], "holdout_days": sizes["holdout_days"]},
        "validate": {"min_rows": sizes["min_rows"]},
        "gate": {"slices": slices, "min_slice_rows": sizes["min_slice_rows"]},
    })
    settings: Settings = load_settings(params_file)  # the written file must load: it is checked here
    batch = normalize(insp.raw.drop(columns="_day"), settings)
    labels = insp.labels[[insp.id_col, target]]
    training = batch.merge(labels, on=insp.id_col, how="inner")
    training[target] = binary_labels(training[target], positive_label, target)
    proposed = {}
    for kind, frame in (("daily_batch", batch), ("training_set", training)):
        dest = settings.expectations_dir / f"{kind}.proposed.json"
        write_json(propose_suite(settings, frame, kind), dest)
        proposed[kind] = _relative(dest, root)
    return {
        "params": _relative(params_file, root),
        "raw_days": len(insp.raw_days),
        "labelled_days": len(insp.labelled_days),
        "rows_per_day": float(per_day.median()),
        "data": data,
        "label_values": insp.label_values,
        "excluded": insp.excluded,
        **sizes,
        "slices": slices,
        "proposed_suites": proposed,
    }


def review_lines(res: dict[str, Any]) -> list[str]:
    """What init wrote, what to review, and the next commands (for people)."""
    d = res["data"]
    lines = [
        f"Inspected {res['raw_days']} raw days ({res['rows_per_day']:.0f} rows a day), {res['labelled_days']} with labels.",
        f"Wrote {res['params']} - review these roles:",
        f"  id: {d['id_col']}   timestamp: {d['timestamp_col']}   target: {d['target']}"
        + (f" (positive: {d['positive_label']!r} of {res['label_values']})" if d["positive_label"] is not None else ""),
        f"  numerical ({len(d['numerical'])}): {', '.join(d['numerical']) or '-'}",
        f"  categorical ({len(d['categorical'])}): {', '.join(d['categorical']) or '-'}",
    ]
    lines += [f"  excluded: {col} ({why})" for col, why in res["excluded"].items()]
    lines += [
        f"  prepare: window_days {res['window_days']}, holdout_days {res['holdout_days']};  validate.min_rows {res['min_rows']}",
        f"  gate.slices: {res['slices'] or 'none'} (min_slice_rows {res['min_slice_rows']})",
        "Proposed suites - review ranges, allowed categories and null bounds, then adopt them:",
    ]
    for path in res["proposed_suites"].values():
        lines.append(f"  mv {path} {path.replace('.proposed.json', '.json')}")
    lines.append("Then: make run")
    return lines
