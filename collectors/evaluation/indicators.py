"""Indicators as pure formulas: PUE, CE, CUE (T/CECA-G 0355—2025 4.1, 6.1; GB 40879-2021) and
C, E per unit time, CEE with its level, CCUE (4.2, 6.2.2)."""

from __future__ import annotations

import math
from collections.abc import Sequence

from dcmeter.collectors.evaluation.exact import at_least, at_most, below
from dcmeter.collectors.evaluation.grid_factors import DEFAULT_PUE_THRESHOLDS, PueThresholds


def pue(e_total_kwh: float, e_it_kwh: float) -> float | None:
    """Return PUE, GB 40879's electric energy ratio R = E / E_IT (T/CECA-G 0355 4.1, 6.1); kWh."""
    if not e_it_kwh > 0:
        return None
    return e_total_kwh / e_it_kwh


def pue_level(
    value: float | None, thresholds: PueThresholds = DEFAULT_PUE_THRESHOLDS
) -> int | None:
    """Return the GB 40879-2021 level (1, 2, 3) a PUE reaches, None beyond level 3 (4.1).

    A PUE below 1 (total energy below the IT energy it includes) is physically impossible and
    gets no level, as does a non-finite one: a level is only granted to a measured ratio.
    Bounds are inclusive and compared at the grading precision (exact.py): a PUE of exactly
    1.30 from the readings is level 2, one a reading's last digit above it level 3.
    """
    if value is None or not math.isfinite(value) or below(value, 1.0):
        return None
    for level, bound in enumerate((thresholds.level1, thresholds.level2, thresholds.level3), 1):
        if at_most(value, bound):
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


CEE_ADVANCED = 50.0  # Table 1, standard points per Wh
CEE_ENERGY_SAVING = 20.0


def computing_power(terms: Sequence[tuple[float, float, float, float]]) -> float:
    """Return C = Σ k·U·P·N over (k, U, P, N) terms (T/CECA-G 0355—2025 6.2.2 formula (2)).

    k: λ, β or γ; U: load fraction 0..1; P: a device's rating in standard points (SEE, DEE,
    NEE); N: device count. C is in standard points.
    """
    return math.fsum(k * u * p * n for k, u, p, n in terms)


def energy_per_unit_time_wh(e_total_kwh: float, hours: float, unit_time_h: float) -> float | None:
    """Return E of 6.2.2 formula (1), the total energy per unit time in Wh: kWh·1000 / h · unit.

    The standard defines E as "the data center's total electricity consumption per unit time
    during the measurement period, in Wh"; with the default unit of 1 h it is the mean total
    power in W, numerically.
    """
    if not hours > 0:
        return None
    return e_total_kwh * 1000.0 / hours * unit_time_h


def cee(c_points: float, e_wh: float) -> float | None:
    """Return CEE = C / E in standard points per Wh (T/CECA-G 0355—2025 6.2.2 formula (1))."""
    if not e_wh > 0:
        return None
    return c_points / e_wh


def cee_level(value: float | None) -> str | None:
    """Return the Table 1 level a CEE reaches: "advanced" (>= 50), "energy_saving" (>= 20).

    T/CECA-G 0355—2025 4.2 Table 1, standard points per Wh, bounds inclusive and compared at
    the grading precision (exact.py). A non-finite CEE gets no level.
    """
    if at_least(value, CEE_ADVANCED):
        return "advanced"
    return "energy_saving" if at_least(value, CEE_ENERGY_SAVING) else None


AEE_ADVANCED = 224.0  # Table 2, GFLOPs per Wh


def aee_level(value: float | None, threshold: float = AEE_ADVANCED) -> str | None:
    """Return the Table 2 level an AEE (GFLOPs/Wh) reaches: "advanced" at >= 224, else None.

    T/CECA-G 0355—2025 4.3 Table 2; the bound is inclusive and compared at the grading
    precision (exact.py). A non-finite AEE gets no level.
    """
    return "advanced" if at_least(value, threshold) else None


def ccue(ce_kg: float, c_points: float) -> float | None:
    """Return CCUE = CE / C in kg CO2 per standard point (T/CECA-G 0355—2025 6.2.2 b)."""
    if not c_points > 0:
        return None
    return ce_kg / c_points
