"""[plausibility] of the site file: the physical limits a sample must keep to be counted.

A sample outside them is kept in the store (the agent signed it) but left out of every figure
and makes the result not valid (collectors/evaluation/plausibility.py, docs/evaluation.md).
The defaults are generous on purpose: they catch what no instrument of that kind can read,
not a device running hot; a site tightens them per source kind or per source.
"""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict, Field, field_validator

# The largest power (W) one source of a kind can draw, by the `kind` label of the source:
# meter: a utility intake of a large campus (a big hall is 10-30 MW); compute, storage,
# network: a rack-scale system behind one BMC or rack PDU (an NVL72 rack is about 132 kW);
# gpu: one accelerator module as NVML reports it (a GB200 superchip is about 2.7 kW).
DEFAULT_MAX_POWER_W: Mapping[str, float] = {
    "meter": 200e6,
    "compute": 250e3,
    "storage": 250e3,
    "network": 250e3,
    "gpu": 5e3,
}
# A source without a kind label, or with another kind, is held to the meter's limit.
FALLBACK_KIND = "meter"
# The coarsest step (kWh) of an energy counter of a kind: a register counting whole kWh may
# step by 1 kWh in any interval; NVML counts mJ.
DEFAULT_RESOLUTION_KWH: Mapping[str, float] = {"gpu": 0.001}
FALLBACK_RESOLUTION_KWH = 1.0
# The fastest Ethernet port standardised (IEEE 802.3dj, 1.6 Tbit/s), bit/s.
DEFAULT_MAX_LINE_RATE_BPS = 1.6e12


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


def _positive(value: Mapping[str, float], what: str, zero_ok: bool = False) -> Mapping[str, float]:
    bad = sorted(k for k, v in value.items() if not (v >= 0 if zero_ok else v > 0))
    if bad:
        raise ValueError(f"{what} must be {'>= 0' if zero_ok else '> 0'}: {', '.join(bad)}")
    return value


class SourceLimits(_Strict):
    """[plausibility.sources."<id>"]: one source's own limits, replacing its kind's."""

    max_power_w: float | None = Field(default=None, gt=0)
    resolution_kwh: float | None = Field(default=None, ge=0)
    max_line_rate_bps: float | None = Field(default=None, gt=0)


class Plausibility(_Strict):
    """[plausibility]: physical limits of samples, by source kind, with per-source overrides."""

    margin: float = Field(default=0.10, ge=0, le=10)
    negative_power_fraction: float = Field(default=0.01, ge=0, le=1)
    max_power_w: dict[str, float] = Field(default_factory=dict)
    resolution_kwh: dict[str, float] = Field(default_factory=dict)
    max_line_rate_bps: float = Field(default=DEFAULT_MAX_LINE_RATE_BPS, gt=0)
    sources: dict[str, SourceLimits] = Field(default_factory=dict)

    @field_validator("max_power_w")
    @classmethod
    def _powers(cls, value: dict[str, float]) -> dict[str, float]:
        return dict(_positive(value, "plausibility.max_power_w (W) by kind"))

    @field_validator("resolution_kwh")
    @classmethod
    def _resolutions(cls, value: dict[str, float]) -> dict[str, float]:
        return dict(_positive(value, "plausibility.resolution_kwh by kind", zero_ok=True))

    def power_w(self, source: str, kind: str | None) -> float:
        """Return the largest power (W) `source` of `kind` may draw, without the margin."""
        own = self.sources.get(source)
        if own is not None and own.max_power_w is not None:
            return own.max_power_w
        k = kind if kind in self.max_power_w or kind in DEFAULT_MAX_POWER_W else FALLBACK_KIND
        assert k is not None
        return self.max_power_w.get(k, DEFAULT_MAX_POWER_W.get(k, DEFAULT_MAX_POWER_W["meter"]))

    def resolution(self, source: str, kind: str | None) -> float:
        """Return the step (kWh) an energy counter of `source` of `kind` may count at once."""
        own = self.sources.get(source)
        if own is not None and own.resolution_kwh is not None:
            return own.resolution_kwh
        if kind is not None and kind in self.resolution_kwh:
            return self.resolution_kwh[kind]
        return DEFAULT_RESOLUTION_KWH.get(kind or "", FALLBACK_RESOLUTION_KWH)

    def line_rate_bps(self, source: str) -> float:
        """Return the fastest line rate (bit/s) a port of `source` may have."""
        own = self.sources.get(source)
        if own is not None and own.max_line_rate_bps is not None:
            return own.max_line_rate_bps
        return self.max_line_rate_bps
