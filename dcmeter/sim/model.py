"""A simulated site's physics: load swings, IT power, cooling and losses, exact energies.

IT power follows a load curve `it_kw(t) = base + swing·sin(2πt/period)`; the total input is
IT plus cooling (a share of IT plus a fixed part) plus distribution losses (likewise). Every
power is affine in the load, so energies are closed-form integrals: the simulator's meters
report them exactly and the demo can compare a measured PUE with the true one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SiteModel:
    """Powers in kW, times in s since the Unix epoch, counters in kWh from `t0`."""

    t0: float
    it_base_kw: float = 800.0
    it_swing_kw: float = 240.0
    period_s: float = 20.0
    cooling_share: float = 0.22
    cooling_fixed_kw: float = 60.0
    loss_share: float = 0.04
    loss_fixed_kw: float = 15.0
    total_start_kwh: float = 1234.5
    it_start_kwh: float = 987.25

    def _scale(self) -> tuple[float, float]:
        """Total = a·IT + b (kW)."""
        return 1 + self.cooling_share + self.loss_share, self.cooling_fixed_kw + self.loss_fixed_kw

    def it_kw(self, t: float) -> float:
        """IT power at `t` (kW)."""
        w = 2 * math.pi / self.period_s
        return self.it_base_kw + self.it_swing_kw * math.sin(w * (t - self.t0))

    def total_kw(self, t: float) -> float:
        """Total input power at `t` (kW)."""
        a, b = self._scale()
        return a * self.it_kw(t) + b

    def it_energy_kwh(self, t: float) -> float:
        """IT energy since `t0` (kWh): the integral of it_kw."""
        w = 2 * math.pi / self.period_s
        x = t - self.t0
        kws = self.it_base_kw * x + self.it_swing_kw * (1 - math.cos(w * x)) / w
        return kws / 3600.0

    def total_energy_kwh(self, t: float) -> float:
        """Total energy since `t0` (kWh)."""
        a, b = self._scale()
        return a * self.it_energy_kwh(t) + b * (t - self.t0) / 3600.0

    def truth(self, start: float, end: float) -> dict[str, float]:
        """True E_total, E_IT (kWh) and PUE over [start, end]."""
        total = self.total_energy_kwh(end) - self.total_energy_kwh(start)
        it = self.it_energy_kwh(end) - self.it_energy_kwh(start)
        return {"total": total, "it": it, "green": 0.0, "pue": total / it}

    def meter_values(self, which: str, t: float) -> dict[str, float]:
        """What the `total` or `it` meter shows at `t`: power in W, energy in kWh."""
        if which == "total":
            return {
                "power_w": self.total_kw(t) * 1000,
                "energy_import_kwh": self.total_start_kwh + self.total_energy_kwh(t),
                "energy_export_kwh": 0.0,
                "frequency_hz": 50.0,
            }
        return {
            "power_w": self.it_kw(t) * 1000,
            "energy_import_kwh": self.it_start_kwh + self.it_energy_kwh(t),
        }
