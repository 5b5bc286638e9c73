"""Settings every source shares, validated when the agent's config is loaded."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

# GB 40879 measurement points a source may stand for (STANDARD.md §5).
POINTS = (
    "total",
    "green",
    "it_ups",
    "it_pdu",
    "it_input",
    "cooling",
    "distribution",
    "auxiliary",
)
KINDS = ("compute", "storage", "network", "meter", "gpu")


class SourceConfigBase(BaseModel):
    """Identity, timeout, labels and accuracy of one target."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")
    timeout_s: float = Field(default=5.0, gt=0, le=60)
    labels: dict[str, str] = Field(default_factory=dict)
    accuracy: float | None = Field(default=None, gt=0, lt=1)

    @field_validator("labels")
    @classmethod
    def _known_point_and_kind(cls, labels: dict[str, str]) -> dict[str, str]:
        point = labels.get("point")
        if point is not None and point not in POINTS:
            raise ValueError(f"labels.point must be one of {', '.join(POINTS)}")
        kind = labels.get("kind")
        if kind is not None and kind not in KINDS:
            raise ValueError(f"labels.kind must be one of {', '.join(KINDS)}")
        return labels
