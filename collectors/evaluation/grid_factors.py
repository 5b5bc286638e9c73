"""Dated reference tables: grid emission factors and the GB 40879 PUE level thresholds."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

PUBLISHER = "Ministry of Ecology and Environment of the People's Republic of China (生态环境部)"


@dataclass(frozen=True, slots=True)
class GridFactor:
    """One published grid emission factor η in kg CO2 per kWh (T/CECA-G 0355—2025 6.1.2)."""

    key: str
    region: str
    region_zh: str
    year: int
    kg_per_kwh: float
    publisher: str = PUBLISHER

    def describe(self) -> str:
        """Return a one-line citation of the factor: publisher, year and region."""
        return (
            f"{self.publisher}: {self.year} grid emission factor, {self.region} ({self.region_zh}),"
            f" {self.kg_per_kwh} kg CO2/kWh"
        )


def _table(*factors: GridFactor) -> Mapping[str, GridFactor]:
    return MappingProxyType({f.key: f for f in factors})


# Figures as listed in STANDARD.md §1. A newer publication gets new dated keys; old keys stay so
# that past results can be reproduced with the factor they used.
GRID_FACTORS: Mapping[str, GridFactor] = _table(
    GridFactor("national-2022", "national", "全国", 2022, 0.5366),
    GridFactor("national-2023", "national", "全国", 2023, 0.5306),
    GridFactor("north-2023", "North China grid", "华北", 2023, 0.6361),
    GridFactor("northeast-2023", "Northeast China grid", "东北", 2023, 0.5122),
    GridFactor("east-2023", "East China grid", "华东", 2023, 0.5500),
    GridFactor("central-2023", "Central China grid", "华中", 2023, 0.5271),
    GridFactor("northwest-2023", "Northwest China grid", "西北", 2023, 0.5543),
    GridFactor("south-2023", "China Southern grid", "南方", 2023, 0.4042),
    GridFactor("southwest-2023", "Southwest China grid", "西南", 2023, 0.2472),
)


def grid_factor(key: str) -> GridFactor:
    """Return the grid emission factor (kg CO2/kWh) for a table key such as "east-2023"."""
    try:
        return GRID_FACTORS[key]
    except KeyError:
        valid = ", ".join(GRID_FACTORS)
        raise KeyError(f"unknown grid-factor region {key!r}; valid: {valid}") from None


@dataclass(frozen=True, slots=True)
class PueThresholds:
    """Upper PUE bounds of GB 40879-2021 energy-efficiency levels 1, 2 and 3 (dimensionless)."""

    level1: float = 1.20
    level2: float = 1.30
    level3: float = 1.50

    def __post_init__(self) -> None:
        if not 1.0 <= self.level1 <= self.level2 <= self.level3:
            raise ValueError(
                "PUE thresholds must satisfy 1.0 <= level1 <= level2 <= level3, got"
                f" {self.level1}, {self.level2}, {self.level3}"
            )


# Commonly cited GB 40879-2021 thresholds (level 3 is the limit value). They could not be checked
# against the standard's own text: a site file may override them under [pue_levels].
DEFAULT_PUE_THRESHOLDS = PueThresholds()
PUE_THRESHOLDS_NOTE = (
    "GB 40879-2021 levels as commonly cited (level 1 <= 1.20, level 2 <= 1.30, level 3 <= 1.50);"
    " not checked against the standard's own text; overridable in the site file [pue_levels]"
)
