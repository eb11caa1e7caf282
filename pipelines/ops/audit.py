"""Nothing lost in a replay: its records checked against the files and the registry."""

from __future__ import annotations

from typing import Any

from pipelines.config import Settings
from pipelines.io import read_frame


def audit(settings: Settings, result: dict[str, Any]) -> dict[str, Any]:
    """Check the replay's files against its records: every validated served day scored exactly
    once (one scoring run, one partition, every row) by the champion of that day; quarantined and
    warm-up days never scored; every prediction names a registered version."""
    from pipelines.tracking import setup_mlflow

    client = setup_mlflow(settings)
    name = settings.params.project.model_name
    registered = {str(v.version) for v in client.search_model_versions(f"name='{name}'")}
    exp = client.get_experiment_by_name(settings.params.project.experiment)
    runs = client.search_runs([exp.experiment_id], "tags.step = 'score'", max_results=50000) if exp else []
    score_runs: dict[str, int] = {}
    for r in runs:
        score_runs[r.data.tags["day"]] = score_runs.get(r.data.tags["day"], 0) + 1
    problems: list[str] = []
    versions_seen: set[str] = set()
    scored = 0
    for rec in result["days"]:
        day = rec["day"]
        pred = settings.predictions_dir / f"{day}.parquet"
        validated = settings.validated_dir / f"{day}.parquet"
        if rec["validated"] and rec.get("scored_by"):
            if not pred.is_file():
                problems.append(f"{day}: validated and scored, but no predictions file")
                continue
            p = read_frame(pred)
            v = read_frame(validated)
            versions = set(p["model_version"].astype(str))
            versions_seen |= versions
            if versions != {rec["champion"]}:
                problems.append(f"{day}: scored by {sorted(versions)}, the champion of the day was v{rec['champion']}")
            if len(p) != len(v) or not p["customer_id"].is_unique or set(p["customer_id"]) != set(v["customer_id"]):
                problems.append(f"{day}: {len(p)} predictions for {len(v)} validated rows")
            if score_runs.get(day, 0) != 1:
                problems.append(f"{day}: scored {score_runs.get(day, 0)} times")
            scored += 1
        elif rec["phase"] == "served" and rec["validated"]:
            problems.append(f"{day}: validated on a served day but not scored")
        elif pred.is_file() or score_runs.get(day):
            problems.append(f"{day}: {'quarantined' if not rec['validated'] else 'warm-up'} day was scored")
        if not rec["validated"] and validated.is_file():
            problems.append(f"{day}: quarantined but a validated copy exists")
    unregistered = sorted(versions_seen - registered)
    if unregistered:
        problems.append(f"predictions name unregistered versions {unregistered}")
    return {
        "ok": not problems,
        "problems": problems,
        "scored_days": scored,
        "quarantined_days": [r["day"] for r in result["days"] if not r["validated"] and r.get("landed") is not False],
        "registered_versions": sorted(registered, key=int),
    }
