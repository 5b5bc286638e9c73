"""PUE, its GB 40879 level, CE and CUE against hand-computed values."""

from __future__ import annotations

import pytest

from dcmeter.collectors.evaluation.grid_factors import (
    DEFAULT_PUE_THRESHOLDS,
    GRID_FACTORS,
    PueThresholds,
    grid_factor,
)
from dcmeter.collectors.evaluation.indicators import carbon_emissions_kg, cue, pue, pue_level


def test_pue_is_total_over_it() -> None:
    assert pue(150.0, 100.0) == 1.5  # 150 kWh / 100 kWh
    assert pue(120.0, 100.0) == 1.2
    assert pue(10.0, 0.0) is None
    assert pue(10.0, -1.0) is None


@pytest.mark.parametrize(
    ("value", "level"),
    [
        (1.05, 1),
        (1.20, 1),  # at the level-1 bound: ≤ 1.20
        (1.2001, 2),
        (1.30, 2),
        (1.3001, 3),
        (1.5, 3),  # at the limit value: ≤ 1.50
        (1.51, None),  # beyond level 3
        (None, None),
    ],
)
def test_pue_level_at_the_thresholds(value: float | None, level: int | None) -> None:
    assert pue_level(value, DEFAULT_PUE_THRESHOLDS) == level


def test_pue_level_of_a_computed_ratio_at_the_bound() -> None:
    assert pue_level(pue(120.0, 100.0)) == 1  # 120/100 is the double nearest 1.2, as is 1.20


def test_pue_level_with_overridden_thresholds() -> None:
    custom = PueThresholds(level1=1.25, level2=1.35, level3=1.6)
    assert pue_level(1.25, custom) == 1
    assert pue_level(1.55, custom) == 3
    with pytest.raises(ValueError, match="level1 <= level2 <= level3"):
        PueThresholds(level1=1.4, level2=1.3, level3=1.5)


def test_carbon_emissions_subtract_green_electricity() -> None:
    # (1000 − 200) kWh × 0.55 kg/kWh = 440 kg
    assert carbon_emissions_kg(1000.0, 200.0, 0.55) == pytest.approx(440.0)
    # no green: 1000 × 0.55 = 550 kg
    assert carbon_emissions_kg(1000.0, 0.0, 0.55) == pytest.approx(550.0)
    # more green than total: non-green clipped at 0
    assert carbon_emissions_kg(100.0, 150.0, 0.55) == 0.0


def test_cue_is_emissions_over_it_energy() -> None:
    assert cue(440.0, 800.0) == pytest.approx(0.55)  # 440 kg / 800 kWh
    assert cue(440.0, 0.0) is None


def test_grid_factor_table() -> None:
    assert grid_factor("east-2023").kg_per_kwh == 0.5500
    assert grid_factor("national-2022").kg_per_kwh == 0.5366
    assert grid_factor("southwest-2023").year == 2023
    assert len(GRID_FACTORS) == 9
    assert "Ministry of Ecology and Environment" in grid_factor("north-2023").describe()
    with pytest.raises(KeyError, match="valid: national-2022"):
        grid_factor("mars-2023")
