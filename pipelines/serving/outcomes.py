"""Live outcomes of a rollout: the per-request log-loss differences the sequential test judges.

Every request in a rollout is scored by both models (one answers, the other scores off the
response path) and both rows land in the online prediction log with the same ``request_id``.
Once a day's labels mature (data.labels_dir, as for batch), each such request gives
``logloss(champion) - logloss(challenger)``, in the order the requests came.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Any

import numpy as np
import pandas as pd

from pipelines.config import Settings
from pipelines.io import day_parts, find_partition, read_frame
from pipelines.serving.sequential import log_loss_terms

DAY_DIR = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def paired_outcomes(settings: Settings, champion_version: str, challenger_version: str,
                    cache: dict[str, tuple[Any, pd.DataFrame]] | None = None) -> np.ndarray:
    """Log-loss differences (champion minus challenger) of requests both versions scored and
    whose label has matured, oldest first (empty when there are none yet).

    ``cache`` (the server keeps one) holds each day's joined pairs, keyed by the versions, the
    day's part files and the labels file's mtime: a past day, whose log no longer grows, is read
    once, not at every check (a busy day is thousands of part files)."""
    d = settings.params.data
    folder = settings.online_predictions_dir
    frames = []
    for sub in sorted(folder.iterdir()) if folder.is_dir() else []:
        if not (sub.is_dir() and DAY_DIR.match(sub.name)):
            continue
        labels_path = find_partition(settings.labels_dir, date.fromisoformat(sub.name))
        if labels_path is None:  # no matured labels yet (today, most often): its parts are not listed
            continue
        parts = day_parts(folder, date.fromisoformat(sub.name))
        if not parts:
            continue
        key = (champion_version, challenger_version, len(parts), parts[-1].name, str(labels_path), labels_path.stat().st_mtime_ns)
        hit = cache.get(sub.name) if cache is not None else None
        if hit is not None and hit[0] == key:
            frames.append(hit[1])
            continue
        pred = pd.concat(
            [read_frame(p, ["request_id", d.id_col, d.timestamp_col, "model_version", "score"]) for p in parts], ignore_index=True
        )
        labels = read_frame(labels_path)[[d.id_col, d.target]].dropna()
        labels[d.id_col] = labels[d.id_col].astype(str)
        champ = pred[pred["model_version"] == champion_version]
        chal = pred[pred["model_version"] == challenger_version][["request_id", d.id_col, "score"]]
        both = champ.merge(chal, on=["request_id", d.id_col], suffixes=("_champion", "_challenger"))
        frames.append(both.merge(labels.drop_duplicates(d.id_col), on=d.id_col))
        if cache is not None:
            cache[sub.name] = (key, frames[-1])
    if not frames:
        return np.empty(0)
    rows = pd.concat(frames, ignore_index=True).sort_values(d.timestamp_col, kind="mergesort")
    y = rows[d.target].to_numpy(dtype="float64")
    return log_loss_terms(rows["score_champion"].to_numpy(), y) - log_loss_terms(rows["score_challenger"].to_numpy(), y)
