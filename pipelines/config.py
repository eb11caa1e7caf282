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
    numerical: list[str]
    categorical: list[str]

    @model_validator(mode="after")
    def _distinct_roles(self) -> "DataParams":
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

    @property
    def p(self) -> Params:
        return self.params

    def path(self, *parts: str) -> Path:
        """A path inside the project (absolute paths in params are kept as they are)."""
        return self.root.joinpath(*parts)

    @cached_property
    def raw_dir(self) -> Path:
        return self.path(self.p.data.raw_dir)

    @cached_property
    def labels_dir(self) -> Path:
        return self.path(self.p.data.labels_dir)

    @property
    def validated_dir(self) -> Path:
        return self.path(self.p.data.validated_dir)

    @property
    def quarantine_dir(self) -> Path:
        return self.path(self.p.data.quarantine_dir)

    @property
    def training_dir(self) -> Path:
        return self.path(self.p.data.training_dir)

    @property
    def predictions_dir(self) -> Path:
        return self.path(self.p.data.predictions_dir)

    @property
    def shadow_predictions_dir(self) -> Path:
        """The challenger's scores of the same rows, beside the champion's."""
        return self.predictions_dir.with_name(self.predictions_dir.name + "_shadow")

    @property
    def reports_dir(self) -> Path:
        return self.path(self.p.data.reports_dir)

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
