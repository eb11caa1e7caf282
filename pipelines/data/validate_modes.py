"""The `validate` step as one call, in its four modes: one day's raw batch, every raw day not
yet validated, the training set, or a proposed suite drafted from reference data.

The checks themselves (Great Expectations, quarantine, leakage) are in pipelines/data/validate.py;
this module decides which of them a request runs and what counts as a failure, so the CLI's
`validate` command only passes its options through.
"""

from __future__ import annotations

import logging
from typing import Any

from pipelines.config import Settings
from pipelines.errors import PipelineError, ValidationFailed
from pipelines.io import parse_date, partition_files

log = logging.getLogger(__name__)


def validate(
    settings: Settings,
    day: str | None = None,
    all_days: bool = False,
    training: bool = False,
    profile: str | None = None,
    out: str | None = None,
) -> dict[str, Any]:
    """Run one mode of the `validate` step, the first that applies: ``profile`` (propose the
    suite of that kind, see :func:`propose`), ``training`` (the training set and holdout),
    ``all_days`` (every new raw day; any quarantined day fails the call) or one raw day,
    ``day`` (YYYY-MM-DD; default the latest raw day). A failed validation raises."""
    from pipelines.data.validate import validate_batch, validate_training

    if profile:
        return propose(settings, profile, out)
    if training:
        return validate_training(settings)
    if all_days:
        res = validate_new_days(settings)
        if res["failed"]:
            raise PipelineError(f"{len(res['failed'])} day(s) failed validation and were quarantined: {res['failed']}")
        return res
    if day:
        return validate_batch(settings, parse_date(day))
    days = list(partition_files(settings.raw_dir))
    if not days:
        raise PipelineError("no day found; pass --date YYYY-MM-DD")
    return validate_batch(settings, days[-1])


def validate_new_days(settings: Settings) -> dict[str, list[str]]:
    """Validate each raw day that has no up-to-date validated copy; collect failures (a failed
    day is quarantined and named, the others still run)."""
    from pipelines.data.validate import validate_batch

    validated = partition_files(settings.validated_dir)
    report_dir = settings.reports_dir / "validation"
    passed, failed = [], []
    for day, raw in partition_files(settings.raw_dir).items():
        report = report_dir / f"{day.isoformat()}.json"
        if day in validated and report.is_file() and report.stat().st_mtime >= raw.stat().st_mtime:
            continue
        try:
            validate_batch(settings, day)
            passed.append(day.isoformat())
        except ValidationFailed as exc:
            failed.append(day.isoformat())
            log.warning("%s", exc)
            for line in exc.failures:
                log.warning("    %s", line)
    return {"passed": passed, "failed": failed}


def propose(settings: Settings, kind: str, out: str | None = None) -> dict[str, Any]:
    """Draft the suite ``kind`` (daily_batch | training_set) from reference data (the training
    set; or every validated batch, else every raw one) and write it beside the committed suite
    (or to ``out``) for review; the committed suite is untouched."""
    import pandas as pd

    from pipelines.data.validate import normalize, propose_suite
    from pipelines.io import read_frame, write_json

    if kind == "training_set":
        ref = read_frame(settings.training_dir / "train.parquet")
    else:
        files = list(partition_files(settings.validated_dir).values()) or list(partition_files(settings.raw_dir).values())
        if not files:
            raise PipelineError("no batches to profile: run `simulate` or point data.raw_dir at your data")
        ref = pd.concat([normalize(read_frame(f), settings) for f in files], ignore_index=True)
    suite = propose_suite(settings, ref, kind)
    dest = settings.expectations_dir / f"{kind}.proposed.json" if out is None else settings.path(out)
    write_json(suite, dest)
    committed = settings.expectations_dir / (kind + ".json")
    return {"proposed": str(dest), "expectations": len(suite["expectations"]), "review_then": f"mv {dest} {committed}"}
