"""The site file (config/site.toml): which sources make up E_total, E_IT and E_green."""

from __future__ import annotations

from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from dcmeter.base.configfile import ConfigError, load_model
from dcmeter.collectors.evaluation.grid_factors import GRID_FACTORS, PueThresholds
from dcmeter.collectors.evaluation.site_ai import AiSection
from dcmeter.collectors.evaluation.site_equipment import Equipment
from dcmeter.collectors.evaluation.site_general import GeneralSection
from dcmeter.collectors.evaluation.site_ids import check_ids
from dcmeter.collectors.evaluation.site_instruments import Instrument, check_instruments
from dcmeter.collectors.evaluation.site_plausibility import Plausibility
from dcmeter.collectors.evaluation.site_reconcile import Reconcile, check_reconcile
from dcmeter.collectors.evaluation.site_rules import RULE_KEYS, check_declared

ItPoint = Literal["it_ups", "it_pdu", "it_input"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


DEFAULT_TIMEZONE = "Asia/Shanghai"


class SiteInfo(_Strict):
    """[site]: the data center's name, address, operator, the time zone its reports show
    times in (IANA name), and its grid emission factor η (kg CO2/kWh)."""

    name: str = Field(min_length=1)
    address: str | None = None
    operator: str | None = None
    timezone: str = DEFAULT_TIMEZONE
    region: str | None = None
    grid_factor_kg_per_kwh: float | None = Field(default=None, gt=0)

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as e:
            raise ValueError(
                f"unknown time zone {value!r}: give an IANA name such as"
                f" {DEFAULT_TIMEZONE!r} or 'UTC'") from e
        return value

    @field_validator("region")
    @classmethod
    def _known_region(cls, value: str | None) -> str | None:
        if value is not None and value not in GRID_FACTORS:
            raise ValueError(f"unknown region {value!r}; valid: {', '.join(GRID_FACTORS)}")
        return value

    @model_validator(mode="after")
    def _exactly_one_factor(self) -> SiteInfo:
        given = (self.region is not None) + (self.grid_factor_kg_per_kwh is not None)
        if given != 1:
            what = "both were given" if given == 2 else "neither was given"
            raise ValueError(
                "give exactly one of site.region (one of: "
                f"{', '.join(GRID_FACTORS)}) or site.grid_factor_kg_per_kwh (kg CO2/kWh);"
                f" {what}"
            )
        return self


SourceIds = list[str]


class EnergyMetrics(_Strict):
    """[energy.metrics]: the metric names read as energy counter and as power gauge."""

    counter: str = Field(default="energy_import_kwh", min_length=1)
    power: str = Field(default="power_w", min_length=1)


class Energy(_Strict):
    """[energy]: the sources summed for E_total, E_IT and E_green (GB 40879 measurement points)."""

    total: SourceIds = Field(min_length=1)
    it: SourceIds = Field(min_length=1)
    green: SourceIds = Field(default_factory=list)
    it_point: ItPoint = "it_input"
    metrics: EnergyMetrics = Field(default_factory=EnergyMetrics)

    @field_validator("total", "it", "green")
    @classmethod
    def _ids(cls, value: SourceIds) -> SourceIds:
        return check_ids(value)


class PueLevels(_Strict):
    """[pue_levels]: override of the GB 40879-2021 level thresholds (PUE, dimensionless)."""

    level1: float = Field(default=1.20, ge=1.0)
    level2: float = Field(default=1.30, ge=1.0)
    level3: float = Field(default=1.50, ge=1.0)

    @model_validator(mode="after")
    def _ascending(self) -> PueLevels:
        if not self.level1 <= self.level2 <= self.level3:
            raise ValueError(
                f"need level1 <= level2 <= level3, got {self.level1}, {self.level2}, {self.level3}"
            )
        return self

    def thresholds(self) -> PueThresholds:
        """Return these bounds as the evaluation's threshold table."""
        return PueThresholds(self.level1, self.level2, self.level3)


class Quality(_Strict):
    """[quality]: data-quality limits; 900 s is the longest sample interval (T/CECA-G 0355 A.5)."""

    max_gap_s: float = Field(default=900.0, gt=0)


class Site(_Strict):
    """The whole site file."""

    site: SiteInfo
    energy: Energy
    pue_levels: PueLevels | None = None
    quality: Quality = Field(default_factory=Quality)
    plausibility: Plausibility = Field(default_factory=Plausibility)
    general: GeneralSection | None = None
    ai: AiSection | None = None
    # The clause 5 register (T/CECA-G 0355—2025 5.1-5.3), read by the clause 4.1 verdict.
    equipment: list[Equipment] = Field(default_factory=list)
    # The instruments' calibration and stated accuracy (collectors/evaluation/site_instruments.py).
    instruments: list[Instrument] = Field(default_factory=list)
    # Sets of sources behind one meter, cross-checked in every window (site_reconcile.py).
    reconcile: list[Reconcile] = Field(default_factory=list)

    # Fixed rules of the standard this site changes on purpose: dotted key -> the reason.
    deviations: dict[str, str] = Field(default_factory=dict)

    @field_validator("reconcile")
    @classmethod
    def _reconcile_names(cls, value: list[Reconcile]) -> list[Reconcile]:
        return check_reconcile(value)

    @field_validator("deviations")
    @classmethod
    def _known_rules(cls, value: dict[str, str]) -> dict[str, str]:
        unknown = sorted(set(value) - set(RULE_KEYS))
        if unknown:
            raise ValueError(
                f"not a fixed rule of the standard: {', '.join(unknown)}; the rules a site may"
                f" declare a deviation from: {', '.join(RULE_KEYS)}"
            )
        empty = sorted(k for k, why in value.items() if not why.strip())
        if empty:
            raise ValueError(f"give the reason for each deviation; empty: {', '.join(empty)}")
        return value


def load_site(path: Path | str) -> Site:
    """Load and validate a site file; raise ConfigError naming the file, key and valid values.

    A fixed rule of the standard changed without a declaration under [deviations], or a
    declaration of a rule kept, is an error (collectors/evaluation/site_rules.py).
    """
    site = load_model(Path(path), Site)
    faults = check_declared(site) + check_instruments(site.instruments, named_sources(site))
    if faults:
        raise ConfigError("\n".join(f"{path}: key {key}: {text}" for key, text in faults))
    return site


def named_sources(site: Site) -> list[str]:
    """Every source id a list of the site file names (energy, ai, general groups)."""
    ids = {*site.energy.total, *site.energy.it, *site.energy.green}
    if site.ai is not None:
        ids |= {*site.ai.servers, *site.ai.gpus, *site.ai.network, *site.ai.storage}
    if site.general is not None:
        ids |= {s for g in site.general.groups for s in g.sources}
    ids |= set(reconciled_sources(site))
    return sorted(ids)


def reconciled_sources(site: Site) -> list[str]:
    """Every source id a [[reconcile]] set names (its meter and the sources below it)."""
    return sorted({s for r in site.reconcile for s in (r.meter, *r.below)})
