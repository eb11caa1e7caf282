"""Assemble the training window and the fresh holdout from validated days with matured labels.

Only data/validated/ is read, so a quarantined day can never reach training. The holdout is
the most recent ``holdout_days`` labelled days; training uses the ``window_days`` labelled days
before them, so the candidate is never evaluated on days it trained on.

After a shift (the drift job records it when it requests a retrain: ``settings.shift_file``)
the window follows it: only the days since the shift began, once
``drift.min_labelled_drifted_days`` of them have matured labels, so the retrain learns the new
regime instead of a blend dominated by the old one, and is judged on a post-shift holdout.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import pandas as pd

from pipelines.config import BINARY_CLASSES, Settings
from pipelines.errors import PipelineError
from pipelines.failpoint import failpoint
from pipelines.io import partition_files, read_frame, write_json, write_parquet


def join_labels(batch: pd.DataFrame, labels: pd.DataFrame, id_col: str, target: str, day: date) -> pd.DataFrame:
    """Attach the matured label to each row of one day (pure)."""
    for name, frame, cols in (("labels", labels, [id_col, target]), ("batch", batch, [id_col])):
        missing = [c for c in cols if c not in frame.columns]
        if missing:
            raise PipelineError(f"{name} for {day} lack columns {missing}")
    if labels[id_col].duplicated().any():
        raise PipelineError(f"labels for {day} have duplicated {id_col} values")
    out = batch.merge(labels[[id_col, target]], on=id_col, how="inner", validate="one_to_one")
    if out.empty:
        raise PipelineError(f"labels for {day} match no row of its batch (joined on {id_col})")
    return out


def binary_labels(values: pd.Series, positive_label: object, target: str) -> pd.Series:
    """The target as 0/1 (nullable Int64): 1 where it equals ``positive_label``, or, with no
    positive label set, the values themselves when they are 0/1 or booleans (pure)."""
    present = values.dropna()
    if positive_label is None:
        numeric = pd.to_numeric(present, errors="coerce")
        if numeric.isna().any() or not set(numeric.unique()) <= {0, 1}:
            seen = ", ".join(repr(v) for v in sorted(present.astype(str).unique())[:3])
            raise PipelineError(
                f"labels in {target!r} are not 0/1 ({seen}): set data.positive_label in params.yaml "
                "to the value that means positive"
            )
        return pd.to_numeric(values, errors="coerce").astype("Int64")
    kinds = sorted(present.astype(str).unique())
    if len(kinds) > BINARY_CLASSES:
        raise PipelineError(f"labels in {target!r} have {len(kinds)} values ({', '.join(kinds[:4])}...); a binary target has two")
    out = (values.astype(str) == str(positive_label)).astype("Int64")
    return out.mask(values.isna())


def split_days(labelled: list[date], window_days: int, holdout_days: int) -> tuple[list[date], list[date]]:
    """Pick training and holdout days from the sorted labelled days (pure)."""
    need = holdout_days + 1
    if len(labelled) < need:
        raise PipelineError(
            f"not enough validated days with matured labels: found {len(labelled)}, "
            f"need at least {need} (prepare.holdout_days + 1)"
        )
    days = sorted(labelled)
    holdout = days[-holdout_days:]
    train = days[:-holdout_days][-window_days:]
    return train, holdout


def follow_shift(
    labelled: list[date], since: date | None, min_days: int, holdout_days: int
) -> tuple[list[date], str | None]:
    """The labelled days a window may use after a shift (pure): the days since ``since`` once
    at least ``min_days`` of them (and a holdout plus one) have matured labels, else all of them.
    Returns (days, why the window follows the shift or not; None without a shift)."""
    if since is None:
        return labelled, None
    after = [d for d in labelled if d >= since]
    need = max(min_days, holdout_days + 1)
    if len(after) < need:
        return labelled, f"shift since {since}: {len(after)} labelled day(s) since, {need} needed; the usual window"
    return after, f"follows the shift since {since}: {len(after)} labelled day(s) since"


def read_shift(settings: Settings) -> dict[str, Any] | None:
    """The shift behind the last retrain request (written by the drift job), or None."""
    from pipelines.io import read_json

    f = settings.shift_file
    return read_json(f) if f.is_file() else None


def prepare(settings: Settings, as_of: date | None = None) -> dict[str, Any]:
    """Write data/training/{train,holdout}.parquet and window.json; return the window.

    ``as_of`` is the run's day (the training DAG passes its logical date): only days up to it
    are used, so a backfill of an older day trains on what existed then. Default: the latest
    validated day."""
    d, pp = settings.params.data, settings.params.prepare
    validated = partition_files(settings.validated_dir)
    labels = partition_files(settings.labels_dir)
    if not validated:
        raise PipelineError(f"no validated batch in {settings.validated_dir}: run `validate --all` first")
    validated = {day: path for day, path in validated.items() if as_of is None or day <= as_of}
    if not validated:
        raise PipelineError(f"no validated batch on or before {as_of} in {settings.validated_dir}")
    as_of = max(validated)  # the window ends at the last validated day on or before the run's day
    labels = {day: path for day, path in labels.items() if day <= as_of}
    labelled = [day for day in validated if day in labels]
    # After a shift the window follows it: a retrain learns the new regime, not a blend of both
    shift = read_shift(settings)
    since = date.fromisoformat(shift["since"]) if shift and shift.get("since") else None
    usable, why = follow_shift(
        labelled, since if since is not None and since <= as_of else None,
        settings.params.drift.min_labelled_drifted_days, pp.holdout_days,
    )
    train_days, holdout_days = split_days(usable, pp.window_days, pp.holdout_days)

    def assemble(days: list[date]) -> pd.DataFrame:
        frames = []
        for day in days:
            frame = join_labels(read_frame(validated[day]), read_frame(labels[day]), d.id_col, d.target, day)
            frames.append(frame)
        out = pd.concat(frames, ignore_index=True)
        out[d.target] = binary_labels(out[d.target], d.positive_label, d.target)
        # Stable order: the same files always give the same rows in the same order.
        return out.sort_values([d.timestamp_col, d.id_col], kind="mergesort").reset_index(drop=True)

    train = assemble(train_days)
    holdout = assemble(holdout_days)
    write_parquet(train, settings.training_dir / "train.parquet")
    failpoint("prepare")  # train.parquet is new, holdout.parquet and window.json are not
    write_parquet(holdout, settings.training_dir / "holdout.parquet")
    window = {
        "as_of": as_of.isoformat(),
        "train_days": [x.isoformat() for x in train_days],
        "holdout_days": [x.isoformat() for x in holdout_days],
        "train_rows": len(train),
        "holdout_rows": len(holdout),
        "train_default_rate": round(float(train[d.target].mean()), 6),
        # the shift file as read (pipelines/ops/stages.py re-runs this stage when it changes)
        "shift": shift,
        "shift_window": why,
        "follows_shift": since.isoformat() if since is not None and usable is not labelled else None,
    }
    write_json(window, settings.training_dir / "window.json")
    return window
