"""A replayed story as something a person reads in ten seconds: the guard table, the headline
AUC numbers, and one self-contained HTML page (plotly) + a PNG (the audit of what was scored:
pipelines/ops/audit.py).

The HTML embeds plotly.js (no CDN: it opens offline); the PNG is drawn with matplotlib (no
browser or kaleido needed), from the same records.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from statistics import mean
from typing import Any

# ------------------------------------------------------------------ the guard table


def _ranges(days: list[str]) -> str:
    """'2026-02-01..2026-02-03, 2026-02-07' from sorted ISO days."""
    out: list[list[str]] = []
    for d in days:
        if out and (date.fromisoformat(d) - date.fromisoformat(out[-1][-1])).days == 1:
            out[-1].append(d)
        else:
            out.append([d])
    return ", ".join(r[0] if len(r) == 1 else f"{r[0]}..{r[-1]}" for r in out)


def _day_guards(served: list[dict[str, Any]]) -> list[dict[str, str]]:
    """The guards of the served days: validation, drift, live performance and the brakes."""
    rows: list[dict[str, str]] = []
    quarantined = [r for r in served if not r["validated"]]
    if quarantined:
        why = quarantined[0].get("quarantine_reasons") or ["failed validation"]
        days = _ranges([r["day"] for r in quarantined])
        what = f"{len(quarantined)} day(s) quarantined ({days}), none scored; first reason: {why[0][:120]}"
        rows.append({"guard": "validation", "day": quarantined[0]["day"], "what": what})
    drifted = [r for r in served if (r.get("drift") or {}).get("drifted")]
    if drifted:
        top = drifted[0]["drift"]
        what = (f"PSI over {top['threshold']} on {', '.join(top['drifted'])} ({top['top_psi']:.2f}); "
                f"{len(drifted)} drifted day(s) in all")
        rows.append({"guard": "drift", "day": drifted[0]["day"], "what": what})
    alarmed = [r for r in served if (r.get("drift") or {}).get("performance_alarm")]
    if alarmed:
        reason = alarmed[0]["drift"]["performance_alarm"]["reason"][:200]
        rows.append({"guard": "performance", "day": alarmed[0]["day"], "what": reason})
    held = [r for r in served
            if r.get("drift") and (r["drift"]["drifted"] or r["drift"].get("performance_alarm")) and not r["drift"]["retrain"]]
    if held:
        kinds = sorted({b.split(":")[0].split(" ")[0] for r in held for b in r["drift"]["brakes"]})
        what = f"held {len(held)} day(s) ({_ranges([r['day'] for r in held])}): {', '.join(kinds)}"
        rows.append({"guard": "brakes", "day": held[0]["day"], "what": what})
    return rows


def _training_guards(trainings: list[dict[str, Any]]) -> list[dict[str, str]]:
    """What started each training after the first champion, and the gate's verdict on it."""
    rows: list[dict[str, str]] = []
    for t in trainings:
        if t["trigger"] == "first champion":
            continue
        guard = "retrain" if t["trigger"].startswith("retrain requested") else "schedule"
        rows.append({"guard": guard, "day": t["day"], "what": t["trigger"][:160]})
        if t.get("failed"):
            rows.append({"guard": "training", "day": t["day"], "what": f"failed: {t['failed'][:160]}"})
            continue
        if t["passed"]:
            what = (f"v{t['version']} promoted (candidate holdout AUC {t['candidate_roc_auc']:.3f}); "
                    f"champion v{t['champion_before']} -> v{t['champion_after']}")
        else:
            what = (f"v{t['version']} blocked, challenger only; "
                    f"champion v{t['champion_after']} stays: {'; '.join(t['reasons'])[:200]}")
        rows.append({"guard": "gate", "day": t["day"], "what": what})
    return rows


# The alert that tells a person about each guard (deploy/prometheus/rules/).
ALERT_OF = {"validation": "PipelinesDayQuarantined", "drift": "PipelinesDriftDetected",
            "performance": "PipelinesLiveAucUnderFloor", "gate": "PipelinesRetrainBlocked"}


def first_alerts(result: dict[str, Any]) -> dict[str, str]:
    """Each alert name -> the first served day the shipped rules raised it."""
    out: dict[str, str] = {}
    for r in result["days"]:
        if r["phase"] == "served":
            for a in r.get("alerts", []):
                out.setdefault(a["alert"], r["day"])
    return out


def _alerted(result: dict[str, Any], row: dict[str, str]) -> str:
    """The day the guard's alert reached a person: '-' for a guard with no alert (or a passed gate)."""
    name = ALERT_OF.get(row["guard"])
    if name is None or (row["guard"] == "gate" and "blocked" not in row["what"]):
        return "-"
    for r in result["days"]:
        same_day = row["guard"] != "gate" or r["day"] == row["day"]
        if r["day"] >= row["day"] and same_day and any(a["alert"] == name for a in r.get("alerts", [])):
            return r["day"]
    return "not alerted"


def guards(result: dict[str, Any]) -> list[dict[str, str]]:
    """Guard -> the day it (first) fired -> the day its alert reached a person -> what happened."""
    served = [r for r in result["days"] if r["phase"] == "served"]
    rows = _day_guards(served) + _training_guards(result["trainings"])
    rows.append({"guard": "retrains", "day": "-", "what": f"{result['retrains']} retrain(s) in {len(served)} served days"})
    return [{"guard": r["guard"], "day": r["day"], "alerted": _alerted(result, r), "what": r["what"]} for r in rows]


def headline(result: dict[str, Any]) -> dict[str, Any]:
    """Live ROC AUC before the failure, at its worst (3 matured days in a row) after it, and after
    recovery (days scored by the last champion promoted after the failure); None where absent."""
    live = sorted(
        {m["day"]: m for r in result["days"] for m in r.get("matured", []) if m.get("roc_auc") is not None}.values(),
        key=lambda m: m["day"],
    )
    start = result["failure"]["start"]
    before = [m["roc_auc"] for m in live if m["day"] < start]
    after_fail = [m for m in live if m["day"] >= start]
    rolling = [mean(x["roc_auc"] for x in after_fail[i : i + 3]) for i in range(max(len(after_fail) - 2, 0))]
    promoted = [
        t for t in result["trainings"] if t["trigger"] != "first champion" and t.get("role") == "champion" and t["day"] >= start
    ]
    recovered = [m["roc_auc"] for m in after_fail if promoted and m["versions"] == [promoted[-1]["version"]]]
    rnd = lambda xs: round(mean(xs), 4) if xs else None  # noqa: E731
    return {
        "before": rnd(before),
        "worst": round(min(rolling), 4) if rolling else None,
        "after": rnd(recovered),
        "after_version": promoted[-1]["version"] if promoted else None,
        "matured_days": {"before": len(before), "after_failure": len(after_fail), "recovered": len(recovered)},
    }


# ------------------------------------------------------------------ pictures


def _series(result: dict[str, Any]) -> dict[str, Any]:
    """The plotted series, from the records."""
    live: dict[str, dict[str, Any]] = {}
    for r in result["days"]:
        for m in r.get("matured", []):
            live[m["day"]] = m
    served = [r for r in result["days"] if r["phase"] == "served"]
    psi_feats: dict[str, float] = {}
    for r in served:
        for k, v in ((r.get("drift") or {}).get("psi") or {}).items():
            psi_feats[k] = max(psi_feats.get(k, 0.0), v)
    top = sorted(psi_feats, key=lambda k: -psi_feats[k])[:3]
    return {"live": [live[d] for d in sorted(live)], "served": served, "top": top}


def _markers(result: dict[str, Any]) -> list[dict[str, str]]:
    out = []
    for r in result["days"]:
        if r["phase"] == "served" and not r["validated"]:
            out.append({"day": r["day"], "kind": "quarantine", "text": "quarantined"})
        dr = r.get("drift") or {}
        if (dr.get("drifted") or dr.get("performance_alarm")) and not dr["retrain"]:
            out.append({"day": r["day"], "kind": "brakes", "text": "brakes held: " + "; ".join(dr["brakes"])})
        for t in r.get("training", []):
            if t["trigger"].startswith("retrain requested"):
                out.append({"day": r["day"], "kind": "retrain", "text": "retrain requested"})
            if t.get("failed"):
                out.append({"day": r["day"], "kind": "gate_blocked", "text": f"training failed: {t['failed']}"})
            elif t["passed"]:
                out.append({"day": r["day"], "kind": "gate_passed", "text": f"gate passed: v{t['version']} champion"})
            else:
                out.append(
                    {"day": r["day"], "kind": "gate_blocked", "text": f"gate blocked v{t['version']}: {'; '.join(t['reasons'])}"}
                )
    return out


def _notes(result: dict[str, Any]) -> list[dict[str, str]]:
    """The few events worth a label: the first quarantine, drift, alarm and brake, every training."""
    notes, seen = [], set()
    for r in result["days"]:
        if r["phase"] != "served":
            continue
        dr = r.get("drift") or {}
        for kind, text, when in (
            ("quarantine", "quarantined", not r["validated"]),
            ("brakes", "drift fired, brakes hold", bool(dr.get("drifted")) and not dr.get("retrain")),
            ("brakes", "live AUC alarm, brakes hold", bool(dr.get("performance_alarm")) and not dr.get("retrain")),
        ):
            if when and text not in seen:
                seen.add(text)
                notes.append({"day": r["day"], "kind": kind, "text": text})
        for t in r.get("training", []):
            ok = not t.get("failed") and t["passed"]
            notes.append({"day": r["day"], "kind": "gate_passed" if ok else "gate_blocked",
                          "text": f"{t['trigger'].split(':')[0]}: v{t['version']} {'promoted' if ok else 'blocked'}"})
    return notes


COLORS = {"alert": "#e377c2", "quarantine": "#d62728",
          "brakes": "#ff7f0e", "retrain": "#9467bd", "gate_passed": "#2ca02c", "gate_blocked": "#8c564b"}


def _title(result: dict[str, Any]) -> str:
    h = result["headline"]
    f = lambda x: f"{x:.2f}" if x is not None else "n/a"  # noqa: E731
    return (
        f"Story '{result['story']}': live ROC AUC {f(h['before'])} before, "
        f"{f(h['worst'])} at worst, {f(h['after'])} after ({result['retrains']} retrain(s))"
    )


def _figure(result: dict[str, Any]) -> Any:
    """The three panels: live AUC per version, PSI of the top features with the threshold, the
    default rate; marker lines, the failure shaded, notes."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    s = _series(result)
    titles = ("Live ROC AUC per day (labels matured), per model version", "PSI of the top features", "Daily default rate")
    fig = make_subplots(rows=3, cols=1, shared_xaxes=True, vertical_spacing=0.06, subplot_titles=titles)
    for v in sorted({v for m in s["live"] for v in m["versions"]}, key=int):
        pts = [m for m in s["live"] if m["versions"] == [v]]
        line = go.Scatter(x=[m["day"] for m in pts], y=[m["roc_auc"] for m in pts], mode="lines+markers", name=f"v{v} live AUC")
        fig.add_trace(line, row=1, col=1)
    best = sorted((result.get("hindsight") or {}).items())  # a year: the best AUC achievable each day
    if best:
        opt = go.Scatter(x=[b[0] for b in best], y=[b[1] for b in best], mode="lines", name="hindsight optimum",
                         line={"color": "black", "dash": "dash", "width": 1})
        fig.add_trace(opt, row=1, col=1)
    with_drift = [r for r in s["served"] if r.get("drift")]
    for feat in s["top"]:
        psi = [r["drift"]["psi"].get(feat) for r in with_drift]
        fig.add_trace(go.Scatter(x=[r["day"] for r in with_drift], y=psi, mode="lines", name=f"PSI {feat}"), row=2, col=1)
    threshold = result["params"].get("drift.psi_threshold") or next((r["drift"]["threshold"] for r in with_drift), 0.2)
    fig.add_hline(y=threshold, line_dash="dash", line_color="red", annotation_text=f"threshold {threshold}", row=2, col=1)
    live_days = [m["day"] for m in s["live"]]
    rate = go.Scatter(x=live_days, y=[m["default_rate"] for m in s["live"]], mode="lines", name="default rate")
    fig.add_trace(rate, row=3, col=1)
    for name, day in first_alerts(result).items():
        fig.add_vline(x=day, line_color=COLORS["alert"], line_width=2, line_dash="dot", opacity=0.8)
        fig.add_annotation(x=day, y=0, yref="y domain", text=f"alert: {name}", showarrow=False, textangle=-90,
                           xanchor="left", yanchor="bottom", font={"size": 10, "color": COLORS["alert"]}, row=1, col=1)
    for m in _markers(result):
        fig.add_vline(x=m["day"], line_color=COLORS[m["kind"]], line_width=1, opacity=0.5)
    for kind, color in COLORS.items():  # legend entries for the marker lines
        legend = go.Scatter(x=[None], y=[None], mode="lines", line={"color": color}, name=kind.replace("_", " "))
        fig.add_trace(legend, row=1, col=1)
    fail = result["failure"]
    fig.add_vrect(x0=fail["start"], x1=fail["end"] or result["days"][-1]["day"], fillcolor="grey", opacity=0.08, line_width=0)
    for note in _notes(result):
        fig.add_annotation(x=note["day"], y=1, yref="y domain", text=note["text"], showarrow=False, textangle=-90,
                           xanchor="right", yanchor="top", font={"size": 10, "color": COLORS[note["kind"]]}, row=1, col=1)
    fig.update_yaxes(type="log", row=2, col=1)
    fig.update_layout(height=900, title=_title(result), template="plotly_white")
    return fig


def write_html(result: dict[str, Any], dest: Path) -> Path:
    """One self-contained page: AUC per version, PSI with the threshold, default rate, markers,
    the guard table."""
    import html as html_lib

    from pipelines.ops.year_check import year_html

    esc = html_lib.escape
    table = "".join(f"<tr><td>{esc(g['guard'])}</td><td>{esc(g['day'])}</td><td>{esc(g.get('alerted', '-'))}</td>"
                    f"<td>{esc(g['what'])}</td></tr>" for g in result["guards"])
    audit = result["audit"]
    body = (
        f"<h1>{esc(result['story'])}</h1><p>{esc(result['summary'])}</p>"
        + _figure(result).to_html(full_html=False, include_plotlyjs=True)
        + "<h2>Guard &rarr; day it fired &rarr; what happened</h2><table border=1 cellpadding=4 style='border-collapse:collapse'>"
        + f"<tr><th>guard</th><th>day</th><th>alerted</th><th>what happened</th></tr>{table}</table>"
        + f"<p>Nothing lost: <b>{'yes' if audit['ok'] else 'NO'}</b> ({audit['scored_days']} days scored, "
          f"{len(audit['quarantined_days'])} quarantined, "
        + f"registered versions {', '.join('v' + v for v in audit['registered_versions'])}). "
          f"{esc('; '.join(audit['problems']))}</p>"
        + (year_html(result["year"]) if result.get("year") else "")
        + "<p>Shaded: the failure. Vertical lines: quarantine (red), brakes held (orange), retrain requested (purple), "
          "gate passed (green), gate blocked (brown); dotted pink: the first day each alert reached a person.</p>"
    )
    dest.write_text(
        f"<!doctype html><html><head><meta charset='utf-8'><title>{esc(result['story'])} timeline</title></head>"
        f"<body style='font-family:sans-serif'>{body}</body></html>"
    )
    return dest


def write_png(result: dict[str, Any], dest: Path) -> Path:
    """The same three panels as a PNG (matplotlib, no browser needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt

    s = _series(result)
    d = date.fromisoformat
    fig, axes = plt.subplots(3, 1, figsize=(12, 8), sharex=True, gridspec_kw={"height_ratios": [3, 2, 1]})
    for v in sorted({v for m in s["live"] for v in m["versions"]}, key=int):
        pts = [m for m in s["live"] if m["versions"] == [v]]
        axes[0].plot([d(m["day"]) for m in pts], [m["roc_auc"] for m in pts], marker=".", label=f"v{v}")
    best = sorted((result.get("hindsight") or {}).items())
    if best:
        axes[0].plot([d(b[0]) for b in best], [b[1] for b in best], "k--", linewidth=1, label="hindsight optimum")
    axes[0].set_ylabel("live ROC AUC (by day scored)")
    for note in _notes(result):  # what happened, written on the AUC panel
        axes[0].annotate(note["text"], (d(note["day"]), 1.0), xycoords=("data", "axes fraction"), fontsize=8,
                         rotation=90, va="top", ha="right", color=COLORS[note["kind"]])
    for name, day in first_alerts(result).items():  # the day each alert reached a person
        for ax in axes:
            ax.axvline(d(day), color=COLORS["alert"], linewidth=2, linestyle=":")
        axes[0].annotate(f"alert: {name}", (d(day), 0.02), xycoords=("data", "axes fraction"), fontsize=8,
                         rotation=90, va="bottom", ha="left", color=COLORS["alert"])
    axes[0].legend(loc="lower left", fontsize=8)
    drift_days = [r for r in s["served"] if r.get("drift")]
    for feat in s["top"]:
        axes[1].plot([d(r["day"]) for r in drift_days], [r["drift"]["psi"].get(feat) for r in drift_days], label=feat)
    threshold = next((r["drift"]["threshold"] for r in drift_days), 0.2)
    axes[1].axhline(threshold, color="red", linestyle="--", linewidth=1, label=f"threshold {threshold}")
    axes[1].set_yscale("symlog", linthresh=0.1)
    axes[1].set_ylim(bottom=0)
    axes[1].set_ylabel("PSI (symlog)")
    axes[1].legend(loc="upper left", fontsize=8)
    axes[2].plot([d(m["day"]) for m in s["live"]], [m["default_rate"] for m in s["live"]], color="black")
    axes[2].set_ylabel("default rate")
    fail = result["failure"]
    for ax in axes:
        ax.axvspan(d(fail["start"]), d(fail["end"] or result["days"][-1]["day"]), color="grey", alpha=0.1)
        for m in _markers(result):
            ax.axvline(d(m["day"]), color=COLORS[m["kind"]], linewidth=1, alpha=0.6)
    axes[2].xaxis.set_major_formatter(mdates.DateFormatter("%b %d"))
    fig.suptitle(_title(result), fontsize=11)
    fig.tight_layout()
    fig.savefig(dest, dpi=80)
    plt.close(fig)
    return dest


def write_timeline(result: dict[str, Any], out: Path) -> dict[str, str]:
    """Add the guard table and headline to ``result``; write timeline.html and timeline.png."""
    result["guards"] = guards(result)
    result["headline"] = headline(result)
    return {"html": str(write_html(result, out / "timeline.html")), "png": str(write_png(result, out / "timeline.png"))}
