"""Measurement uncertainty of the results: each source's accuracy, propagated to E, PUE, CUE, ….

Conventions (docs/evaluation.md, "Data quality and uncertainty"):

- A source's `accuracy` a is the bound of its relative error (the class index of a meter, a
  datasheet "±5 %"): the error is taken as uniformly distributed on [-a, +a] (rectangular,
  GUM 4.3.7), standard uncertainty a / √3.
- Errors of different sources are independent. A sum Σ x_i (x_i with bound a_i) has the
  combined bound √(Σ (a_i·x_i)²) / |Σ x_i|; a product or quotient √(Σ a_i²). Every relative
  figure is therefore expressed at the level of the inputs, √3 × the combined standard
  uncertainty: exactly the bound for one source, a coverage near 92 % for several (the sum of
  uniform errors tends to a normal distribution, and √3 σ covers 91.7 % of it). It is
  compared with the calibration MPEs of seed 004 (STANDARD.md §4) as it stands.
- A worst-case figure adds the bounds linearly (Σ |a_i·x_i| / |Σ x_i|; Σ a_i for a ratio).
- Grid emission factors, device counts and ratings are exact; so are counted quantities
  (SNMP octets, tokens). Timestamps are exact (the clock status is a data-quality item).
- Sampling error of integrated power (power between samples taken as linear) is not included.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from dcmeter.collectors.evaluation.exact import at_most
from dcmeter.collectors.evaluation.roles import RoleEnergy, used_series
from dcmeter.collectors.evaluation.series import Series

# Maximum permissible errors of a calibration result (seed 004, STANDARD.md §4), relative.
MPE: dict[str, float] = {
    "energy": 0.05,
    "power": 0.01,
    "compute": 0.02,
    "network": 0.01,
    "storage": 0.01,
    "tokens": 0.01,
}

# Defaults used where a source declares no accuracy: (relative bound, provenance).
METER = (
    0.005,
    "default for an electricity meter (energy and power): class 0.5S, IEC 62053-22 (±0.5 %"
    " active energy); configure `accuracy` = 0.01 for a class 1 meter (IEC 62053-21)",
)
BMC_POWER = (
    0.05,
    "default for BMC DCMI power (IPMI): DCMI 1.5 specifies no accuracy; the BMC sums its PSUs'"
    " PMBus READ_PIN, which PSU datasheets specify at ±2-5 % of reading near rated load (e.g."
    " ±5 % or ±10 W at 50-100 % load, wider below); the upper end is taken",
)
NVML_POWER = (
    0.05,
    "default for NVML board power/energy: the NVML reference gives ±5 % of current draw for"
    " nvmlDeviceGetPowerUsage (stated for Fermi/Kepler; no figure for later GPUs, whose"
    " readings are 1 s averages); ±5 % kept; the energy counter integrates the same sensor",
)
NVML_UTIL = (
    0.05,
    "default for NVML utilisation: a time share of kernel activity over NVML's sample period"
    " (1/6 s - 1 s); no accuracy documented, ±5 % assumed",
)
PSUTIL_CPU = (
    0.01,
    "default for psutil CPU utilisation: from /proc/stat tick counters (10 ms ticks), below"
    " 0.02 percentage points per CPU over 60 s; ±1 % of reading covers quantisation and"
    " sampling phase",
)
SNMP_CPU = (
    0.02,
    "default for storage CPU over SNMP (hrProcessorLoad): an integer percent averaged over the"
    " last minute; ±2 % of reading assumed",
)
EXACT_COUNT = (0.0, "exact count (SNMP octet counters, tokens); counter time base not included")
EXACT_CONFIG = (0.0, "configured or reported value taken as exact (interface speed, uptime)")
UNKNOWN = (
    0.05,
    "no default known for this metric: ±5 % assumed; configure the source's `accuracy`",
)


def source_accuracy(series: Series) -> tuple[float, str]:
    """Return the relative error bound of a series' source and where it comes from.

    The source's configured `accuracy` wins; otherwise a default by metric name and the
    source's `kind` label (meter, compute, storage, network, gpu), each with its provenance.
    """
    if series.accuracy is not None:
        return series.accuracy, "configured (source accuracy)"
    metric, kind = series.metric, series.labels.get("kind", "")
    if metric.startswith("gpu_"):
        if metric.endswith("_util_pct"):
            return NVML_UTIL
        return NVML_POWER
    if metric.startswith("energy_"):
        return METER
    if metric.startswith("power") and metric.endswith("_w"):
        return METER if kind == "meter" else BMC_POWER
    if metric == "cpu_util_pct":
        return SNMP_CPU if kind == "storage" else PSUTIL_CPU
    if (metric.startswith("if_") and metric.endswith("_octets")) or metric.startswith("tokens"):
        return EXACT_COUNT
    if metric in ("if_speed_bps", "if_speed_unknown", "sys_uptime_s", "if_counter_discontinuity_s"):
        return EXACT_CONFIG
    return UNKNOWN


def sources_accuracy(series: Iterable[Series]) -> tuple[float, str]:
    """Return the largest accuracy bound among series of one source (e.g. one per phase)."""
    found = [source_accuracy(s) for s in series]
    return max(found, default=UNKNOWN, key=lambda f: f[0])


def sum_rel(parts: Sequence[tuple[float, float]]) -> float:
    """Return the relative uncertainty of Σ value over (value, rel) parts, errors independent.

    √(Σ (value·rel)²) / |Σ value|; 0 for an exact sum, infinity for a zero sum of uncertain
    parts. Negative values (a difference) are allowed.
    """
    # hypot scales before squaring: tiny bounds (1e-168) do not underflow to subnormals.
    absolute = math.hypot(*(v * r for v, r in parts))
    total = abs(math.fsum(v for v, _ in parts))
    if absolute == 0.0:
        return 0.0
    return absolute / total if total > 0 else math.inf


def sum_rel_worst(parts: Sequence[tuple[float, float]]) -> float:
    """Return the worst-case relative error of a sum: Σ |value·rel| / |Σ value|."""
    absolute = math.fsum(abs(v * r) for v, r in parts)
    total = abs(math.fsum(v for v, _ in parts))
    if absolute == 0.0:
        return 0.0
    return absolute / total if total > 0 else math.inf


def ratio_rel(*rels: float) -> float:
    """Return the relative uncertainty of a product or quotient: root sum of squares."""
    return math.hypot(*rels)


def ratio_rel_worst(*rels: float) -> float:
    """Return the worst-case relative error of a product or quotient (first order): Σ rel."""
    return math.fsum(abs(r) for r in rels)


def within_mpe(rel: float, quantity: str) -> bool:
    """Tell whether a relative uncertainty is within the calibration MPE of `quantity`."""
    if quantity not in MPE:
        raise KeyError(f"no MPE for {quantity!r}; known: {', '.join(MPE)}")
    return at_most(rel, MPE[quantity])  # at the grading precision (exact.py)


@dataclass(frozen=True, slots=True)
class Part:
    """One source's energy (kWh) in a role and the accuracy bound it is taken with."""

    source: str
    metric: str
    kwh: float
    accuracy: float
    provenance: str


def role_parts(role: RoleEnergy, series_list: Sequence[Series]) -> list[Part]:
    """Return each figure of a role with its source's accuracy (the largest of its series)."""
    parts = []
    for figure in role.figures:
        chosen = [s for s in used_series(role, series_list) if s.source == figure.sources[0]]
        accuracy, provenance = sources_accuracy(chosen)
        parts.append(Part(figure.sources[0], figure.metric, figure.kwh, accuracy, provenance))
    return parts


def _finite(x: float | None) -> float | None:
    return x if x is not None and math.isfinite(x) else None


def _rss(*rels: float | None) -> float | None:
    known = [r for r in rels if r is not None]
    return ratio_rel(*known) if len(known) == len(rels) else None


def _linear(*rels: float | None) -> float | None:
    known = [r for r in rels if r is not None]
    return ratio_rel_worst(*known) if len(known) == len(rels) else None


METHOD = (
    "accuracy a of a source = bound of its relative error, uniform on [-a, a] (GUM 4.3.7);"
    " sources independent; sum: sqrt(sum((a_i*E_i)^2)) / |sum(E_i)|; ratio (PUE, CUE):"
    " sqrt(sum(rel^2)); figures at the level of the bounds (sqrt(3) x combined standard"
    " uncertainty, about 92 % coverage for several sources, the bound itself for one);"
    " worst_case adds the bounds linearly; grid factor exact; sampling error of integrated"
    " power not included"
)


def infrastructure_uncertainty(
    roles: Mapping[str, RoleEnergy], series_list: Sequence[Series]
) -> dict[str, Any]:
    """Return the result's `uncertainty` block: relative uncertainty of E_total, E_IT, PUE, CUE.

    `roles` holds the "total", "it" and "green" role energies. E_total and E_IT: sums over
    their sources; CE = (E_total - E_green)·η with η exact, so CE's relative uncertainty is the
    non-green energy's (a difference of independent sums); PUE = E_total / E_IT and
    CUE = CE / E_IT: root sum of squares. None where the figure itself is not computed (or
    is zero), within_mpe None where the energy is unknown.
    """
    parts = {name: role_parts(role, series_list) for name, role in roles.items()}
    rel: dict[str, float | None] = {}
    worst: dict[str, float | None] = {}
    for name, role in roles.items():
        pairs = [(p.kwh, p.accuracy) for p in parts[name]]
        known = role.kwh is not None
        rel[name] = _finite(sum_rel(pairs)) if known else None
        worst[name] = _finite(sum_rel_worst(pairs)) if known else None
    total, green = roles["total"], roles["green"]
    nongreen: float | None = None
    nongreen_worst: float | None = None
    if total.kwh is not None and green.kwh is not None and total.kwh > green.kwh:
        diff = [(p.kwh, p.accuracy) for p in parts["total"]]
        diff += [(-p.kwh, p.accuracy) for p in parts["green"]]
        nongreen, nongreen_worst = _finite(sum_rel(diff)), _finite(sum_rel_worst(diff))
    sources: dict[str, dict[str, Any]] = {}
    for name, role_list in parts.items():
        for p in role_list:
            entry = sources.setdefault(
                p.source,
                {
                    "roles": [],
                    "metric": p.metric,
                    "accuracy": p.accuracy,
                    "provenance": p.provenance,
                    "kwh": p.kwh,
                },
            )
            entry["roles"].append(name)

    def flag(x: float | None) -> bool | None:
        return None if x is None else within_mpe(x, "energy")

    return {
        "energy_rel": rel["total"],
        "energy_total_rel": rel["total"],
        "energy_it_rel": rel["it"],
        "energy_green_rel": rel["green"],
        "carbon_rel": nongreen,
        "pue_rel": _rss(rel["total"], rel["it"]),
        "cue_rel": _rss(nongreen, rel["it"]),
        "worst_case": {
            "energy_total_rel": worst["total"],
            "energy_it_rel": worst["it"],
            "energy_green_rel": worst["green"],
            "carbon_rel": nongreen_worst,
            "pue_rel": _linear(worst["total"], worst["it"]),
            "cue_rel": _linear(nongreen_worst, worst["it"]),
        },
        "within_mpe": {"energy": flag(rel["total"]), "energy_it": flag(rel["it"])},
        "mpe": {"energy": MPE["energy"]},
        "method": METHOD,
        "sources": sources,
    }
