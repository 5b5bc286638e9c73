"""[ai] of the site file: servers under test, weights, quality targets and precision for AEE.

T/CECA-G 0355—2025 4.3, 6.3 and Annexes C to E: AEE = F / E per task, combined with task
weights per phase and the phase weights w_t, w_i; the energy is measured at the servers
under test (GB 40879 point 8); each model must reach its Annex D quality target.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from types import MappingProxyType
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from dcmeter.collectors.evaluation.flops import PRECISION_TO_FP16
from dcmeter.collectors.evaluation.site_ids import check_ids

Phase = Literal["train", "infer"]
PHASES: tuple[Phase, ...] = ("train", "infer")
Better = Literal["higher", "lower"]
PHASE_WEIGHT_VALUES = (0.0, 0.5, 1.0)  # 6.3.2: w_t, w_i ∈ {0, 0.5, 1}, w_t + w_i = 1


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class QualityTarget(_Strict):
    """One figure a run must reach: `higher` figures are fractions 0..1, `lower` ones losses."""

    metric: str = Field(min_length=1)
    target: float
    better: Better = "higher"

    def met(self, value: float) -> bool:
        """Tell whether `value` reaches the target (>= for higher, <= for lower is better)."""
        return value >= self.target if self.better == "higher" else value <= self.target


class TargetEntry(QualityTarget):
    """[[ai.quality_targets]]: a target for one (phase, model); replaces its Annex D defaults."""

    phase: Phase
    model: str = Field(min_length=1)

    @field_validator("model")
    @classmethod
    def _lower(cls, value: str) -> str:
        return value.strip().lower()


def _targets(*items: tuple[str, float, Better]) -> tuple[QualityTarget, ...]:
    return tuple(QualityTarget(metric=m, target=t, better=b) for m, t, b in items)


# Annex D quality targets, fractions where the standard writes a percentage (75.9 % -> 0.759).
# llama2-7b training: the standard writes "cross-entropy ≈ 5.0"; read as <= 5.0.
DEFAULT_QUALITY_TARGETS: Mapping[tuple[str, str], tuple[QualityTarget, ...]] = MappingProxyType({
    ("train", "resnet-50"): _targets(("accuracy", 0.759, "higher")),
    ("train", "retinanet"): _targets(("map", 0.340, "higher")),
    ("train", "bert-large"): _targets(("accuracy", 0.72, "higher")),
    ("train", "llama2-70b"): _targets(("cross_entropy", 0.925, "lower")),
    ("train", "llama2-7b"): _targets(("cross_entropy", 5.0, "lower")),
    ("train", "dlrm-dcnv2"): _targets(("auc", 0.8031, "higher")),
    ("infer", "resnet-50"): _targets(("accuracy", 0.760, "higher")),
    ("infer", "retinanet"): _targets(("map", 0.375, "higher")),
    ("infer", "bert-large"): _targets(("f1", 0.900, "higher")),
    ("infer", "llama2-70b"): _targets(
        ("rouge1", 0.450, "higher"), ("rouge2", 0.220, "higher"), ("rougeL", 0.280, "higher")
    ),
    ("infer", "llama2-7b"): _targets(("mmlu", 0.46, "higher")),
    ("infer", "dlrm-dcnv2"): _targets(("auc", 0.81, "higher")),
})


class PhaseWeights(_Strict):
    """[ai.phase_weights]: w_t and w_i of 6.3.2, each 0, 0.5 or 1, summing to 1."""

    train: float
    infer: float

    @model_validator(mode="after")
    def _allowed(self) -> PhaseWeights:
        if self.train not in PHASE_WEIGHT_VALUES or self.infer not in PHASE_WEIGHT_VALUES:
            raise ValueError(
                f"train and infer must each be 0, 0.5 or 1, got {self.train}, {self.infer}"
            )
        if self.train + self.infer != 1.0:
            raise ValueError(f"train + infer must be 1, got {self.train + self.infer}")
        return self


class AiMetrics(_Strict):
    """[ai.metrics]: metric names read for the servers under test and their GPUs."""

    counter: str | None = Field(default=None, min_length=1)  # None: [energy.metrics] counter
    power: str | None = Field(default=None, min_length=1)  # None: [energy.metrics] power
    gpu_energy: str = Field(default="gpu_energy_j", min_length=1)
    gpu_power: str = Field(default="gpu_power_w", min_length=1)
    gpu_util: str = Field(default="gpu_util_pct", min_length=1)


class AiSection(_Strict):
    """[ai]: what an AI evaluation (AEE, ACE, calibration figures) needs beyond the energies."""

    servers: list[str] = Field(min_length=1)
    gpus: list[str] = Field(default_factory=list)
    network: list[str] = Field(default_factory=list)
    storage: list[str] = Field(default_factory=list)
    precision: str = "fp16"
    precision_factors: dict[str, float] = Field(default_factory=dict)
    phase_weights: PhaseWeights | None = None
    task_weights: dict[Phase, dict[str, float]] = Field(default_factory=dict)
    quality_targets: list[TargetEntry] = Field(default_factory=list)
    min_repetitions: int = Field(default=5, ge=1)
    min_sampling_density: float = Field(default=0.10, ge=0.0, le=1.0)
    power_sample_period_s: float = Field(default=1.0, gt=0)
    peak_flops: float | None = Field(default=None, gt=0)
    advanced_gflops_per_wh: float = Field(default=224.0, gt=0)
    metrics: AiMetrics = Field(default_factory=AiMetrics)

    @field_validator("servers", "gpus", "network", "storage")
    @classmethod
    def _source_ids(cls, value: list[str]) -> list[str]:
        return check_ids(value)

    @field_validator("precision_factors")
    @classmethod
    def _factors(cls, value: dict[str, float]) -> dict[str, float]:
        bad = {k: v for k, v in value.items() if not v > 0}
        if bad:
            raise ValueError(f"conversion factors must be > 0, got {bad}")
        return {k.strip().lower(): v for k, v in value.items()}

    @field_validator("task_weights")
    @classmethod
    def _weights(cls, value: dict[Phase, dict[str, float]]) -> dict[Phase, dict[str, float]]:
        for phase, weights in value.items():
            if not weights:
                raise ValueError(f"{phase}: name at least one model, or leave the table out")
            bad = {m: w for m, w in weights.items() if not 0 < w <= 1}
            if bad:
                raise ValueError(f"{phase}: each weight must be in (0, 1], got {bad}")
            total = math.fsum(weights.values())
            if not math.isclose(total, 1.0, abs_tol=1e-9):
                raise ValueError(f"{phase}: the model weights must sum to 1, got {total:g}")
        return {p: {m.strip().lower(): w for m, w in ws.items()} for p, ws in value.items()}

    @model_validator(mode="after")
    def _known_precision(self) -> AiSection:
        known = self.precision_table()
        if self.precision.strip().lower() not in known:
            raise ValueError(
                f"unknown precision {self.precision!r}; known: {', '.join(known)}"
                " (add others under [ai.precision_factors])"
            )
        pairs = [(t.phase, t.model, t.metric) for t in self.quality_targets]
        doubled = sorted({p for p in pairs if pairs.count(p) > 1})
        if doubled:
            raise ValueError(f"quality target given twice: {doubled}")
        return self

    def precision_table(self) -> dict[str, float]:
        """Return the FP16-equivalent factors: the catalogue's, overridden by the site's."""
        return {**PRECISION_TO_FP16, **self.precision_factors}

    def targets(self, phase: str, model: str) -> tuple[QualityTarget, ...]:
        """Return the quality targets of (phase, model): the site's, else Annex D's."""
        own = tuple(
            QualityTarget(metric=t.metric, target=t.target, better=t.better)
            for t in self.quality_targets
            if t.phase == phase and t.model == model
        )
        return own or DEFAULT_QUALITY_TARGETS.get((phase, model), ())
