"""`init` on small hand-made folders: the roles it infers, the sizes it suggests, and one clear
line for each problem a first look at the files can find (nothing is written then)."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from pipelines.data.onboard import init, suggest_sizes
from pipelines.data.prepare import binary_labels
from pipelines.errors import PipelineError

START = date(2026, 5, 1)


def write_days(root: Path, days: int = 8, rows: int = 60, labels: list[str] = ("no", "yes"), seed: int = 0) -> None:  # type: ignore[assignment]
    rng = np.random.default_rng(seed)
    (root / "raw").mkdir(parents=True, exist_ok=True)
    (root / "labels").mkdir(parents=True, exist_ok=True)
    for i in range(days):
        day = START + timedelta(days=i)
        ids = [f"u{i}-{j}" for j in range(rows)]
        raw = pd.DataFrame({
            "user id": ids,
            "seen.at": pd.Timestamp(day) + pd.to_timedelta(rng.integers(0, 86_400, rows), unit="s"),
            "monthly spend": rng.gamma(2.0, 30.0, rows),
            "plan": rng.choice(["Basic plan (monthly, no commitment)", "Premium plan (yearly)"], rows),
            "country": rng.choice(["FR", "DE", "IT"], rows),
            "note": [f"free text {i}-{j}" for j in range(rows)],
        })
        raw.to_csv(root / "raw" / f"{day}.csv", index=False)
        pd.DataFrame({"user id": ids, "churned": rng.choice(list(labels), rows)}).to_csv(
            root / "labels" / f"{day}.csv", index=False
        )


@pytest.fixture
def project(settings) -> Path:
    write_days(settings.root / "mine")
    return settings.root


def run_init(root: Path, **kw: object) -> dict:
    args = {"target": "churned", "positive_label": "yes", **kw}
    return init(root, root / "mine" / "raw", root / "mine" / "labels", params_file=root / "params.yaml", **args)  # type: ignore[arg-type]


def test_init_infers_roles_writes_params_and_proposes_both_suites(project: Path) -> None:
    res = run_init(project)
    d = yaml.safe_load((project / "params.yaml").read_text())["data"]
    assert (d["source"], d["raw_dir"], d["labels_dir"]) == ("files", "mine/raw", "mine/labels")
    assert (d["id_col"], d["timestamp_col"], d["target"], d["positive_label"]) == ("user id", "seen.at", "churned", "yes")
    assert d["numerical"] == ["monthly spend"] and d["categorical"] == ["plan", "country"]
    assert "note" in res["excluded"]  # free text is not a feature
    assert res["holdout_days"] >= 1 and res["window_days"] + res["holdout_days"] == 8
    for kind in ("daily_batch", "training_set"):
        assert (project / "expectations" / f"{kind}.proposed.json").is_file()
    # the comments of params.yaml survive
    assert "# MLflow registered model name" in (project / "params.yaml").read_text()


def test_yes_no_labels_are_written_quoted_so_yaml_keeps_them_strings(project: Path) -> None:
    write_days(project / "yn", labels=["No", "Yes"])
    init(project, project / "yn" / "raw", project / "yn" / "labels", "churned", "Yes", project / "params.yaml")
    assert yaml.safe_load((project / "params.yaml").read_text())["data"]["positive_label"] == "Yes"


@pytest.mark.parametrize(
    "break_it, message",
    [
        (lambda r: [p.unlink() for p in (r / "raw").iterdir()], "raw folder .* is empty"),
        (
            lambda r: (
                pd.read_csv(r / "raw" / "2026-05-03.csv").drop(columns=["plan"]).to_csv(r / "raw" / "2026-05-03.csv", index=False)
            ),
            r"raw files' schemas differ: 2026-05-03.csv lacks \['plan'\]",
        ),
        (
            lambda r: [pd.read_csv(p).assign(**{"seen.at": "soon"}).to_csv(p, index=False) for p in (r / "raw").iterdir()],
            "no timestamp column",
        ),
        (
            lambda r: [
                pd.read_csv(p).rename(columns={"churned": "label"}).to_csv(p, index=False) for p in (r / "labels").iterdir()
            ],
            "target 'churned' is not a column of the labels files",
        ),
        (lambda r: write_days(r, labels=["no", "yes", "maybe"]), "target 'churned' has 3 values"),
        (lambda r: [p.unlink() for p in sorted((r / "labels").iterdir())[2:]], "too few labelled days: 2"),
        (
            lambda r: [
                pd.read_csv(p).assign(**{"user id": lambda f: "other-" + f["user id"]}).to_csv(p, index=False)
                for p in (r / "labels").iterdir()
            ],
            "ids do not join",
        ),
    ],
    ids=["empty-folder", "schemas-differ", "no-timestamp", "target-missing", "three-labels", "too-few-days", "ids-do-not-join"],
)
def test_each_problem_is_one_clear_line_and_nothing_is_written(project: Path, break_it, message: str) -> None:
    break_it(project / "mine")
    before = (project / "params.yaml").read_text()
    with pytest.raises(PipelineError, match=message) as err:
        run_init(project)
    assert "\n" not in str(err.value)
    assert (project / "params.yaml").read_text() == before
    assert not (project / "expectations" / "daily_batch.proposed.json").exists()


def test_string_labels_need_a_positive_label(project: Path) -> None:
    with pytest.raises(PipelineError, match="pass --positive-label"):
        run_init(project, positive_label=None)
    with pytest.raises(PipelineError, match="--positive-label 'Yes' is not a value"):
        run_init(project, positive_label="Yes")


def test_suggested_sizes_fit_the_rows() -> None:
    assert suggest_sizes(60, 117.0, 80) == {"window_days": 51, "holdout_days": 9, "min_rows": 40, "min_slice_rows": 53}
    assert suggest_sizes(400, 5000.0, 4000)["holdout_days"] == 1
    with pytest.raises(PipelineError, match="too few labelled days"):
        suggest_sizes(2, 100.0, 100)


def test_binary_labels() -> None:
    s = pd.Series(["bad", "good", None, "bad"])
    assert binary_labels(s, "bad", "status").tolist() == [1, 0, pd.NA, 1]
    assert binary_labels(pd.Series([0, 1, 1]), None, "y").tolist() == [0, 1, 1]
    with pytest.raises(PipelineError, match=r"set data\.positive_label"):
        binary_labels(s, None, "status")
    with pytest.raises(PipelineError, match="3 values"):
        binary_labels(pd.Series(["a", "b", "c"]), "a", "y")
