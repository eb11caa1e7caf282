"""Load and validate params.yaml, the single source of configuration.

No side effects at import: nothing is created, no tracking URI is set. Deployment settings
(MLflow URI, project root) come from environment variables read when a function asks.
"""

from __future__ import annotations

import os
from functools import cached_property
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from pipelines.errors import PipelineError, first_line

Scenario = Literal[
    "stable", "feature_drift", "concept_drift", "data_quality", "skew", "login_policy", "null_spike", "label_flip", "flapping"
]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ProjectParams(_Section):
    model_name: str = "credit-default"
    experiment: str = "credit-default"


class DataParams(_Section):
    source: Literal["simulated", "files"] = "simulated"
    raw_dir: str = "data/raw"
    labels_dir: str = "data/labels"
    validated_dir: str = "data/validated"
    quarantine_dir: str = "data/quarantine"
    training_dir: str = "data/training"
    predictions_dir: str = "data/predictions"
    reports_dir: str = "data/reports"
    id_col: str = "customer_id"
    timestamp_col: str = "event_ts"
    target: str = "default"
    positive_label: str | int | float | bool | None = None
    numerical: list[str]
    categorical: list[str]

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
    seed: int = 42
    start: str = "2026-01-01"
    days: int = Field(24, ge=1)
    rows_per_day: int = Field(2000, ge=1)
    label_delay_days: int = Field(7, ge=0)
    scenario: Scenario = "stable"
    scenario_start: str | None = None


class ValidateParams(_Section):
    min_rows: int = Field(100, ge=0)
    max_rows: int = Field(5_000_000, ge=1)
    max_training_rows: int = Field(1_825_000_000, ge=1)
    max_null_fraction: float = Field(0.05, ge=0, le=1)
    max_single_feature_auc: float = Field(0.95, gt=0.5, le=1)
    skew_scale_factor: float = Field(4.0, gt=1)
    data_docs: bool = True


class PrepareParams(_Section):
    window_days: int = Field(30, ge=1)
    holdout_days: int = Field(3, ge=1)
    reference_rows: int = Field(5000, ge=100)


class TrainParams(_Section):
    seed: int = 42
    learning_rate: float = Field(0.1, gt=0)
    max_iter: int = Field(200, ge=1)
    max_depth: int | None = Field(6, ge=1)
    min_samples_leaf: int = Field(40, ge=1)
    l2_regularization: float = Field(0.0, ge=0)
    threads: int = Field(1, ge=1, le=256)


class GateParams(_Section):
    min_roc_auc: float = Field(0.65, ge=0, le=1)
    max_roc_auc_regression: float = Field(0.01, ge=0, le=1)
    bootstrap_samples: int = Field(1000, ge=100)
    confidence: float = Field(0.95, gt=0.5, lt=1)
    slices: dict[str, list[float] | None] = Field(default_factory=lambda: {"region": None, "age": [30.0, 45.0, 60.0]})
    max_slice_roc_auc_regression: float = Field(0.05, ge=0, le=1)
    min_slice_rows: int = Field(200, ge=1)
    latency_single_row_p99_ms: float = Field(200.0, gt=0)
    latency_batch_rows: int = Field(1000, ge=1)
    latency_batch_p99_ms: float = Field(2000.0, gt=0)
    latency_calls: int = Field(20, ge=5)
    latency_rounds: int = Field(3, ge=1)
    max_model_size_mb: float = Field(50.0, gt=0)
    max_prediction_psi: float = Field(0.25, gt=0)
    shift_sample_rows: int = Field(50_000, ge=100)


class ScoreParams(_Section):
    chunk_rows: int = Field(250_000, ge=1)
    threads: int = Field(0, ge=0)
    decision_threshold: float = Field(0.5, gt=0, lt=1)
    histogram_bins: int = Field(20, ge=2, le=1000)


class DriftParams(_Section):
    psi_threshold: float = Field(0.2, gt=0)
    n_bins: int = Field(10, ge=2, le=100)
    consecutive_windows: int = Field(2, ge=1)
    cooldown_days: int = Field(3, ge=0)
    min_labelled_drifted_days: int = Field(0, ge=0)
    min_live_roc_auc: float = Field(0.0, ge=0, le=1)
    max_live_auc_drop: float = Field(1.0, gt=0, le=1)
    performance_days: int = Field(3, ge=1)
    min_importance: float = Field(0.0, ge=0, lt=1)
    chunk_rows: int = Field(100_000, ge=1000)
    report_sample_rows: int = Field(20_000, ge=100)
    html_report: bool = True
    engine: Literal["arrow", "spark"] = "arrow"
    spark_master: str = "local[*]"


class ServeParams(_Section):
    """The online server (pipelines/serving/) and its rollout of a challenger."""

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    poll_seconds: float = Field(10.0, gt=0)
    max_batch_rows: int = Field(1000, ge=1)
    threads: int = Field(1, ge=0)
    switch_interval_ms: float = Field(1.0, gt=0, le=100)
    reload_any_host: bool = False
    predictions_dir: str = "data/predictions_online"
    log_flush_seconds: float = Field(2.0, gt=0)
    shadow_queue: int = Field(1000, ge=1)
    canary_stages: list[float] = Field(default_factory=lambda: [5.0, 25.0, 50.0, 100.0])
    bake_seconds: float = Field(300.0, ge=0)
    min_requests: int = Field(200, ge=1)
    check_seconds: float = Field(30.0, gt=0)
    max_error_rate: float = Field(0.01, ge=0, le=1)
    p99_slo_ms: float = Field(50.0, gt=0)
    p99_vs_champion: float = Field(1.5, ge=1)
    max_prediction_psi: float = Field(0.25, gt=0)
    psi_min_pairs: int = Field(200, ge=10)
    alpha: float = Field(0.05, gt=0, lt=0.5)
    min_outcomes: int = Field(100, ge=10)
    planned_outcomes: int = Field(2000, ge=10)

    @field_validator("canary_stages")
    @classmethod
    def _stages_rise_to_100(cls, v: list[float]) -> list[float]:
        if not v or any(b <= a for a, b in zip(v, v[1:])) or v[0] <= 0 or v[-1] != 100:
            raise ValueError("canary stages must rise strictly from above 0 and end at 100 (percent)")
        return v


class Params(_Section):
    project: ProjectParams = ProjectParams()
    data: DataParams
    simulate: SimulateParams = SimulateParams()
    validate_: ValidateParams = Field(ValidateParams(), alias="validate")
    prepare: PrepareParams = PrepareParams()
    train: TrainParams = TrainParams()
    gate: GateParams = GateParams()
    score: ScoreParams = ScoreParams()
    drift: DriftParams = DriftParams()
    serve: ServeParams = ServeParams()

    @field_validator("data", mode="before")
    @classmethod
    def _data_required(cls, v: object) -> object:
        if v is None:
            raise ValueError("the data section is required")
        return v


class Settings:
    """Resolved configuration: params plus the project root all relative paths hang off."""

    def __init__(self, params: Params, root: Path) -> None:
        self.params = params
        self.root = root

    def path(self, *parts: str) -> Path:
        """A path inside the project (absolute paths in params are kept as they are)."""
        return self.root.joinpath(*parts)

    @cached_property
    def raw_dir(self) -> Path:
        return self.path(self.params.data.raw_dir)

    @cached_property
    def labels_dir(self) -> Path:
        return self.path(self.params.data.labels_dir)

    @property
    def validated_dir(self) -> Path:
        return self.path(self.params.data.validated_dir)

    @property
    def quarantine_dir(self) -> Path:
        return self.path(self.params.data.quarantine_dir)

    @property
    def training_dir(self) -> Path:
        return self.path(self.params.data.training_dir)

    @property
    def predictions_dir(self) -> Path:
        return self.path(self.params.data.predictions_dir)

    @property
    def shadow_predictions_dir(self) -> Path:
        """The challenger's scores of the same rows, beside the champion's."""
        return self.predictions_dir.with_name(self.predictions_dir.name + "_shadow")

    @property
    def online_predictions_dir(self) -> Path:
        """The online server's prediction log: <dir>/<day>/part-*.parquet."""
        return self.path(self.params.serve.predictions_dir)

    @property
    def reports_dir(self) -> Path:
        return self.path(self.params.data.reports_dir)

    @property
    def models_dir(self) -> Path:
        return self.path("models")

    @property
    def expectations_dir(self) -> Path:
        return self.path("expectations")


def project_root() -> Path:
    """The project root: $PIPELINES_ROOT if set, else the folder holding this package."""
    env = os.environ.get("PIPELINES_ROOT")
    return Path(env).resolve() if env else Path(__file__).resolve().parent.parent


def _one_line(err: ValidationError) -> str:
    parts = []
    for e in err.errors():
        loc = ".".join(str(x) for x in e["loc"]).replace("validate_", "validate")
        parts.append(f"{loc}: {e['msg']}" if loc else e["msg"])
    return "; ".join(parts)


def load_settings(params_file: Path | str | None = None) -> Settings:
    """Read and validate params.yaml; raise PipelineError with a one-line reason if it is wrong."""
    root = project_root()
    path = Path(params_file) if params_file else root / "params.yaml"
    if not path.is_file():
        raise PipelineError(f"params file not found: {path}")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise PipelineError(f"{path} is not valid YAML: {first_line(exc)}") from exc
    if not isinstance(raw, dict):
        raise PipelineError(f"{path} must be a mapping of sections (project, data, ...)")
    try:
        params = Params.model_validate(raw)
    except ValidationError as exc:
        raise PipelineError(f"invalid {path.name}: {_one_line(exc)}") from exc
    return Settings(params, path.resolve().parent)
