"""What a year unattended must show (pipelines/data/year.py): the replay's records checked
against the calendar of injected failures, and the live AUC against a hindsight optimum.

- **Hindsight optimum:** for each matured served day, the ROC AUC of a model trained with
  perfect hindsight on the same labels: the project's own model (train.* of params.yaml), fitted
  on every labelled validated day of the day's regime (the stretch between two lasting changes
  of the world) except the inverted-label days, cross-fitted by day parity so no day is scored
  by a model that saw it. The best AUC achievable on that day with the product's model.
- **Alerts:** each injected failure raised its alert on the first day it can be seen; none
  in the stable quarter.
- **Rows:** every landed row validated or quarantined (whole days), the scoring audit
  (pipelines/ops/audit.py) clean.
- **Interventions:** training runs that failed with an error (a person must look) and served
  days with no champion.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pandas as pd

from pipelines.config import Settings
from pipelines.data.year import BAD_RETRAIN_AT, YEARS, Event
from pipelines.io import partition_files, read_frame

AUC_TOLERANCE = 0.02  # live AUC within this of the hindsight optimum counts as "at the optimum"


def regime(year: str, offset: int) -> int:
    """Which stretch of the world a served day belongs to: lasting events started by then."""
    return sum(1 for e in YEARS[year] if e.days is None and offset >= e.start)


def hindsight(settings: Settings, year: str, launch: date) -> dict[str, float]:
    """The hindsight-optimal ROC AUC of each labelled validated day (ISO day -> AUC)."""
    from pipelines.data.prepare import binary_labels, join_labels
    from pipelines.model.features import score_frame
    from pipelines.model.gate_checks import roc_auc
    from pipelines.model.train import fit

    d, tp = settings.params.data, settings.params.train
    labels = partition_files(settings.labels_dir)
    flipped = {e for e in YEARS[year] if e.kind == "label_flip"}
    days: dict[int, list[tuple[date, pd.DataFrame]]] = {}
    for day, path in partition_files(settings.validated_dir).items():
        offset = (day - launch).days
        if day not in labels or any(e.active(offset) for e in flipped):
            continue
        frame = join_labels(read_frame(path), read_frame(labels[day]), d.id_col, d.target, day)
        frame[d.target] = binary_labels(frame[d.target], d.positive_label, d.target)
        days.setdefault(regime(year, offset), []).append((day, frame))
    out: dict[str, float] = {}
    for members in days.values():
        halves = [[f for day, f in members if day.toordinal() % 2 == k] for k in (0, 1)]
        if not all(halves):
            continue
        models = [fit(pd.concat(h, ignore_index=True), d, tp)[0] for h in halves]
        for day, frame in members:
            other = models[1 - day.toordinal() % 2]  # never the model that saw this day
            y = frame[d.target].astype("int64").to_numpy()
            out[day.isoformat()] = round(float(roc_auc(y, score_frame(other, frame, d, settings.params.score.chunk_rows))), 6)
    return out


def _first_seen(event: Event, launch: date, delay: int, year: str) -> date:
    """The first day the product can see ``event``."""
    start = launch + timedelta(days=event.start)
    if event.kind == "label_flip":
        return launch + timedelta(days=BAD_RETRAIN_AT[year])  # when a retrain learns from the labels
    if event.kind == "flapping":
        return start if start.toordinal() % 2 == 0 else start + timedelta(days=1)  # the counter loses logins on even days
    return start + timedelta(days=delay) if event.seen_by_labels else start


def verdict(settings: Settings, result: dict[str, Any], year: str) -> dict[str, Any]:
    """The year's invariants, each with what failed it."""
    launch = date.fromisoformat(result["launch"])
    delay = settings.params.simulate.label_delay_days
    served = [r for r in result["days"] if r["phase"] == "served"]
    alerts = {r["day"]: {a["alert"] for a in r.get("alerts", [])} for r in served}
    events = []
    for e in YEARS[year]:
        seen = _first_seen(e, launch, delay, year).isoformat()
        events.append({
            "event": e.kind, "note": e.note, "start": (launch + timedelta(days=e.start)).isoformat(),
            "detectable": seen, "alert": e.alert, "alerted_on_time": e.alert in alerts.get(seen, set()),
            "first_alert": next((day for day in sorted(alerts) if day >= seen and e.alert in alerts[day]), None),
        })
    quiet_until = (launch + timedelta(days=min(e.start for e in YEARS[year]))).isoformat()
    stable_alerts = sorted({f"{day} {a}" for day, names in alerts.items() if day < quiet_until for a in names})
    best = result.get("hindsight", {})
    live = {m["day"]: m["roc_auc"] for r in result["days"] for m in r.get("matured", []) if m.get("roc_auc") is not None}
    compared = sorted(day for day in live if day in best and day >= result["launch"])
    misses = [
        {"day": day, "live": live[day], "hindsight": best[day], "cause": _cause(year, launch, day, result),
         "awaiting_retrain": _awaiting_retrain(year, launch, day, result)}
        for day in compared if live[day] < best[day] - AUC_TOLERANCE
    ]
    recovering = {m["day"] for m in misses if m["awaiting_retrain"]}
    steady = [day for day in compared if day not in recovering]
    # what the product asked of a person: each alert episode's first day (its runbook says what to do)
    asked, seen = [], set()
    for r in served:
        today = {a["alert"]: a for a in r.get("alerts", [])}
        asked += [{"day": r["day"], **today[name]} for name in sorted(set(today) - seen)]
        seen = set(today)
    interventions = [t["day"] + ": " + t["failed"] for t in result["trainings"] if t.get("failed")]
    interventions += [r["day"] + ": no champion" for r in served if not r.get("champion")]
    return {
        "interventions": interventions,
        "asked_of_a_person": asked,
        "rows_lost": _rows_lost(settings, result),
        "events": events,
        "every_failure_alerted_on_time": all(e["alerted_on_time"] for e in events),
        "stable_quarter_alerts": stable_alerts,
        "auc_days": len(compared),
        "auc_at_optimum_share": round(1 - len(misses) / len(compared), 4) if compared else None,
        "auc_misses": misses,
        # the days outside the wait for a retrain after a lasting change (the labels of the new
        # world must mature before a model can learn it)
        "auc_steady_days": len(steady),
        "auc_at_optimum_share_steady": round(1 - (len(misses) - len(recovering)) / len(steady), 4) if steady else None,
    }


def _awaiting_retrain(year: str, launch: date, day: str, result: dict[str, Any]) -> bool:
    """Whether ``day`` was scored by a champion trained before the latest lasting change began:
    the wait for the new world's labels, which no setting can skip."""
    offset = (date.fromisoformat(day) - launch).days
    lasting = [e for e in YEARS[year] if e.days is None and e.start <= offset]
    rec = next((r for r in result["days"] if r["day"] == day), {})
    version = rec.get("scored_by") or rec.get("champion")
    trained = next((t["day"] for t in result["trainings"] if t.get("version") == version), None)
    if not lasting or trained is None:
        return False
    return trained < (launch + timedelta(days=lasting[-1].start)).isoformat()


def _cause(year: str, launch: date, day: str, result: dict[str, Any]) -> str:
    """Why a day's live AUC missed the optimum: the latest event begun by then, and the champion."""
    offset = (date.fromisoformat(day) - launch).days
    begun = [e for e in YEARS[year] if e.start <= offset]
    rec = next((r for r in result["days"] if r["day"] == day), {})
    what = f"{begun[-1].kind} since {(launch + timedelta(days=begun[-1].start)).isoformat()}" if begun else "stable quarter"
    return f"{what}; scored by v{rec.get('scored_by') or rec.get('champion')}"


def _rows_lost(settings: Settings, result: dict[str, Any]) -> list[str]:
    """Days whose landed rows are neither all validated nor quarantined, and the audit's problems."""
    lost = list(result["audit"]["problems"])
    for rec in result["days"]:
        raw = settings.raw_dir / f"{rec['day']}.parquet"
        if rec.get("landed") is False:
            if raw.is_file():
                lost.append(f"{rec['day']}: a batch landed but the replay saw none")
            continue
        validated = settings.validated_dir / f"{rec['day']}.parquet"
        if rec["validated"]:
            n_raw, n_val = len(read_frame(raw)), len(read_frame(validated))
            if n_raw != n_val:
                lost.append(f"{rec['day']}: {n_raw} rows landed, {n_val} validated")
        elif not (settings.quarantine_dir / rec["day"]).is_dir():
            lost.append(f"{rec['day']}: not validated and not in quarantine")
    return lost


def share_line(v: dict[str, Any]) -> str:
    """The year's verdict in one line."""
    share = v["auc_at_optimum_share"]
    late = [e["event"] for e in v["events"] if not e["alerted_on_time"]]
    auc = "no matured day to compare" if share is None else (
        f"live AUC within {AUC_TOLERANCE} of the hindsight optimum on {share:.1%} of {v['auc_days']} matured days "
        f"({v['auc_at_optimum_share_steady']:.1%} of the {v['auc_steady_days']} outside the wait for a retrain after "
        "a lasting change)"
    )
    return (
        f"interventions {len(v['interventions'])}; rows lost {len(v['rows_lost'])}; "
        f"failures alerted on time {len(v['events']) - len(late)}/{len(v['events'])}"
        + (f" (late: {', '.join(late)})" if late else "")
        + f"; alerts in the stable quarter {len(v['stable_quarter_alerts'])}; {auc}"
    )


def year_html(v: dict[str, Any]) -> str:
    """The year's section of the timeline page: the verdict, each injected failure and its alert,
    what the product asked of a person."""
    import html

    rows = "".join(
        f"<tr><td>{html.escape(e['event'])}</td><td>{e['start']}</td><td>{e['detectable']}</td><td>{e['alert']}</td>"
        f"<td>{e['first_alert'] or '-'}</td><td>{'yes' if e['alerted_on_time'] else 'NO'}</td></tr>"
        for e in v["events"]
    )
    asked = "".join(f"<li>{a['day']}: {html.escape(a['alert'])} ({html.escape(str(a.get('what', '')))})</li>"
                    for a in v["asked_of_a_person"])
    return (
        f"<h2>The year</h2><p>{html.escape(share_line(v))}</p><table border=1 cellpadding=4 style='border-collapse:collapse'>"
        "<tr><th>injected</th><th>from</th><th>first detectable</th><th>alert</th><th>first alerted</th><th>on time</th></tr>"
        f"{rows}</table><h3>Asked of a person (each alert's runbook)</h3><ul>{asked}</ul>"
    )
