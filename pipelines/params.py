"""The shape of params.yaml: one pydantic model per section, every key typed, bounded and described.

The descriptions are the reference of every key (type, default and description are rendered
per key in the documentation; tests/unit/test_config.py fails on a key without one). Loading
the file, and its one-line errors, live in pipelines/config.py.
"""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Scenario = Literal[
    "stable", "feature_drift", "concept_drift", "data_quality", "skew", "login_policy", "null_spike", "label_flip", "flapping",
    "year", "year_short",
]


FULL_SHARE = 100.0  # percent: the last canary stage sends every request to the challenger


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ProjectParams(_Section):
    """Names in the MLflow tracking server."""

    model_name: str = Field("credit-default", description="MLflow registered model name the pipeline registers and serves.")
    experiment: str = Field("credit-default", description="MLflow experiment every run of the pipeline is logged to.")


class DataParams(_Section):
    """Where the data is and what its columns mean."""

    source: Literal["simulated", "files"] = Field(
        "simulated", description="simulated: `make run` and land_batch generate the demo feed; files: your own daily files."
    )
    raw_dir: str = Field(
        "data/raw", description="Folder of daily batches, <YYYY-MM-DD>.parquet or .csv, without the label column."
    )
    labels_dir: str = Field(
        "data/labels", description="Folder of matured labels, <YYYY-MM-DD>.parquet or .csv, with the id and target columns."
    )
    validated_dir: str = Field(
        "data/validated", description="Batches that passed validation: the only input downstream (inside the project)."
    )
    quarantine_dir: str = Field(
        "data/quarantine", description="Batches that failed validation, each with its validation result (inside the project)."
    )
    training_dir: str = Field(
        "data/training", description="train.parquet, holdout.parquet and window.json, the DVC outputs of prepare."
    )
    predictions_dir: str = Field(
        "data/predictions", description="Batch scores, <day>.parquet; the challenger's shadow scores in <dir>_shadow."
    )
    reports_dir: str = Field("data/reports", description="Validation, gate, drift and performance reports.")
    id_col: str = Field("customer_id", description="Column that identifies an entity; joins predictions to labels.")
    timestamp_col: str = Field("event_ts", description="Column with each row's event time; must fall on the batch's day.")
    target: str = Field("default", description="Label column in the labels files.")
    positive_label: str | int | float | bool | None = Field(
        None, description='Label value that means positive (e.g. "bad"); null: labels are already 0/1.'
    )
    numerical: list[str] = Field(description="Numerical feature columns.")
    categorical: list[str] = Field(description="Categorical feature columns.")

    @field_validator("validated_dir", "quarantine_dir", "training_dir", "predictions_dir", "reports_dir")
    @classmethod
    def _inside_project(cls, v: str) -> str:
        # The pipeline writes here and DVC tracks these outputs: they must stay in the project.
        # (raw_dir and labels_dir are only read: they may live anywhere.)
        p = Path(v)
        if not v.strip() or p.is_absolute() or ".." in p.parts:
            raise ValueError(f"must be a folder inside the project (a relative path without '..'), got {v!r}")
        return v

    @model_validator(mode="after")
    def _distinct_roles(self) -> DataParams:
        roles = [self.id_col, self.timestamp_col, self.target, *self.numerical, *self.categorical]
        dupes = sorted({c for c in roles if roles.count(c) > 1})
        if dupes:
            raise ValueError(f"columns listed in more than one role: {', '.join(dupes)}")
        if not self.numerical and not self.categorical:
            raise ValueError("no feature columns: list at least one in data.numerical or data.categorical")
        return self

    @property
    def features(self) -> list[str]:
        return [*self.numerical, *self.categorical]


class SimulateParams(_Section):
    """The demo feed (`simulate`, `make run`)."""

    seed: int = Field(42, description="Random seed of the simulated data.")
    start: str = Field("2026-01-01", description="First simulated day, YYYY-MM-DD.")
    days: int = Field(24, ge=1, description="Number of days `make run` simulates.")
    rows_per_day: int = Field(2000, ge=1, description="Rows in each simulated daily batch.")
    label_delay_days: int = Field(7, ge=0, description="Days after the event a simulated label matures.")
    scenario: Scenario = Field("stable", description="What changes in the simulated world (drift, data quality, skew, ...).")
    scenario_start: str | None = Field(
        None, description="First day the scenario applies, YYYY-MM-DD; null: the first simulated day."
    )


class ValidateParams(_Section):
    """Great Expectations and the checks beside it."""

    min_rows: int = Field(100, ge=0, description="Fewest rows a daily batch (and the training set) may have.")
    max_rows: int = Field(5_000_000, ge=1, description="Most rows a daily batch may have.")
    max_training_rows: int = Field(1_825_000_000, ge=1, description="Most rows of training set and holdout together.")
    max_null_fraction: float = Field(
        0.05, ge=0, le=1, description="Per-column null fraction bound (0-1) written into proposed suites."
    )
    max_single_feature_auc: float = Field(
        0.95, gt=0.5, le=1, description="ROC AUC of one feature alone above which the training set fails as label leakage."
    )
    skew_scale_factor: float = Field(
        4.0, gt=1, description="A batch column whose median or spread differs from training by more than this factor is skew."
    )
    data_docs: bool = Field(
        True, description="Write Great Expectations Data Docs (HTML) for every daily batch; false: the JSON result only."
    )


class PrepareParams(_Section):
    """The training window (`prepare`)."""

    window_days: int = Field(30, ge=1, description="Days with matured labels in the training window.")
    holdout_days: int = Field(3, ge=1, description="Most recent labelled days kept out of training as the holdout.")
    reference_rows: int = Field(5000, ge=100, description="Rows of the training set kept as the drift reference sample.")


class TrainParams(_Section):
    """The model (scikit-learn HistGradientBoostingClassifier)."""

    seed: int = Field(42, description="Random seed of the fit, the holdout sample and the bootstrap.")
    learning_rate: float = Field(0.1, gt=0, description="Boosting learning rate (shrinkage per tree).")
    max_iter: int = Field(200, ge=1, description="Number of boosting iterations (trees).")
    max_depth: int | None = Field(6, ge=1, description="Maximum depth of each tree; null: unlimited.")
    min_samples_leaf: int = Field(40, ge=1, description="Fewest training rows in a leaf.")
    l2_regularization: float = Field(0.0, ge=0, description="L2 penalty on leaf values (0: none).")
    threads: int = Field(1, ge=1, le=256, description="OpenMP threads of the fit, fixed so results never depend on the machine.")


class GateParams(_Section):
    """The gate: candidate vs champion on the same fresh holdout."""

    min_roc_auc: float = Field(0.65, ge=0, le=1, description="Holdout ROC AUC floor every candidate must reach.")
    max_roc_auc_regression: float = Field(
        0.01,
        ge=0,
        le=1,
        description="Most ROC AUC the candidate may lose against the champion (lower end of the bootstrap interval).",
    )
    bootstrap_samples: int = Field(1000, ge=100, description="Resamples of the paired bootstrap of the AUC difference.")
    confidence: float = Field(0.95, gt=0.5, lt=1, description="Confidence level of the bootstrap interval (0-1).")
    slices: dict[str, list[float] | None] = Field(
        default_factory=lambda: {"region": None, "age": [30.0, 45.0, 60.0]},
        description="Slices judged apart: a categorical column (null: one slice per value) or a numerical one with band edges.",
    )
    max_slice_roc_auc_regression: float = Field(
        0.05, ge=0, le=1, description="Most ROC AUC any slice may lose against the champion."
    )
    min_slice_rows: int = Field(200, ge=1, description="Slices with fewer holdout rows are reported, not judged.")
    latency_single_row_p99_ms: float = Field(
        200.0, gt=0, description="p99 latency bound of a one-row prediction, in milliseconds."
    )
    latency_batch_rows: int = Field(1000, ge=1, description="Rows in the batch of the batch-latency check.")
    latency_batch_p99_ms: float = Field(
        2000.0, gt=0, description="p99 latency bound of a latency_batch_rows prediction, in milliseconds."
    )
    latency_calls: int = Field(20, ge=5, description="Prediction calls per latency round.")
    latency_rounds: int = Field(3, ge=1, description="Latency rounds; the quietest round's p99 is judged.")
    max_model_size_mb: float = Field(50.0, gt=0, description="Largest model artifact on disk, in megabytes.")
    max_prediction_psi: float = Field(
        0.25, gt=0, description="Most PSI between candidate and champion scores on the latest production batch."
    )
    shift_sample_rows: int = Field(
        50_000, ge=100, description="Rows of the latest batch scored by both models for the prediction shift."
    )


class ScoreParams(_Section):
    """Batch scoring (`score`), also the scoring call of the gate and reproduce."""

    chunk_rows: int = Field(250_000, ge=1, description="Rows per predict call; bounds memory.")
    threads: int = Field(0, ge=0, description="Predict threads (0: every core); 1-2 on a worker shared with other tasks.")
    decision_threshold: float = Field(
        0.5, gt=0, lt=1, description="Score cut-off at which shadow mode counts champion and challenger decisions that differ."
    )
    histogram_bins: int = Field(
        20, ge=2, le=1000, description="Bins of the score histogram on [0, 1] behind the summary's percentiles."
    )


class DriftParams(_Section):
    """Drift and live performance (`drift`, `performance`) and the retraining brakes."""

    psi_threshold: float = Field(0.2, gt=0, description="PSI above which a feature counts the day as drifted.")
    n_bins: int = Field(10, ge=2, le=100, description="Frozen quantile bins per numerical feature in the reference profile.")
    consecutive_windows: int = Field(2, ge=1, description="Drifted days in a row before a retrain is requested.")
    cooldown_days: int = Field(
        7,
        ge=0,
        description=(
            "Days after the end of the champion's training data (and after a retrain request) before a retrain may be "
            "requested; at least simulate.label_delay_days, so a retrain's effect is measurable before the next."
        ),
    )
    min_labelled_drifted_days: int = Field(
        10,
        ge=0,
        description=(
            "Days since the shift began (the drift streak's first day, or the first day of low live AUC) that must have "
            "matured labels before a retrain: the retrain then trains on those days (0: do not wait)."
        ),
    )
    refresh_after_shift: bool = Field(
        True,
        description=(
            "Request a retrain when a champion that learned a shift from its first labelled days can learn from twice as "
            "many (or a whole window): a project that does not retrain on a schedule still catches up with the new regime."
        ),
    )
    min_live_roc_auc: float = Field(
        0.6, ge=0, le=1, description="Live ROC AUC under which a matured day counts against the champion (0: off)."
    )
    max_live_auc_drop: float = Field(
        0.1,
        gt=0,
        le=1,
        description="Drop of live ROC AUC below the holdout AUC that counts a matured day against the champion (1: off).",
    )
    performance_days: int = Field(
        3, ge=1, description="Matured days in a row that must fail for a performance-triggered retrain."
    )
    min_importance: float = Field(
        0.0,
        ge=0,
        lt=1,
        description="Share of permutation importance under which a feature's drift is reported, not counted (0: all count).",
    )
    chunk_rows: int = Field(100_000, ge=1000, description="Rows per streamed chunk when counting a batch; bounds memory.")
    report_sample_rows: int = Field(20_000, ge=100, description="Batch rows drawn for the histograms of the HTML report.")
    html_report: bool = Field(
        True, description="Write the Evidently HTML report of every day; false: JSON summary and MLflow only."
    )
    engine: Literal["arrow", "local", "spark"] | None = Field(
        None, description="Deprecated: use engine.name (arrow means local). Kept so older params files load, with a warning."
    )
    spark_master: str | None = Field(None, description="Deprecated: use engine.spark_master.")


class EngineParams(_Section):
    """Where the data-heavy steps (drift, scoring, live performance) run: here, or on Spark."""

    name: Literal["local", "spark", "auto"] = Field(
        "local",
        description="local: pyarrow/pandas on this machine; spark: Spark (same results); auto: Spark above auto_rows rows.",
    )
    spark_master: str = Field(
        "local[*]",
        description='Spark master (local[*], spark://host:7077, yarn); "" keeps spark-submit\'s; PIPELINES_SPARK_MASTER wins.',
    )
    auto_rows: int = Field(
        5_000_000, ge=1, description="With name auto: a day with more rows than this (Parquet metadata) runs on Spark."
    )
    spark_conf: dict[str, str] = Field(
        default_factory=dict, description="Spark settings applied when the session starts (spark.driver.memory, ...)."
    )


class ServeParams(_Section):
    """The online server (pipelines/serving/) and its rollout of a challenger."""

    host: str = Field("127.0.0.1", description="Address the server listens on (loopback by default).")
    port: int = Field(8000, ge=1, le=65535, description="TCP port the server listens on.")
    poll_seconds: float = Field(
        10.0, gt=0, description="Seconds between checks of the registry's champion and challenger aliases."
    )
    max_batch_rows: int = Field(1000, ge=1, description="Most rows in one request; more get HTTP 413.")
    threads: int = Field(1, ge=0, description="Predict threads per request (1: lowest single-row latency; 0: every core).")
    switch_interval_ms: float = Field(
        1.0, gt=0, le=100, description="The server's interpreter-lock switch interval, in milliseconds."
    )
    reload_any_host: bool = Field(False, description="Accept POST /reload from any host; false: from loopback only.")
    predictions_dir: str = Field(
        "data/predictions_online", description="Online prediction log, <dir>/<day>/part-*.parquet, read by drift and performance."
    )
    log_flush_seconds: float = Field(2.0, gt=0, description="Most seconds between writes of the prediction log's parts.")
    compact_rows: int = Field(
        1_000_000, ge=1, description="Most rows in one compacted file of a closed day's prediction log (more when the "
        "day would otherwise need over 48 files)."
    )
    compact_grace_seconds: float = Field(
        3600.0, ge=0, description="Seconds a compacted file of the prediction log is in place before a later compaction "
        "of its day deletes the parts it holds (a reader that listed them can still open them)."
    )
    shadow_queue: int = Field(
        1000, ge=1, description="Requests waiting for off-path scoring; beyond it they are dropped and counted."
    )
    canary_stages: list[float] = Field(
        default_factory=lambda: [5.0, 25.0, 50.0, 100.0],
        description="Canary traffic shares in percent, rising to 100 (sticky by entity id).",
    )
    bake_seconds: float = Field(300.0, ge=0, description="Least time in each rollout stage (shadow included), in seconds.")
    min_requests: int = Field(200, ge=1, description="Least requests the challenger sees in a stage before it moves on.")
    check_seconds: float = Field(30.0, gt=0, description="Seconds between guardrail checks.")
    max_error_rate: float = Field(0.01, ge=0, le=1, description="Guardrail: most challenger errors per challenger request (0-1).")
    p99_slo_ms: float = Field(50.0, gt=0, description="Guardrail: challenger p99 model latency bound, in milliseconds...")
    p99_vs_champion: float = Field(
        1.5, ge=1, description="...breached only when also this many times the champion's p99 in the same window."
    )
    max_prediction_psi: float = Field(
        0.25, gt=0, description="Guardrail: most PSI of challenger vs champion scores on the same requests."
    )
    psi_min_pairs: int = Field(
        200, ge=10, description="Paired scores needed before the prediction PSI and extreme-score guardrails are judged."
    )
    extreme_score: float = Field(
        0.0001, gt=0, lt=0.5, description="A score below this or above 1 minus this (or not finite) counts as extreme."
    )
    max_extreme_share: float = Field(
        0.005, ge=0, le=1,
        description="Guardrail: most share of extreme scores of the challenger above the champion's on the same requests.",
    )
    alpha: float = Field(
        0.05, gt=0, lt=0.5,
        description="Most often a challenger that is not better is promoted by the sequential test on live outcomes "
        "(one-sided, at any number of looks); a worse one is rejected at the same level.",
    )
    min_outcomes: int = Field(100, ge=10, description="Least matured outcomes (entities) before the sequential test decides.")
    max_outcomes: int = Field(
        5000, ge=10, description="Outcomes after which a rollout that showed no difference ends: the champion stays."
    )

    @field_validator("canary_stages")
    @classmethod
    def _stages_rise_to_100(cls, v: list[float]) -> list[float]:
        if not v or any(b <= a for a, b in pairwise(v)) or v[0] <= 0 or v[-1] != FULL_SHARE:
            raise ValueError("canary stages must rise strictly from above 0 and end at 100 (percent)")
        return v


class Params(_Section):
    """params.yaml: one section per stage."""

    project: ProjectParams = Field(ProjectParams(), description="MLflow names: registered model and experiment.")
    data: DataParams = Field(description="Data folders and column roles.")
    simulate: SimulateParams = Field(SimulateParams(), description="The simulated demo feed.")
    validate_: ValidateParams = Field(
        ValidateParams(), alias="validate", description="Validation of daily batches and the training set."
    )
    prepare: PrepareParams = Field(PrepareParams(), description="The training window and holdout.")
    train: TrainParams = Field(TrainParams(), description="Model hyperparameters.")
    gate: GateParams = Field(GateParams(), description="The gate a candidate must pass to become champion.")
    score: ScoreParams = Field(ScoreParams(), description="Batch scoring.")
    drift: DriftParams = Field(DriftParams(), description="Drift, live performance and retraining brakes.")
    engine: EngineParams = Field(EngineParams(), description="The engine of drift, scoring and live performance.")
    serve: ServeParams = Field(ServeParams(), description="The online server and challenger rollout.")

    @model_validator(mode="after")
    def _horizon_after_the_first_decision(self) -> Params:
        low, high = self.serve.min_outcomes, self.serve.max_outcomes
        if high < low:
            raise ValueError(
                f"serve.max_outcomes {high} is below serve.min_outcomes {low}: every rollout would stop at its horizon "
                "before the sequential test may decide"
            )
        return self

    @model_validator(mode="after")
    def _cooldown_covers_the_label_delay(self) -> Params:
        cooldown, delay = self.drift.cooldown_days, self.simulate.label_delay_days
        if cooldown < delay:
            raise ValueError(
                f"drift.cooldown_days {cooldown} is below the label delay (simulate.label_delay_days {delay}): "
                f"a second retrain could start before the first one's labels show its effect; set it to {delay} or more"
            )
        return self

    @field_validator("data", mode="before")
    @classmethod
    def _data_required(cls, v: object) -> object:
        if v is None:
            raise ValueError("the data section is required")
        return v
