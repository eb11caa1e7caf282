"""The whole daily cycle with the real tools, in a temporary copy of the project.

Real `dvc repro`, a real MLflow SQLite store and registry, real Great Expectations and
Evidently; nothing is mocked. Days: 20 stable days (labels for 13), then drifted and broken
batches land on later days.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from datetime import date

import pandas as pd
import pytest

from tests.support.project import Project, build_project

pytestmark = pytest.mark.integration


# Each test asks for the state it needs by fixture (a champion, a challenger, drifted days), so
# that it passes alone as well as after the tests before it.
@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Project:
    """20 days, champion v1 from the first `dvc repro` (its output: ``first_repro``), and
    2026-01-19 scored before any challenger exists (``solo_scores``: the shadow test's reference)."""
    # The k-days brake is judged alone here: this calendar's drifted days have no matured labels
    # yet, so the shipped labels brake (10 days since the shift) would hold every retrain; the
    # replayed stories judge the shipped brakes together.
    proj = build_project(
        tmp_path_factory.mktemp("project") / "repo", days=20, code=True,
        edits=[("min_labelled_drifted_days: 10", "min_labelled_drifted_days: 0")],
    )
    proj.first_repro = proj.run(sys.executable, "-m", "dvc", "repro").stdout  # type: ignore[attr-defined]
    proj.cli("score", "--date", "2026-01-19")
    proj.solo_scores = pd.read_parquet(proj.root / "data/predictions/2026-01-19.parquet")  # type: ignore[attr-defined]
    return proj


@pytest.fixture(scope="module")
def challenger(project: Project) -> str:
    """A crippled candidate (one tree of depth 1) through `dvc repro`: the gate fails it and it is
    registered as challenger v2 only. The repro's output; params.yaml is put back."""
    project.set_params("max_iter: 150", "max_iter: 1")
    project.set_params("max_depth: 4", "max_depth: 1")
    try:
        return project.run(sys.executable, "-m", "dvc", "repro").stdout
    finally:
        project.set_params("max_iter: 1\n", "max_iter: 150\n")
        project.set_params("max_depth: 1\n", "max_depth: 4\n")


@pytest.fixture(scope="module")
def drifted(project: Project) -> dict[str, subprocess.CompletedProcess[str]]:
    """2026-01-21 and -22 landed with feature drift (logins_30d), validated and scored, then
    `drift` run on each in turn (arrow engine): its result per day."""
    project.cli("simulate", "--start", "2026-01-21", "--days", "2", "--rows", "1500",
                "--scenario", "feature_drift", "--scenario-start", "2026-01-21")
    for day in ("2026-01-21", "2026-01-22"):
        project.cli("validate", "--date", day)  # drift is not bad data: it validates
        project.cli("score", "--date", day)
    return {day: project.cli("drift", "--date", day) for day in ("2026-01-21", "2026-01-22")}


def test_first_repro_registers_a_champion(project: Project) -> None:
    out = project.first_repro  # type: ignore[attr-defined]
    assert "Running stage 'promote'" in out
    st = project.status()
    assert st["champion"]["version"] == "1"
    assert st["champion"]["gate_passed"] is True
    assert st["champion"]["data_md5"] and st["champion"]["git_commit"] not in ("", "unknown")


def test_second_repro_is_a_fast_no_op(project: Project) -> None:
    started = time.monotonic()
    out = project.run(sys.executable, "-m", "dvc", "repro").stdout
    assert "Data and pipelines are up to date" in out
    assert "Running stage" not in out
    assert time.monotonic() - started < 60


def test_a_change_to_the_scoring_code_makes_the_gate_stale(project: Project) -> None:
    """The gate scores through pipelines/model/features.py (the one scoring call, shared with
    batch scoring and reproduce): dvc.yaml must say so, or `dvc repro` keeps a stale verdict."""
    scoring = project.root / "pipelines" / "model" / "features.py"
    original = scoring.read_text()
    scoring.write_text(original + "\n# a change to the scoring code\n")
    try:
        out = project.run(sys.executable, "-m", "dvc", "status").stdout
        stages = {line.rstrip(":").strip() for line in out.splitlines() if line and not line.startswith((" ", "\t"))}
        assert "gate" in stages, out
        assert "pipelines/model/features.py" in out
        assert "prepare" not in stages, out
    finally:
        scoring.write_text(original)
    assert "Data and pipelines are up to date" in project.run(sys.executable, "-m", "dvc", "status").stdout


def test_crippled_candidate_is_challenger_only(project: Project, challenger: str) -> None:
    out = challenger
    assert "Running stage 'train'" in out and "Running stage 'prepare'" not in out
    st = project.status()
    assert st["champion"]["version"] == "1", "the champion must be untouched"
    assert st["challenger"]["version"] == "2"
    assert st["challenger"]["gate_passed"] is False
    assert [(v["version"], v["aliases"]) for v in st["recent_versions"]] == [("2", ["challenger"]), ("1", ["champion"])]
    decision = st["last_gate_decision"]
    assert decision["passed"] is False and decision["champion"]["version"] == "1"
    assert any(r.startswith("roc_auc") for r in decision["reasons"])


def test_scoring_writes_one_row_per_input_with_champion_version(project: Project) -> None:
    project.cli("score", "--date", "2026-01-20")
    pred = pd.read_parquet(project.root / "data/predictions/2026-01-20.parquet")
    batch = pd.read_parquet(project.root / "data/validated/2026-01-20.parquet")
    assert len(pred) == len(batch) == 1500
    assert pred["customer_id"].tolist() == batch["customer_id"].tolist()
    assert set(pred["model_version"]) == {"1"}
    assert set(pred["scoring_date"]) == {"2026-01-20"} and pred["model_run_id"].nunique() == 1
    assert pred["score"].between(0, 1).all()
    project.set_params("chunk_rows: 250000\n  threads: 0", "chunk_rows: 250000\n  threads: 1")  # score.threads: one OpenMP thread
    try:
        capped = json.loads(project.cli("--json", "score", "--date", "2026-01-20").stdout)
    finally:
        project.set_params("chunk_rows: 250000\n  threads: 1", "chunk_rows: 250000\n  threads: 0")
    assert capped["threads"] == 1
    pd.testing.assert_frame_equal(pd.read_parquet(project.root / "data/predictions/2026-01-20.parquet"), pred)


def test_shadow_scoring_is_separate_and_changes_nothing(project: Project, challenger: str) -> None:
    res = project.cli("score", "--date", "2026-01-19")  # a challenger (v2) exists now
    assert "shadow v2" in res.stderr
    champion = pd.read_parquet(project.root / "data/predictions/2026-01-19.parquet")
    shadow = pd.read_parquet(project.root / "data/predictions_shadow/2026-01-19.parquet")
    pd.testing.assert_frame_equal(champion, project.solo_scores)  # type: ignore[attr-defined]
    assert set(shadow["model_version"]) == {"2"}
    assert shadow["customer_id"].tolist() == champion["customer_id"].tolist()
    assert not shadow["score"].equals(champion["score"])


def test_signature_mismatch_fails_before_any_work(project: Project) -> None:
    good = pd.read_parquet(project.root / "data/validated/2026-01-20.parquet")
    for day, frame, expected in [
        ("2026-02-01", good.drop(columns=["income"]), "missing ['income']"),
        ("2026-02-02", good.assign(income=good["income"].astype(str)), "mistyped income (string"),
    ]:
        frame.to_parquet(project.root / f"data/validated/{day}.parquet", index=False)
        try:
            res = project.cli("score", "--date", day, ok=False)
            assert res.returncode == 1
            assert f"batch {day} does not match the model signature: {expected}" in res.stderr, res.stderr
            assert not (project.root / f"data/predictions/{day}.parquet").exists()
        finally:
            (project.root / f"data/validated/{day}.parquet").unlink()


def test_tampered_model_artifact_is_refused(project: Project) -> None:
    st = project.status()
    run_id = st["champion"]["run_id"]
    skops = list((project.root / "mlartifacts").rglob("model.skops"))
    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{project.root / 'mlflow.db'}")
    source = mlflow.MlflowClient().get_model_version("credit-default", "1").source
    model_id = source.split("/")[-1]
    target = next(p for p in skops if model_id in str(p))
    original = target.read_bytes()
    try:
        target.write_bytes(original + b"tampered")
        res = project.cli("score", "--date", "2026-01-20", ok=False)
        assert res.returncode == 1 and "differs from the registered" in res.stderr, res.stderr
    finally:
        target.write_bytes(original)
    assert run_id


def test_killed_scoring_leaves_old_partition_or_none(project: Project) -> None:
    import signal

    project.cli("simulate", "--start", "2026-01-24", "--days", "1", "--rows", "150000")
    project.cli("validate", "--date", "2026-01-24")
    (project.root / "params.kill.yaml").write_text(
        (project.root / "params.yaml").read_text().replace("chunk_rows: 250000", "chunk_rows: 3000")
    )
    dest = project.root / "data/predictions/2026-01-24.parquet"

    def kill_midway() -> None:
        proc = subprocess.Popen(
            [sys.executable, "-m", "pipelines", "--params", "params.kill.yaml", "score", "--date", "2026-01-24"],
            cwd=project.root, env=project.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        assert proc.stderr is not None
        for line in proc.stderr:
            if "scored 6,000/150,000 rows" in line:
                break
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        assert proc.returncode == -signal.SIGKILL

    kill_midway()  # first run killed: no partition at all
    assert not dest.exists()
    project.cli("score", "--date", "2026-01-24")
    before = dest.read_bytes()
    assert len(pd.read_parquet(dest)) == 150_000
    kill_midway()  # re-run killed: the old partition, byte for byte
    assert dest.read_bytes() == before
    leftovers = [p.name for p in dest.parent.iterdir() if p.name.startswith(".")]
    assert all(name.endswith(".tmp") for name in leftovers)  # hidden temp files, never a partition


def test_stable_day_does_not_call_for_retraining(project: Project) -> None:
    res = project.cli("drift", "--date", "2026-01-20")
    summary = json.loads((project.root / "data/reports/drift/2026-01-20.json").read_text())
    assert summary["retrain"] is False, summary["psi"]
    assert "retrain not due" in res.stderr
    assert (project.root / "data/reports/drift/2026-01-20.html").stat().st_size > 10_000


def test_feature_drift_calls_for_retraining_after_k_days_naming_logins(project: Project, drifted: dict) -> None:
    first = drifted["2026-01-21"]
    summary = json.loads((project.root / "data/reports/drift/2026-01-21.json").read_text())
    assert summary["retrain"] is False and summary["drifted_features"][0] == "logins_30d"
    assert "1 day(s) in a row, 2 needed" in first.stderr
    res = drifted["2026-01-22"]
    summary = json.loads((project.root / "data/reports/drift/2026-01-22.json").read_text())
    assert summary["retrain"] is True and summary["streak"] == 2
    assert summary["drifted_features"][0] == "logins_30d"
    assert "retrain DUE" in res.stderr and "logins_30d" in res.stderr
    # the model relies on logins_30d: its share of the permutation importance is in the reason
    share = summary["importance"]["logins_30d"]
    assert share > 0.05 and f"; importance {share:.1%})" in summary["reason"]
    # one number everywhere: the HTML report shows the deciding number (the job checks the
    # report's values before writing), and MLflow holds the very same floats as the summary
    html = (project.root / "data/reports/drift/2026-01-22.html").read_text()
    assert "PSI (frozen training bins, full batch)" in html
    assert summary["score_psi"] is not None
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{project.root / 'mlflow.db'}")
    [run] = client.search_runs(
        [client.get_experiment_by_name("credit-default").experiment_id],
        "tags.step = 'drift' and tags.day = '2026-01-22' and tags.engine = 'local'",
    )
    logged = {k.removeprefix("psi_"): v for k, v in run.data.metrics.items() if k.startswith("psi_")}
    assert logged == summary["psi"] and run.data.metrics["score_psi"] == summary["score_psi"]


def test_spark_engine_gives_the_same_drift_summary(project: Project, drifted: dict) -> None:
    """`drift --engine spark` counts in Spark SQL: same PSI, null rates, rows and decision."""
    from tests.support.java import ensure_java

    ensure_java()
    path = project.root / "data/reports/drift/2026-01-22.json"
    arrow = json.loads(path.read_text())
    res = project.cli("drift", "--date", "2026-01-22", "--engine", "spark")
    spark = json.loads(path.read_text())
    assert arrow["engine"] == "local" and spark["engine"] == "spark"
    for key in ("psi", "null_rate", "rows", "score_psi", "retrain", "drifted_features", "reason"):
        assert spark[key] == arrow[key], key
    assert "retrain DUE" in res.stderr
    noise = [line for line in res.stderr.splitlines() if " WARN " in line or "log4j" in line or "log level" in line]
    assert not noise, noise  # Spark's start-up WARN lines are kept out (pipelines/spark-log4j2.properties)
    bad = project.cli("drift", "--date", "2026-01-22", "--engine", "spark", "--input", str(project.root / "nowhere"), ok=False)
    assert bad.returncode == 1 and "spark cannot read" in bad.stderr and "Traceback" not in bad.stderr


def test_real_performance_once_labels_mature(project: Project, drifted: dict) -> None:
    project.cli("score", "--date", "2026-01-12")  # a day whose labels have matured
    res = project.cli("--json", "performance", "--date", "2026-01-12")
    summary = json.loads(res.stdout)
    assert summary["matched_rows"] == 1500 and 0.6 < summary["live_roc_auc"] < 0.95
    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{project.root / 'mlflow.db'}")
    client = mlflow.MlflowClient()
    run_id = client.get_model_version_by_alias("credit-default", "champion").run_id
    series = client.get_metric_history(run_id, "live_roc_auc")
    assert [m.step for m in series] == [date(2026, 1, 12).toordinal()]
    none_left = project.cli("--json", "performance")  # nothing else has both predictions and labels
    assert json.loads(none_left.stdout) == {"measured": []}
    assert re.search(r"nothing new to measure: \d+ predicted day\(s\), 1 with matured labels \(all measured already\), "
                     r"\d+ waiting for labels in .*labels \(earliest: 2026-01-\d\d\)", none_left.stderr), none_left.stderr
    res = project.cli("performance", "--date", "2026-01-22", ok=False)
    assert res.returncode == 1 and "have not matured yet" in res.stderr


def test_bad_batch_fails_validation_and_nothing_downstream_runs(project: Project) -> None:
    before = project.status()["champion"]["version"]
    old_predictions = {p.name: p.read_bytes() for p in (project.root / "data/predictions").glob("*.parquet")}
    project.cli("simulate", "--start", "2026-01-25", "--days", "1", "--rows", "1500",
                "--scenario", "data_quality", "--scenario-start", "2026-01-25")
    res = project.cli("validate", "--date", "2026-01-25", ok=False)
    assert res.returncode == 1
    assert "error: batch 2026-01-25 failed validation" in res.stderr
    assert "income: expected at most 5.0% nulls" in res.stderr
    assert "age: expected values between" in res.stderr
    assert (project.root / "data/quarantine/2026-01-25/2026-01-25.parquet").is_file()
    scored = project.cli("score", "--date", "2026-01-25", ok=False)
    assert scored.returncode == 1 and "error: batch 2026-01-25 is quarantined (failed validation)" in scored.stderr
    assert len(scored.stderr.strip().splitlines()) == 1
    assert not (project.root / "data/predictions/2026-01-25.parquet").exists()
    assert project.status()["champion"]["version"] == before
    after = {p.name: p.read_bytes() for p in (project.root / "data/predictions").glob("*.parquet")}
    assert after == old_predictions


def test_training_serving_skew_is_a_hard_failure(project: Project) -> None:
    project.cli("simulate", "--start", "2026-01-26", "--days", "1", "--rows", "1500",
                "--scenario", "skew", "--scenario-start", "2026-01-26")
    res = project.cli("validate", "--date", "2026-01-26", ok=False)
    assert res.returncode == 1
    assert "avg_spend_30d: training-serving skew" in res.stderr and "not drift" in res.stderr
    assert "logins_30d" not in res.stderr
    assert (project.root / "data/quarantine/2026-01-26/data_docs/index.html").is_file()


def test_gate_override_needs_justification_then_rollback(project: Project, challenger: str) -> None:
    res = project.cli("promote", "--override", "  ", ok=False)
    assert res.returncode == 1 and "needs a written justification" in res.stderr
    assert project.status()["champion"]["version"] == "1"
    project.cli("promote", "--override", "risk team accepts the lower AUC for this test")
    st = project.status()
    assert st["champion"]["version"] == "2" and st["champion_history"] == ["1", "2"]
    project.cli("rollback", "--reason", "v2 is the crippled one")
    st = project.status()
    assert st["champion"]["version"] == "1" and st["champion_history"] == ["1"]
    res = project.cli("rollback", "--reason", "again", ok=False)
    assert res.returncode == 1 and "no previous champion" in res.stderr


def test_manual_promotion_needs_a_reason(project: Project) -> None:
    res = project.cli("promote", "--version", "2", ok=False)
    assert res.returncode == 1 and "needs a written reason" in res.stderr
    res = project.cli("promote", "--version", "99", "--reason", "x", ok=False)
    assert res.returncode == 1 and "has no version 99" in res.stderr
