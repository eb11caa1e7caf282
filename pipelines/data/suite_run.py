"""Run an expectation suite on a frame with Great Expectations, with its Data Docs, and read the
result back as one human line per failed expectation (what the CLI prints and quarantine keeps)."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd

from pipelines.errors import first_line

INLINE_EXAMPLES = 3  # unexpected values quoted in a failure line


def run_suite(
    df: pd.DataFrame, suite: dict[str, Any], parameters: dict[str, Any], docs_dir: Path | None = None
) -> dict[str, Any]:
    """Run a suite on a frame with Great Expectations; return the JSON-able result.

    With ``docs_dir``, GE's own Data Docs (the human-readable report) are built there by an
    UpdateDataDocsAction; the folder is replaced only once the new site is complete.
    """
    import great_expectations as gx  # heavy: imported only when validating
    from great_expectations.checkpoint import UpdateDataDocsAction
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)  # keep task logs readable
    batch_def = (
        context.data_sources.add_pandas("pipelines")
        .add_dataframe_asset("batch")
        .add_batch_definition_whole_dataframe("whole")
    )
    gx_suite = context.suites.add(gx.ExpectationSuite(name=suite["name"], expectations=suite["expectations"]))
    vd = context.validation_definitions.add(gx.ValidationDefinition(name=suite["name"], data=batch_def, suite=gx_suite))
    actions = []
    staging = None
    if docs_dir is not None:
        docs_dir.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{docs_dir.name}.", dir=docs_dir.parent))
        context.add_data_docs_site(
            site_name="report",
            site_config={
                "class_name": "SiteBuilder",
                "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(staging)},
                "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
            },
        )
        actions.append(UpdateDataDocsAction(name="data_docs", site_names=["report"]))
    checkpoint = context.checkpoints.add(
        gx.Checkpoint(name=suite["name"], validation_definitions=[vd], actions=actions, result_format="SUMMARY")
    )
    try:
        run = checkpoint.run(batch_parameters={"dataframe": df}, expectation_parameters=parameters)
        if staging is not None and docs_dir is not None:
            if docs_dir.exists():
                shutil.rmtree(docs_dir)
            staging.rename(docs_dir)
    finally:
        if staging is not None and staging.exists():
            shutil.rmtree(staging)
    return next(iter(run.run_results.values())).to_json_dict()


def failure_lines(result: dict[str, Any]) -> list[str]:
    """One human line per failed expectation: column, what was expected, what was found."""
    missing_cols: set[str] = set()
    for r in result["results"]:
        if r["expectation_config"]["type"] == "expect_table_columns_to_match_set" and not r["success"]:
            missing_cols |= set(r["result"].get("details", {}).get("mismatched", {}).get("missing", []) or [])
    return [
        _failure_line(r) for r in result["results"]
        if not r["success"] and r["expectation_config"]["kwargs"].get("column") not in missing_cols
    ]  # a missing column is reported once, as missing, not once per expectation on it


def _failure_line(r: dict[str, Any]) -> str:
    """The line for one failed expectation."""
    cfg = r["expectation_config"]
    kw, res, typ = cfg["kwargs"], r.get("result", {}), cfg["type"]
    col = kw.get("column")
    exc = r.get("exception_info", {}) or {}
    if exc.get("raised_exception"):
        return f"{col or 'table'}: could not check {typ}: {first_line(exc.get('exception_message') or 'error')}"
    pct = float(res.get("unexpected_percent") or 0.0)
    examples = _examples(res.get("partial_unexpected_list"))
    found = res.get("unexpected_count")
    if typ == "expect_table_columns_to_match_set":
        line = _columns_line(res)
    elif typ == "expect_table_row_count_to_be_between":
        line = f"rows: expected between {kw.get('min_value')} and {kw.get('max_value')}, found {res.get('observed_value')}"
    elif typ == "expect_column_values_to_not_be_null":
        line = f"{col}: expected at most {1 - float(kw.get('mostly', 1.0)):.1%} nulls, found {pct:.1f}% null"
    elif typ == "expect_column_values_to_be_between":
        line = (
            f"{col}: expected values between {kw.get('min_value')} and {kw.get('max_value')}, "
            f"found {found} outside ({pct:.1f}%), e.g. {examples}"
        )
    elif typ == "expect_column_values_to_be_in_set":
        line = f"{col}: expected values in {kw.get('value_set')}, found {found} others, e.g. {examples}"
    elif typ == "expect_column_values_to_be_unique":
        line = f"{col}: expected unique values, found {found} duplicated, e.g. {examples}"
    elif typ in ("expect_column_values_to_be_of_type", "expect_column_values_to_be_in_type_list"):
        line = f"{col}: expected type {kw.get('type_') or kw.get('type_list')}, found {res.get('observed_value')}"
    else:
        line = f"{col or 'table'}: {typ} failed, found {res.get('observed_value', examples)}"
    return line


def _columns_line(res: dict[str, Any]) -> str:
    mm = res.get("details", {}).get("mismatched", {})
    parts = []
    if mm.get("missing"):
        parts.append(f"missing {sorted(mm['missing'])}")
    if mm.get("unexpected"):
        parts.append(f"unexpected {sorted(mm['unexpected'])}")
    return f"columns: expected exactly the suite's columns, found {'; '.join(parts)}"


def _examples(values: list[Any] | None) -> str:
    if not values:
        return "[]"
    uniq: list[Any] = []
    for v in values:
        if v not in uniq:
            uniq.append(v)
    return str(uniq[:INLINE_EXAMPLES])
