"""[general] of the site file: device groups, ratings and coefficients for CEE and CCUE.

T/CECA-G 0355—2025 6.2.2 formula (2): C = λ·U_c·P_c·N_c + β·U_s·P_s·N_s + γ·U_n·P_n·N_n, with
the Annex B defaults λ = 0.85, β = 0.10, γ = 0.05; Annex A.2-A.5 for the ratings P (SEE, DEE,
NEE) and the loads U.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

GroupKind = Literal["compute", "storage", "network"]
GROUP_KINDS: tuple[GroupKind, ...] = ("compute", "storage", "network")
# What a device's rating P is for each kind (Annex A.2-A.4).
RATING_MEASURE: Mapping[GroupKind, str] = {"compute": "SEE", "storage": "DEE", "network": "NEE"}
NETWORK_ONLY = ("ports", "available_bandwidth_bps", "unknown_line_rate_bps")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


def _unique(value: list[str], what: str) -> list[str]:
    if any(not s for s in value):
        raise ValueError(f"{what} must be non-empty strings")
    doubled = sorted({s for s in value if value.count(s) > 1})
    if doubled:
        raise ValueError(f"{what} listed twice: {', '.join(doubled)}")
    return value


class DeviceGroup(_Strict):
    """[[general.groups]]: N devices of one model, their rating P and where their load is read.

    Every series of the load metric (cpu_util_pct for compute and storage; the port octet
    counters for network) whose source is in `sources` and whose labels include `labels` is
    one measured device (one port for network).
    """

    name: str = Field(min_length=1)
    kind: GroupKind
    count: int = Field(ge=1)
    rating: float = Field(gt=0)
    rating_source: str = Field(min_length=1)
    sources: list[str] = Field(min_length=1)
    labels: dict[str, str] = Field(default_factory=dict)
    ports: list[str] = Field(default_factory=list)
    available_bandwidth_bps: float | None = Field(default=None, gt=0)
    unknown_line_rate_bps: float | dict[str, float] | None = None

    @field_validator("sources")
    @classmethod
    def _sources(cls, value: list[str]) -> list[str]:
        return _unique(value, "source ids")

    @field_validator("ports")
    @classmethod
    def _ports(cls, value: list[str]) -> list[str]:
        return _unique(value, "ports")

    @field_validator("unknown_line_rate_bps")
    @classmethod
    def _rates(cls, value: float | dict[str, float] | None) -> float | dict[str, float] | None:
        rates = value.values() if isinstance(value, dict) else [] if value is None else [value]
        if any(not r > 0 for r in rates):
            raise ValueError("line rates must be > 0 bit/s")
        return value

    @model_validator(mode="after")
    def _network_keys(self) -> DeviceGroup:
        if self.kind != "network":
            given = [k for k in NETWORK_ONLY if getattr(self, k) not in (None, [])]
            if given:
                raise ValueError(
                    f"group {self.name!r}: {', '.join(given)} apply to kind = \"network\" only"
                )
        return self

    def fallback_rate(self, if_name: str | None, if_index: str | None) -> float | None:
        """Return the configured line rate (bit/s) of a port whose device reports none."""
        rates = self.unknown_line_rate_bps
        if rates is None or not isinstance(rates, dict):
            return rates
        for key in (if_name, if_index):
            if key is not None and key in rates:
                return rates[key]
        return rates.get("*")


class GeneralSection(_Strict):
    """[general]: what a general-computing evaluation needs beyond the energies."""

    model_config = ConfigDict(populate_by_name=True)

    lambda_: float = Field(default=0.85, alias="lambda", ge=0)
    beta: float = Field(default=0.10, ge=0)
    gamma: float = Field(default=0.05, ge=0)
    method: Literal[1, 2] = 1
    unit_time_h: float = Field(default=1.0, gt=0)
    cpu_metric: str = Field(default="cpu_util_pct", min_length=1)
    groups: list[DeviceGroup] = Field(min_length=1)

    @model_validator(mode="after")
    def _groups(self) -> GeneralSection:
        names = [g.name for g in self.groups]
        doubled = sorted({n for n in names if names.count(n) > 1})
        if doubled:
            raise ValueError(f"group names must be unique; repeated: {', '.join(doubled)}")
        if not any(g.kind == "compute" for g in self.groups):
            raise ValueError('give at least one group with kind = "compute" (servers)')
        return self

    def coefficient(self, kind: GroupKind) -> float:
        """Return λ, β or γ for a group kind (Annex B)."""
        return {"compute": self.lambda_, "storage": self.beta, "network": self.gamma}[kind]
