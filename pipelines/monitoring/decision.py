"""The retrain decision and its brakes (pure): does today's drift, or the live performance, ask
for a retrain?

A day counts as drifted when some feature's PSI passes ``drift.psi_threshold`` (a feature under
``drift.min_importance`` is reported but does not count); retraining is requested only after
``drift.consecutive_windows`` drifted days in a row (by date, with the same champion), not
within ``drift.cooldown_days`` of the last day the champion trained on nor of the last retrain
requested for the same champion (one the gate blocked), optionally only once
``drift.min_labelled_drifted_days`` days since the shift began have matured labels, and never
while a retrain is in flight (pipelines/monitoring/inflight.py).

A champion that learned a shift from its first few labelled days is refreshed as they grow
(``drift.refresh_after_shift``, :func:`window_grown`): the request needs no drift, under the
same cooldown and in-flight brakes, so a project that does not retrain on a schedule still
learns the new regime from a whole window.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from datetime import date
from typing import Any

from pipelines.config import DriftParams


def drifted_features(psi: dict[str, float], threshold: float) -> list[str]:
    """Features whose PSI passes the threshold, worst first (pure). A NaN PSI means the batch
    has no non-null value of the feature at all (the reference always has some): drifted, first."""
    nan = [c for c, v in psi.items() if math.isnan(v)]
    return nan + sorted((c for c, v in psi.items() if v > threshold), key=lambda c: -psi[c])


def performance_alarm(
    records: list[dict[str, Any]], champion_version: str, holdout_auc: float | None, params: DriftParams
) -> dict[str, Any] | None:
    """Performance-triggered retraining (pure): the champion's latest ``drift.performance_days``
    matured days in a row all have a live ROC AUC below ``drift.min_live_roc_auc`` or more than
    ``drift.max_live_auc_drop`` below its holdout AUC. Sees what PSI cannot: outcomes that change
    while the inputs look the same. ``records``: the performance summaries, any order."""
    if params.min_live_roc_auc <= 0 and params.max_live_auc_drop >= 1:
        return None
    mine = sorted(
        (r for r in records if r.get("model_versions") == [champion_version] and r.get("live_roc_auc") is not None),
        key=lambda r: r["day"],
    )
    bad: list[dict[str, Any]] = []
    for r in reversed(mine):
        auc = r["live_roc_auc"]
        if not (auc < params.min_live_roc_auc or (holdout_auc is not None and holdout_auc - auc > params.max_live_auc_drop)):
            break
        bad.append(r)
    if len(bad) < params.performance_days:
        return None
    bad.reverse()
    aucs = ", ".join(f"{r['live_roc_auc']:.3f}" for r in bad[-params.performance_days :])
    why = [f"floor {params.min_live_roc_auc}"] if params.min_live_roc_auc > 0 else []
    if holdout_auc is not None and params.max_live_auc_drop < 1:
        why.append(f"holdout {holdout_auc:.3f} - {params.max_live_auc_drop}")
    return {
        "days": [r["day"] for r in bad],
        "reason": f"live ROC AUC under {' / '.join(why)} on {len(bad)} matured day(s) in a row (latest {aucs})",
    }


def window_grown(
    day: date,
    follows_shift: str | None,
    trained_days: int | None,
    labelled_days: Collection[str],
    window_days: int,
    holdout_days: int,
) -> str | None:
    """Why a champion whose window followed a shift should learn from the grown window, or None
    (pure): once the labelled days since the shift are twice what it used (its training days
    plus the holdout), or fill a whole window, and the window grows by more than the holdout.
    Requested once per champion (:func:`retrain_decision`). ``follows_shift``: the first day of the shift its
    window followed (None: a usual window); ``trained_days``: how many days it trained on."""
    if follows_shift is None or trained_days is None or trained_days >= window_days:
        return None
    since = sum(1 for d in labelled_days if follows_shift <= d <= day.isoformat())
    need = min(2 * (trained_days + holdout_days), window_days + holdout_days)
    # and the window grows by more than the holdout (no retrain to add a day or two)
    if since < need or min(since - holdout_days, window_days) < trained_days + holdout_days:
        return None
    return (
        f"the window grew: the champion learned the shift since {follows_shift} from {trained_days} day(s), "
        f"{since} labelled day(s) since"
    )


def retrain_decision(
    day: date,
    drifted: list[str],
    psi: dict[str, float],
    history: list[dict[str, Any]],
    champion_version: str,
    trained_through: date | None,
    running: bool | str,
    params: DriftParams,
    importance: dict[str, float] | None = None,
    labelled_days: Collection[str] | None = None,
    performance: dict[str, Any] | None = None,
    refresh: str | None = None,
) -> dict[str, Any]:
    """Apply the brakes (``params``: threshold, k days in a row, cooldown, importance floor) to
    today's drift (pure). ``history``: earlier summaries, any order.

    ``importance``: each feature's share of the model's permutation importance (from the
    profile); a drifted feature below ``drift.min_importance`` is reported but does not count (a
    feature with no values left always counts). ``running``: False, or the retrain in flight.
    The streak counts earlier days as they were decided (with the floor of their day).
    ``labelled_days``: the validated days (ISO) whose labels matured. The shift began on the
    streak's first day, or on the first day of a performance alarm, whichever is earlier
    (``shift_start``); with ``drift.min_labelled_drifted_days`` the retrain waits until that many
    days since the shift can be learned from (a model retrained before then is trained on the
    old regime only), and the training window then follows the shift (pipelines/data/prepare.py).
    ``performance``: a :func:`performance_alarm`, which requests a retrain under the same brakes
    (it needs no k drifted days in a row). ``refresh``: a :func:`window_grown` reason, which
    requests a retrain under the cooldown and in-flight brakes."""
    ignored = _unimportant(drifted, psi, importance, params.min_importance)
    drifted = [c for c in drifted if c not in ignored]
    earlier = sorted(
        (h for h in history if h["day"] < day.isoformat() and h.get("champion_version") == champion_version),
        key=lambda h: h["day"],
        reverse=True,
    )
    streak_days = _streak_days(day, drifted, earlier)
    start = shift_start(streak_days, performance)
    labelled = sum(1 for d in (labelled_days or ()) if start is not None and start <= d <= day.isoformat())
    brakes = _brakes(day, drifted, len(streak_days), labelled, earlier, trained_through, running, params, performance, refresh)
    alarm = len(performance["days"]) if performance else 0
    retrain = (bool(drifted) or bool(alarm) or bool(refresh)) and not brakes
    return {
        "retrain": retrain,
        "drifted_features": drifted,
        "ignored_features": ignored,
        "streak": len(streak_days),
        "shift_start": start,
        "labelled_drifted_days": labelled,
        "performance_alarm": performance,
        "refresh": refresh,
        "brakes": brakes,
        "reason": _reason(drifted, ignored, psi, importance, params, performance, retrain, brakes, refresh),
    }


def shift_start(streak_days: list[str], performance: dict[str, Any] | None) -> str | None:
    """The first day of the shift (pure): the drift streak's first day or the first day of the
    performance alarm, whichever is earlier; None when neither is running."""
    starts = ([min(streak_days)] if streak_days else []) + ([performance["days"][0]] if performance else [])
    return min(starts) if starts else None


def _unimportant(
    drifted: list[str], psi: dict[str, float], importance: dict[str, float] | None, min_importance: float
) -> list[str]:
    """The drifted features under ``drift.min_importance``: reported, not counted (a feature
    with no values left always counts)."""
    return [
        c for c in drifted
        if importance is not None and min_importance > 0 and not math.isnan(psi[c]) and importance.get(c, 1.0) < min_importance
    ]


def _streak_days(day: date, drifted: list[str], earlier: list[dict[str, Any]]) -> list[str]:
    """Today and the drifted days right before it (``earlier``: newest first), as decided then."""
    streak_days: list[str] = []
    if drifted:
        streak_days = [day.isoformat()]
        for h in earlier:
            if not h.get("drifted_features"):
                break
            streak_days.append(h["day"])
    return streak_days


def _brakes(
    day: date,
    drifted: list[str],
    streak: int,
    labelled: int,
    earlier: list[dict[str, Any]],
    trained_through: date | None,
    running: bool | str,
    params: DriftParams,
    performance: dict[str, Any] | None,
    refresh: str | None = None,
) -> list[str]:
    """Each brake that holds today's retrain back, in words (none: retrain if triggered)."""
    k, cooldown_days, need_labels = params.consecutive_windows, params.cooldown_days, params.min_labelled_drifted_days
    alarm = len(performance["days"]) if performance else 0
    shifted = bool(drifted) or bool(alarm)
    triggered = shifted or bool(refresh)
    since = (day - trained_through).days if trained_through else None
    brakes = []
    if drifted and not alarm and streak < k:
        brakes.append(f"drifted {streak} day(s) in a row, {k} needed")
    if triggered and since is not None and since < cooldown_days:
        brakes.append(f"cooldown: champion trained through {trained_through}, {since} < {cooldown_days} day(s) ago")
    last_request = next((h["day"] for h in earlier if h.get("retrain")), None)
    if triggered and last_request and (day - date.fromisoformat(last_request)).days < cooldown_days:
        # a retrain the gate blocked is not requested again the next day (a retrain loop)
        brakes.append(f"cooldown: a retrain was requested on {last_request} for this champion, < {cooldown_days} day(s) ago")
    refreshed = next((h["day"] for h in earlier if h.get("refresh") and h.get("retrain")), None)
    if refresh and not shifted and refreshed:  # the gate kept the champion: not asked again every cooldown
        brakes.append(f"a refresh was requested on {refreshed} for this champion: once per champion")
    if shifted and need_labels and labelled < need_labels:
        brakes.append(f"waiting for labels: {labelled} day(s) since the shift began have matured, {need_labels} needed")
    if triggered and running:
        brakes.append("a retrain is already in flight" + ("" if running is True else f" ({running})"))
    return brakes


def _reason(
    drifted: list[str],
    ignored: list[str],
    psi: dict[str, float],
    importance: dict[str, float] | None,
    params: DriftParams,
    performance: dict[str, Any] | None,
    retrain: bool,
    brakes: list[str],
    refresh: str | None = None,
) -> str:
    """The decision in one line: what triggered it, what held it back, what was ignored."""
    threshold, min_importance = params.psi_threshold, params.min_importance
    alarm = len(performance["days"]) if performance else 0

    def named(cols: list[str]) -> str:
        def one(c: str) -> str:
            value = "all null" if math.isnan(psi[c]) else format(psi[c], ".3f")
            share = "" if importance is None or c not in importance else f"; importance {importance[c]:.1%}"
            return f"{c} ({value}{share})"

        return ", ".join(one(c) for c in cols)

    perf_reason = f"live performance: {performance['reason']}" if performance else ""
    if drifted or alarm:
        reason = (f"PSI above {threshold} on {named(drifted)}" if drifted else "") + (" and " if drifted and alarm else "")
        reason += perf_reason
        reason += "" if retrain else " - not retraining: " + "; ".join(brakes)
    elif ignored:
        reason = f"PSI above {threshold} only on features under drift.min_importance {min_importance:.2%}: {named(ignored)}"
    elif refresh:
        reason = refresh + ("" if retrain else " - not retraining: " + "; ".join(brakes))
    else:
        reason = f"no feature has PSI above {threshold}"
    if drifted and ignored:
        reason += f" (ignored, under drift.min_importance {min_importance:.2%}: {named(ignored)})"
    if importance is None and min_importance > 0 and drifted:
        reason += " (drift.min_importance not applied: this champion's profile has no importance; retrain to record it)"
    return reason
