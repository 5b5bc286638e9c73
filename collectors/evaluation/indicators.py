"""Infrastructure indicators PUE, CE and CUE (T/CECA-G 0355—2025 4.1, 6.1; GB 40879-2021)."""

from __future__ import annotations

import math

from collectors.evaluation.grid_factors import DEFAULT_PUE_THRESHOLDS, PueThresholds


def pue(e_total_kwh: float, e_it_kwh: float) -> float | None:
    """Return PUE, GB 40879's electric energy ratio R = E / E_IT (T/CECA-G 0355 4.1, 6.1); kWh."""
    if not e_it_kwh > 0:
        return None
    return e_total_kwh / e_it_kwh


def pue_level(
    value: float | None, thresholds: PueThresholds = DEFAULT_PUE_THRESHOLDS
) -> int | None:
    """Return the GB 40879-2021 level (1, 2, 3) a PUE reaches, None beyond level 3 (4.1)."""
    if value is None or math.isnan(value):
        return None
    for level, bound in enumerate((thresholds.level1, thresholds.level2, thresholds.level3), 1):
        if value <= bound:
            return level
    return None


def carbon_emissions_kg(e_total_kwh: float, e_green_kwh: float, factor_kg_per_kwh: float) -> float:
    """Return CE = (E_total − E_green) × η in kg CO2 (T/CECA-G 0355—2025 6.1.2 formula (2)).

    Energies in kWh, η in kg CO2/kWh; the non-green energy is clipped at 0.
    """
    return max(e_total_kwh - e_green_kwh, 0.0) * factor_kg_per_kwh


def cue(ce_kg: float, e_it_kwh: float) -> float | None:
    """Return CUE = CE / E_IT in kg CO2/kWh (T/CECA-G 0355—2025 6.1.2 formula (1))."""
    if not e_it_kwh > 0:
        return None
    return ce_kg / e_it_kwh
