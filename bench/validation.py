"""Validation benchmark: `validate_batch` (Great Expectations) against the same checks in pandas.

    .venv/bin/python bench/validation.py [--rows 1000000] [--no-docs-row]

One simulated day of --rows rows (`pipelines.data.simulate.generate_day`, one Parquet file) is
validated against the repository's `expectations/daily_batch.json`, in one run, each measured
in its own process (peak RSS = the child's own VmHWM, polled):
  read        the floor: `read_frame` + `normalize`, the same load the validation does; no check.
  pandas      that load plus every expectation of the suite as plain pandas (an interpreter of
              the suite's expectation types: columns, row count, nulls with `mostly`, types,
              uniqueness, ranges, sets); the baseline the library is measured against.
  ours        `pipelines.data.validate.validate_batch`: load, the suite through Great
              Expectations (`run_suite`, timed apart), Data Docs as params.yaml sets them
              (`validate.data_docs`, on by default), the JSON report and the validated Parquet
              written. With no model registry in the throw-away project the training-skew check
              is skipped, as on a fresh project.
  ours, no Data Docs   the same with `validate.data_docs: false` (as replays run it); left out
              with --no-docs-row.
Each expectation's verdict from Great Expectations is asserted equal to the pandas one's.
Ratios are ours / baseline (time and peak memory): 1.0x = as cheap as the baseline.
Prints a Markdown table for BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from datetime import date
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from bench.measure import run_measured  # noqa: E402

DAY = date(2026, 3, 1)

CHILD = r"""
import json, sys, time
from datetime import date, timedelta
from pathlib import Path
import pandas as pd
from pipelines.config import load_settings
from pipelines.data import validate as v
from pipelines.io import read_frame
if sys.argv[2].startswith("ours"):
    import great_expectations  # imports outside the clock, as for pandas
s = load_settings(sys.argv[1])
mode, day = sys.argv[2], date.fromisoformat(sys.argv[3])
raw = s.raw_dir / f"{day.isoformat()}.parquet"
params = {"min_rows": s.params.validate_.min_rows, "max_rows": s.params.validate_.max_rows,
          "day_start": f"{day.isoformat()}T00:00:00", "day_end": f"{(day + timedelta(days=1)).isoformat()}T00:00:00"}

def arg(x):
    return params[x["$PARAMETER"]] if isinstance(x, dict) and "$PARAMETER" in x else x

def bound(x, s_):
    return pd.Timestamp(x) if pd.api.types.is_datetime64_any_dtype(s_) else x

def checks(df, suite):
    out = []
    for e in suite["expectations"]:
        t, kw = e["type"], {k: arg(x) for k, x in e.get("kwargs", {}).items()}
        col = df[kw["column"]] if "column" in kw else None
        if t == "expect_table_columns_to_match_set":
            ok = set(df.columns) == set(kw["column_set"])
        elif t == "expect_table_row_count_to_be_between":
            ok = kw["min_value"] <= len(df) <= kw["max_value"]
        elif t == "expect_column_values_to_not_be_null":
            ok = col.notna().mean() >= kw.get("mostly", 1.0)
        elif t == "expect_column_values_to_be_of_type":
            ok = str(col.dtype) == kw["type_"]
        elif t == "expect_column_values_to_be_in_type_list":
            ok = str(col.dtype) in kw["type_list"]
        elif t == "expect_column_values_to_be_unique":
            ok = not col.dropna().duplicated().any()
        elif t == "expect_column_values_to_be_between":
            x = col.dropna()
            ok = bool(((x >= bound(kw["min_value"], x)) & (x <= bound(kw["max_value"], x))).all())
        elif t == "expect_column_values_to_be_in_set":
            ok = bool(col.dropna().isin(kw["value_set"]).all())
        else:
            raise SystemExit(f"no pandas version of {t}")
        out.append(bool(ok))
    return out

res = {}
if mode in ("read", "pandas"):
    # the suite's JSON as it is: load_suite would import GE to check it
    suite = json.loads((s.expectations_dir / f"{v.DAILY_SUITE}.json").read_text()) if mode == "pandas" else None
    t = time.perf_counter()
    df = v.normalize(read_frame(raw), s)
    res["load"] = time.perf_counter() - t
    if suite is not None:
        t2 = time.perf_counter()
        res["verdicts"] = checks(df, suite)
        res["checks"] = time.perf_counter() - t2
    res["seconds"] = time.perf_counter() - t
    res["rows"] = len(df)
else:
    inner = v.run_suite
    def timed(*a, **k):
        t2 = time.perf_counter()
        r = inner(*a, **k)
        res["checks"] = time.perf_counter() - t2
        res["verdicts"] = [bool(x["success"]) for x in r["results"]]
        res["types"] = [x["expectation_config"]["type"] for x in r["results"]]
        return r
    v.run_suite = timed
    t = time.perf_counter()
    summary = v.validate_batch(s, day)
    res["seconds"] = time.perf_counter() - t
    res["rows"], res["success"] = summary["rows"], summary["success"]
print(json.dumps(res))
sys.stdout.flush()
import os; os._exit(0)
"""


def setup(root: Path, docs: bool, raw: Path | None = None) -> Path:
    """A throw-away project: the repository's params.yaml and suites, an empty data/raw/ (or
    ``raw`` copied into it); no model registry."""
    shutil.copytree(REPO / "expectations", root / "expectations")
    text = (REPO / "params.yaml").read_text()
    assert "data_docs: true" in text
    (root / "params.yaml").write_text(text if docs else text.replace("data_docs: true", "data_docs: false"))
    (root / "data" / "raw").mkdir(parents=True)
    if raw is not None:
        shutil.copy(raw, root / "data" / "raw" / raw.name)
    return root / "params.yaml"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000, help="rows in the simulated day (default 1,000,000)")
    ap.add_argument("--no-docs-row", action="store_true", help="skip the run with validate.data_docs: false")
    args = ap.parse_args()

    from pipelines.data.simulate import generate_day

    base = Path(tempfile.mkdtemp(prefix="validation-bench-"))
    # the project's own (absent) mlflow.db: the skew check skips without touching MLflow
    env = {k: x for k, x in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "PIPELINES_ROOT")}
    env["PYTHONPATH"] = str(REPO)
    print(f"writing a {args.rows:,}-row day in {base} ...", file=sys.stderr)
    params = setup(base / "docs", docs=True)
    raw = params.parent / "data" / "raw" / f"{DAY.isoformat()}.parquet"
    generate_day(DAY, args.rows, 42).batch.to_parquet(raw, index=False)
    runs = [("read", params), ("pandas", params), ("ours", params)]
    if not args.no_docs_row:
        runs.append(("ours, no Data Docs", setup(base / "nodocs", docs=False, raw=raw)))
    # a file, not `python -c`: pyspark (imported by GE) exits a process whose __main__ has no
    # __file__, taking it for its doctests
    child = base / "child.py"
    child.write_text(CHILD)
    res: dict[str, dict] = {}
    for name, params in runs:
        wall, rss, out, _ = run_measured([sys.executable, str(child), str(params), name, DAY.isoformat()], env, REPO)
        res[name] = {**json.loads(out.strip().splitlines()[-1]), "wall": wall, "rss": rss}
        assert res[name]["rows"] == args.rows
        print(f"  {name}: {res[name]['seconds']:.2f} s (wall {wall:.1f} s), peak {rss:.0f} MB", file=sys.stderr)
    for name in res:
        if name.startswith("ours"):
            assert res[name]["success"], f"{name}: the simulated day failed validation"
            assert res[name]["verdicts"] == res["pandas"]["verdicts"], f"{name}: GE and pandas disagree"

    n_exp = len(res["pandas"]["verdicts"])
    print(f"\n{args.rows:,} rows, {n_exp} expectations (expectations/daily_batch.json); ratio = ours / baseline\n")
    print(
        "| run | time (process wall) | of which the checks | peak RSS | time vs read "
        "| time vs pandas checks | peak vs read | peak vs pandas checks |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    rd, pd_ = res["read"], res["pandas"]
    for name, r in res.items():
        chk = f"{r['checks']:.2f} s" if "checks" in r else ""
        print(
            f"| {name} | {r['seconds']:.2f} s ({r['wall']:.1f} s) | {chk} | {r['rss']:.0f} MB | "
            f"{r['seconds'] / rd['seconds']:.1f}x | {r['seconds'] / pd_['seconds']:.1f}x | "
            f"{r['rss'] / rd['rss']:.2f}x | {r['rss'] / pd_['rss']:.2f}x |"
        )
    shutil.rmtree(base, ignore_errors=True)
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
