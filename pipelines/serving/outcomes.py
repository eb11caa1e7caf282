"""Live outcomes of a rollout: the paired log-loss differences the sequential test judges.

Every request in a rollout is scored by both models (one answers, the other scores off the
response path) and both rows land in the online prediction log with the same ``request_id``.
Once a day's labels mature (data.labels_dir, as for batch), the requests of that day are joined
with them on the entity id. An entity scored several times that day has *one* label, so its
requests are not independent outcomes: they give **one** paired difference, the mean of
``logloss(champion) - logloss(challenger)`` over its requests. Counting each request instead
would let one busy entity's label count many times, and the test would be sure far too early.

The outcomes come in the order they matured: day by day as each labels file was written (its
mtime), and within a day in the order of each entity's first request. So a day whose labels
come late is added after the ones already judged, never in their midst: every check sees the
sequence the previous check saw, plus new outcomes at its end, which is what a test that looks
after every outcome needs.

Nothing is dropped in silence: a request with a non-finite score from either model is left out
and counted; scores outside ``[serve.extreme_score, 1 - serve.extreme_score]`` (or not finite)
are counted per model for the extreme-score guardrail; a labels file with values other than
0/1 is named in ``label_problem`` (its bad rows are left out) for the rollout to hold on.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import numpy as np
import pandas as pd

from pipelines.config import Settings
from pipelines.data.prepare import binary_labels
from pipelines.errors import PipelineError, first_line
from pipelines.io import day_parts, find_partition, read_frame
from pipelines.serving.sequential import extreme_count, log_loss_terms

DAY_DIR = re.compile(r"^\d{4}-\d{2}-\d{2}$")


@dataclass(frozen=True)
class Outcomes:
    """Matured outcomes of a rollout, and what was left out of them."""

    diffs: np.ndarray = field(default_factory=lambda: np.empty(0))  # one per entity and label, oldest first
    requests: int = 0  # paired requests with a matured label (non-finite ones included)
    nonfinite: int = 0  # of them, left out: a score of either model is not finite
    extreme_challenger: int = 0  # of them, the challenger's score is extreme or not finite
    extreme_champion: int = 0
    label_problem: str = ""  # one line naming a labels file with values other than 0/1; "" when none

    def summary(self) -> dict[str, Any]:
        """The counts, for the rollout's records."""
        return {
            "matured_outcomes": len(self.diffs),
            "requests": self.requests,
            "nonfinite_dropped": self.nonfinite,
            "extreme_challenger": self.extreme_challenger,
            "extreme_champion": self.extreme_champion,
            "label_problem": self.label_problem,
        }


def outcome_labels(labels: pd.Series, positive_label: object, target: str, where: str) -> tuple[pd.Series, str]:
    """The labels as 0/1 the way training and live performance read them (``data.positive_label``,
    pipelines/data/prepare.py), and one line naming the problem ("" when there is none); with a
    problem, no label is used."""
    try:
        return binary_labels(labels, positive_label, target), ""
    except PipelineError as exc:
        return labels.iloc[:0], f"{where}: {first_line(str(exc))}"


def paired_outcomes(settings: Settings, champion_version: str, challenger_version: str,
                    cache: dict[str, tuple[Any, pd.DataFrame, str]] | None = None) -> Outcomes:
    """Paired outcomes of requests both versions scored and whose label has matured, one per
    entity and day's label, oldest first (:class:`Outcomes`; empty when there are none yet).

    ``cache`` (the server keeps one) holds each day's joined pairs, keyed by the versions, the
    names of the day's files (its parts, or its compacted files once compacted: pipelines/serving/compact.py) and
    the labels file's mtime: a past day, whose log no longer grows, is read
    once, not at every check (a busy day is thousands of part files)."""
    d = settings.params.data
    folder = settings.online_predictions_dir
    frames, problems = [], []
    for sub in sorted(folder.iterdir()) if folder.is_dir() else []:
        if not (sub.is_dir() and DAY_DIR.match(sub.name)):
            continue
        labels_path = find_partition(settings.labels_dir, date.fromisoformat(sub.name))
        if labels_path is None:  # no matured labels yet (today, most often): its parts are not listed
            continue
        parts = day_parts(folder, date.fromisoformat(sub.name))
        if not parts:
            continue
        key = (champion_version, challenger_version, tuple(p.name for p in parts), str(labels_path),
               labels_path.stat().st_mtime_ns)
        hit = cache.get(sub.name) if cache is not None else None
        if hit is not None and hit[0] == key:
            frames.append(hit[1])
            problems.append(hit[2])
            continue
        pred = pd.concat(
            [read_frame(p, ["request_id", d.id_col, d.timestamp_col, "model_version", "score"]) for p in parts], ignore_index=True
        )
        champ = pred[pred["model_version"] == champion_version]
        chal = pred[pred["model_version"] == challenger_version][["request_id", d.id_col, "score"]]
        both = champ.merge(chal, on=["request_id", d.id_col], suffixes=("_champion", "_challenger"))
        labels = read_frame(labels_path)[[d.id_col, d.target]].dropna()
        labels[d.id_col] = labels[d.id_col].astype(str)
        # only the labels of this rollout's pairs are read: a bad file of a day it never saw holds nothing
        labels = labels[labels[d.id_col].isin(both[d.id_col].astype(str))]
        binary, problem = outcome_labels(labels[d.target], d.positive_label, d.target, labels_path.name)
        labels = labels.loc[binary.index].assign(**{d.target: binary})
        joined = both.merge(labels.drop_duplicates(d.id_col), on=d.id_col)
        joined = joined.assign(_day=sub.name, _matured=labels_path.stat().st_mtime_ns)
        frames.append(joined)
        problems.append(problem)
        if cache is not None:
            cache[sub.name] = (key, joined, problem)
    label_problem = "; ".join(p for p in problems if p)
    if not frames:
        return Outcomes(label_problem=label_problem)
    return _outcomes(pd.concat(frames, ignore_index=True), d.id_col, d.timestamp_col, d.target,
                     settings.params.serve.extreme_score, label_problem)


def _outcomes(rows: pd.DataFrame, id_col: str, timestamp_col: str, target: str, extreme: float, label_problem: str) -> Outcomes:
    """Count, drop the non-finite, and average each entity's requests into one difference."""
    champion = rows["score_champion"].to_numpy(dtype="float64")
    challenger = rows["score_challenger"].to_numpy(dtype="float64")

    finite = np.isfinite(champion) & np.isfinite(challenger)
    ok = rows[finite]
    y = ok[target].to_numpy(dtype="float64")
    per_request = log_loss_terms(champion[finite], y) - log_loss_terms(challenger[finite], y)
    per_entity = (
        ok.assign(_diff=per_request)
        .groupby(["_day", id_col], sort=False)
        .agg(_diff=("_diff", "mean"), _matured=("_matured", "first"), _first=(timestamp_col, "min"))
        .sort_values(["_matured", "_first"], kind="mergesort")
    )
    return Outcomes(
        diffs=per_entity["_diff"].to_numpy(dtype="float64"),
        requests=len(rows),
        nonfinite=int((~finite).sum()),
        extreme_challenger=extreme_count(challenger, extreme),
        extreme_champion=extreme_count(champion, extreme),
        label_problem=label_problem,
    )
