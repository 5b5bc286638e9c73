"""The quantities a calibration of an AI computing platform covers (seed 004, STANDARD.md §4).

Each quantity has its unit, its range, the maximum permissible error (MPE) of the result and
the MPE of the measurement standard the proposal names, and the series units an indication
of it can be read from (a gauge in a unit of `gauge_units`, or a counter in a unit of
`counter_units`, whose increase over the dwell is taken).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

# Seed 004's table as STANDARD.md §4 quotes it, one line per quantity (the `basis` texts).
_SEED = "seed 004 (proposed calibration specification for AI computing platforms), "


@dataclass(frozen=True, slots=True)
class Mpe:
    """A maximum permissible error: ± (relative × |value| + absolute), in the quantity's unit.

    `relative` is a fraction (0.01 = 1 %); `absolute` is in the quantity's unit. Either may be
    None (not part of the limit).
    """

    relative: float | None = None
    absolute: float | None = None

    def at(self, reference: float) -> float:
        """Return the MPE's half-width at `reference` (quantity unit): rel × |ref| + abs."""
        return (self.relative or 0.0) * abs(reference) + (self.absolute or 0.0)

    def as_dict(self) -> dict[str, float | None]:
        """Return {"relative", "absolute"} as the record carries it."""
        return {"relative": self.relative, "absolute": self.absolute}


@dataclass(frozen=True, slots=True)
class CounterUnit:
    """How a counter's increase over the dwell becomes the quantity.

    value = increase × `factor`, then divided by the dwell (s) when `per_second` (a rate
    quantity from an amount counter: bytes -> Gbit/s, J -> W); else the increase itself
    (an amount quantity: Wh from a Wh counter).
    """

    factor: float
    per_second: bool


@dataclass(frozen=True, slots=True)
class Quantity:
    """One calibration quantity of seed 004.

    `range` is (lo, hi) in `unit`, None where the proposal states none; `mpe` is the MPE of
    the result, `reference_mpe` the measurement standard's (None where it names none);
    `gauge_units` maps a gauge series' unit to the factor into `unit`; `counter_units` maps a
    counter series' unit to its CounterUnit.
    """

    name: str
    unit: str
    range: tuple[float, float] | None
    mpe: Mpe
    reference_mpe: Mpe | None
    basis: str
    gauge_units: Mapping[str, float] = field(default_factory=dict)
    counter_units: Mapping[str, CounterUnit] = field(default_factory=dict)


_GBIT = 1e9
# A byte counter: bytes × 8 / 1e9 per second = Gbit/s.
_BYTES_GBIT_S = {"B": CounterUnit(8 / _GBIT, True)}
# Tokens per second read from a counter of tokens.
_TOKENS = {"tokens": CounterUnit(1.0, True)}


def _q(
    name: str, unit: str, lo_hi: tuple[float, float] | None, mpe: Mpe, ref: Mpe | None,
    basis: str, gauge: Mapping[str, float], counter: Mapping[str, CounterUnit],
) -> Quantity:
    return Quantity(
        name, unit, lo_hi, mpe, ref, _SEED + basis,
        MappingProxyType(dict(gauge)), MappingProxyType(dict(counter)),
    )


QUANTITIES: Mapping[str, Quantity] = MappingProxyType({
    "power": _q(
        "power", "W", (0.0, 200e3), Mpe(relative=0.05), Mpe(relative=0.01),
        "energy (power at load): 0-200 kW, MPE of the result ±5 %, standard's MPE ±1 %"
        " (power meter)",
        {"W": 1.0, "kW": 1e3},
        # An energy counter's increase per second is the mean power (NVML's energy in J).
        {"J": CounterUnit(1.0, True), "Wh": CounterUnit(3600.0, True),
         "kWh": CounterUnit(3.6e6, True)},
    ),
    "energy": _q(
        "energy", "Wh", None, Mpe(relative=0.05), Mpe(relative=0.01),
        "energy: MPE of the result ±5 %, standard's MPE ±1 % (power meter); no range stated"
        " for the energy itself",
        {},
        {"Wh": CounterUnit(1.0, False), "kWh": CounterUnit(1e3, False),
         "J": CounterUnit(1 / 3600, False)},
    ),
    "network": _q(
        "network", "Gbit/s", (0.0, 800.0), Mpe(relative=0.01), Mpe(relative=0.01),
        "network capability, one port: 0-800 Gbps, MPE of the result ±1 %, standard's MPE"
        " ±1 % (network performance tester)",
        {"Gbit/s": 1.0}, _BYTES_GBIT_S,
    ),
    "storage": _q(
        "storage", "Gbit/s", (0.0, 24.0), Mpe(relative=0.01), Mpe(relative=0.01),
        "storage capability: 0-24 Gbit/s, MPE of the result ±1 %, standard's MPE ±1 %"
        " (storage stress software)",
        {"Gbit/s": 1.0}, _BYTES_GBIT_S,
    ),
    "inference": _q(
        "inference", "tokens/s", (0.0, 510e15), Mpe(relative=0.01), Mpe(relative=0.01),
        "AI inference throughput: 0-510e15 tokens/s, MPE of the result ±1 %, standard's MPE"
        " ±1 % (AI framework)",
        {"tokens/s": 1.0}, _TOKENS,
    ),
    "training": _q(
        "training", "tokens/s", (0.0, 170e15), Mpe(relative=0.01), Mpe(relative=0.01),
        "AI training throughput: 0-170e15 tokens/s, MPE of the result ±1 %, standard's MPE"
        " ±1 % (AI framework)",
        {"tokens/s": 1.0}, _TOKENS,
    ),
    "compute": _q(
        "compute", "FLOPS", (0.0, 1.024e18), Mpe(relative=0.02), Mpe(relative=0.01),
        "cluster compute: 0-1.024e18 FLOPS, MPE of the result ±2 %, standard's MPE ±1 %"
        " (benchmark set)",
        {"FLOPS": 1.0}, {"FLOP": CounterUnit(1.0, True)},
    ),
    # The proposal writes ±1 % for a quantity that is itself a percentage; dcmeter reads it
    # as ±1 percentage point (absolute), since 1 % of a reading near 0 % would be no limit.
    "effective_compute": _q(
        "effective_compute", "%", (0.0, 100.0), Mpe(absolute=1.0), None,
        "normalised effective compute: 0-100 %, MPE of the result ±1 % read as ±1 percentage"
        " point (absolute); no standard's MPE stated",
        {"%": 1.0}, {},
    ),
})
