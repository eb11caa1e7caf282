"""Assemble the training window and the fresh holdout from validated days with matured labels.

Only data/validated/ is read, so a quarantined day can never reach training. The holdout is
the most recent ``holdout_days`` labelled days; training uses the ``window_days`` labelled days
before them, so the candidate is never evaluated on days it trained on.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import pandas as pd

from pipelines.config import Settings
from pipelines.errors import PipelineError
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


def prepare(settings: Settings) -> dict[str, Any]:
    """Write data/training/{train,holdout}.parquet and window.json; return the window."""
    d, pp = settings.p.data, settings.p.prepare
    validated = partition_files(settings.validated_dir)
    labels = partition_files(settings.labels_dir)
    labelled = [day for day in validated if day in labels]
    train_days, holdout_days = split_days(labelled, pp.window_days, pp.holdout_days)

    def assemble(days: list[date]) -> pd.DataFrame:
        frames = []
        for day in days:
            frame = join_labels(read_frame(validated[day]), read_frame(labels[day]), d.id_col, d.target, day)
            frames.append(frame)
        out = pd.concat(frames, ignore_index=True)
        out[d.target] = pd.to_numeric(out[d.target], errors="coerce")
        # Stable order: the same files always give the same rows in the same order.
        return out.sort_values([d.timestamp_col, d.id_col], kind="mergesort").reset_index(drop=True)

    train = assemble(train_days)
    holdout = assemble(holdout_days)
    write_parquet(train, settings.training_dir / "train.parquet")
    write_parquet(holdout, settings.training_dir / "holdout.parquet")
    window = {
        "train_days": [x.isoformat() for x in train_days],
        "holdout_days": [x.isoformat() for x in holdout_days],
        "train_rows": int(len(train)),
        "holdout_rows": int(len(holdout)),
        "train_default_rate": round(float(train[d.target].mean()), 6),
    }
    write_json(window, settings.training_dir / "window.json")
    return window
