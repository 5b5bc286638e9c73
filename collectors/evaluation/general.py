"""Evaluate a general-computing window: loads U, computing power C, CEE with its level, CCUE.

T/CECA-G 0355—2025 4.2 (Table 1), 6.2.2 formulas (1) and (2), Annexes A.5 and B. The result
is the infrastructure result (energies, PUE, CE, CUE, their sources) with the general fields
added; its quality applies A.5: samples at most 15 min apart, a window of at least 12 h.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from dcmeter.collectors.evaluation.exact import at_most
from dcmeter.collectors.evaluation.indicators import (
    CEE_ADVANCED,
    CEE_ENERGY_SAVING,
    ccue,
    cee,
    cee_level,
    computing_power,
    energy_per_unit_time_wh,
)
from dcmeter.collectors.evaluation.infrastructure import evaluate_infrastructure
from dcmeter.collectors.evaluation.issues import issue
from dcmeter.collectors.evaluation.loads import (
    LINE_RATE_MARGIN,
    GaugeMean,
    counter_delta,
    line_rate,
    mean_utilisation,
    network_utilisation,
    reset_steps,
    wrap_ambiguous,
)
from dcmeter.collectors.evaluation.plausibility import flag, screen
from dcmeter.collectors.evaluation.quality import quality_block
from dcmeter.collectors.evaluation.series import Series
from dcmeter.collectors.evaluation.site import Site
from dcmeter.collectors.evaluation.site_general import (
    GROUP_KINDS,
    RATING_MEASURE,
    DeviceGroup,
    GroupKind,
)
from dcmeter.collectors.evaluation.uncertainty import (
    ratio_rel,
    ratio_rel_worst,
    source_accuracy,
    sum_rel,
    sum_rel_worst,
)

A5_MAX_INTERVAL_S = 900.0  # A.5: samples at most 15 min apart
ANNUAL_HOURS = 8760.0  # A.5: the annual figure is the 8760-hour mean
OCTETS = ("if_in_octets", "if_out_octets")
SPEED, DISCONTINUITY, UPTIME = "if_speed_bps", "if_counter_discontinuity_s", "sys_uptime_s"
UNCERTAINTY_METHOD = (
    "U of compute/storage: mean of the devices' time-weighted CPU means, each with its"
    " source's accuracy (sum rule); U of network: octet counters and line rates exact;"
    " C: sum rule over its terms (λ, β, γ, P, N exact); CEE = C / E and CCUE = CE / C:"
    " quotient rule with energy_rel and carbon_rel (unit time and window length exact)"
)


@dataclass
class GroupLoad:
    """The measured load of one device group and what it was computed from."""

    group: DeviceGroup
    load: float | None = None
    rel: float | None = None
    device_loads: list[tuple[float, float]] = field(default_factory=list)  # (U, rel) per device
    bits: float = 0.0  # network: traffic of the used ports
    available_bps: float | None = None  # network: their available bandwidth
    detail: list[dict[str, Any]] = field(default_factory=list)
    used: list[Series] = field(default_factory=list)
    issues: list[str] = field(default_factory=list)
    valid: bool = True


Index = Mapping[str, Sequence[Series]]  # series by source id


def _by_source(series: Sequence[Series]) -> dict[str, list[Series]]:
    index: dict[str, list[Series]] = {}
    for s in series:
        index.setdefault(s.source, []).append(s)
    return index


def _selected(index: Index, g: DeviceGroup, metrics: Sequence[str]) -> list[Series]:
    """Return the group's series of `metrics`: its sources', matching its labels and ports."""
    ports = set(g.ports)
    return [
        s
        for source in g.sources
        for s in index.get(source, ())
        if s.metric in metrics
        and all(s.labels.get(k) == v for k, v in g.labels.items())
        and (not ports or s.labels.get("if_name") in ports or s.labels.get("if_index") in ports)
    ]


def _missing(gl: GroupLoad, chosen: Sequence[Series], what: str) -> None:
    present = {s.source for s in chosen}
    for source in gl.group.sources:
        if source not in present:
            gl.issues.append(issue("no_group_series", source=source, metric=what))
            gl.valid = False


def _cpu_group(g: DeviceGroup, metric: str, index: Index, start: float,
               end: float, means: Mapping[Series, GaugeMean] | None = None) -> GroupLoad:
    """U of a compute or storage group: the mean of its devices' time-weighted CPU means.

    `means` holds mean_utilisation's result for series folded as their samples arrived.
    """
    gl = GroupLoad(g)
    chosen = _selected(index, g, (metric,))
    _missing(gl, chosen, metric)
    for s in chosen:
        m = means[s] if means and s in means else mean_utilisation(s, start, end)
        accuracy, provenance = source_accuracy(s)
        gl.issues.extend(
            issue("ctx.series", source=s.source, metric=s.metric, labels="", inner=i)
            for i in m.issues
        )
        gl.valid = gl.valid and m.valid
        gl.used.append(s)
        gl.detail.append({
            "source": s.source, "metric": s.metric, "load": m.mean, "coverage": m.coverage,
            "samples": m.samples, "accuracy": accuracy, "accuracy_source": provenance,
            "valid": m.valid,
        })
        if m.mean is not None:
            gl.device_loads.append((m.mean, accuracy))
    if gl.device_loads:
        gl.load = math.fsum(u for u, _ in gl.device_loads) / len(gl.device_loads)
        gl.rel = sum_rel(gl.device_loads)
    if len(chosen) > g.count:
        gl.issues.append(issue("load_count_note", n=len(chosen), count=g.count))
    return gl


def _one(index: Index, source: str, metric: str,
         labels: Mapping[str, str] | None) -> Series | None:
    for s in index.get(source, ()):
        if s.metric == metric and (labels is None or s.labels == labels):
            return s
    return None


def _port(g: DeviceGroup, gl: GroupLoad, pair: dict[str, Series], index: Index,
          start: float, end: float, gap_s: float) -> None:
    """Add one egress port's traffic and line rate to its group's load."""
    first = next(iter(pair.values()))
    source, labels = first.source, first.labels
    if_name, if_index = labels.get("if_name"), labels.get("if_index")
    name = f"{source} port {if_name or if_index or dict(labels)}"
    speed = _one(index, source, SPEED, labels)
    rate, rate_issues = line_rate(speed, start, end)
    rate_from = "device" if rate is not None else None
    if rate is None and (fallback := g.fallback_rate(if_name, if_index)) is not None:
        rate, rate_from = fallback, "configured"
        rate_issues.append(issue("rate_configured", rate=rate))
    steps = reset_steps(_one(index, source, UPTIME, None),
                        _one(index, source, DISCONTINUITY, labels))
    max_rate = LINE_RATE_MARGIN * rate / 8 if rate is not None else None
    deltas = {m: counter_delta(s, start, end, gap_s, max_rate=max_rate, resets_in=steps)
              for m, s in pair.items()}
    issues = list(rate_issues)
    valid = all(d.valid for d in deltas.values())
    for m, d in deltas.items():
        issues.extend(issue("ctx.metric", metric=m, inner=i) for i in d.issues)
        if wrap_ambiguous(pair[m].modulus, rate, d.max_step_s):
            issues.append(issue("wrap_ambiguous", metric=m, modulus=pair[m].modulus,
                                step=d.max_step_s, rate=rate))
    for m in OCTETS:
        if m not in pair:
            issues.append(issue("no_octets", metric=m))
            valid = False
    used = len(pair) == 2 and (rate is not None or g.available_bandwidth_bps is not None)
    if len(pair) == 2 and not used:
        issues.append(issue("rate_unknown"))
        valid = False
    octets = {m: d.delta for m, d in deltas.items()}
    bits = 8.0 * math.fsum(octets.values())
    if used:
        gl.bits += bits
        if rate is not None and g.available_bandwidth_bps is None:
            gl.available_bps = (gl.available_bps or 0.0) + 2.0 * rate
        gl.used.extend(pair.values())
        gl.used.extend(s for s in (speed,) if s is not None and rate_from == "device")
    gl.issues.extend(issue("ctx.port", port=name, inner=i) for i in issues)
    gl.valid = gl.valid and valid
    gl.detail.append({
        "source": source, "if_name": if_name, "if_index": if_index,
        "in_octets": octets.get("if_in_octets"), "out_octets": octets.get("if_out_octets"),
        "bits": bits, "line_rate_bps": rate, "line_rate_from": rate_from,
        "available_bps": None if rate is None else 2.0 * rate, "used": used,
        "wraps": sum(d.wraps for d in deltas.values()),
        "resets": sum(d.resets for d in deltas.values()), "valid": valid,
    })


def _network_group(g: DeviceGroup, index: Index, start: float, end: float,
                   gap_s: float) -> GroupLoad:
    """U of a network group: its egress ports' traffic over their available bandwidth."""
    gl = GroupLoad(g, rel=0.0)
    chosen = _selected(index, g, OCTETS)
    _missing(gl, chosen, "if_in_octets/if_out_octets")
    ports: dict[tuple[str, tuple[tuple[str, str], ...]], dict[str, Series]] = {}
    for s in chosen:
        ports.setdefault((s.source, tuple(sorted(s.labels.items()))), {})[s.metric] = s
    for pair in ports.values():
        _port(g, gl, pair, index, start, end, gap_s)
    if g.available_bandwidth_bps is not None:
        gl.available_bps = g.available_bandwidth_bps
    gl.load = network_utilisation(gl.bits, end - start, gl.available_bps or 0.0)
    if gl.load is None:
        gl.rel = None
        if ports:
            gl.issues.append(issue("no_rated_port"))
        gl.valid = False
    return gl


def _kind_load(kind: GroupKind, gls: Sequence[GroupLoad], method: int,
               seconds: float) -> tuple[float | None, float | None, float | None, float]:
    """Return U of a kind, its rel and worst-case rel, and its Σ P·N, by Method 1 or 2.

    Method 1 (A.5): the rating-weighted mean Σ U_g·P_g·N_g / Σ P_g·N_g over the groups with a
    load, so that the kind's term λ·U·ΣP·N equals Σ λ·U_g·P_g·N_g. Method 2: one mean for all
    devices of the kind (network: all ports' traffic over all their bandwidth) applied to
    Σ P·N of every group of the kind.
    """
    if method == 1:
        parts = [(g.load * g.group.rating * g.group.count, g.rel or 0.0)
                 for g in gls if g.load is not None]
        capacity = math.fsum(g.group.rating * g.group.count for g in gls if g.load is not None)
        if not parts or not capacity > 0:
            return None, None, None, capacity
        load = math.fsum(v for v, _ in parts) / capacity
        return load, sum_rel(parts), sum_rel_worst(parts), capacity
    capacity = math.fsum(g.group.rating * g.group.count for g in gls)
    if kind == "network":
        available = math.fsum(g.available_bps or 0.0 for g in gls if g.load is not None)
        u = network_utilisation(math.fsum(g.bits for g in gls if g.load is not None),
                                seconds, available)
        return u, (0.0 if u is not None else None), (0.0 if u is not None else None), capacity
    devices = [d for g in gls for d in g.device_loads]
    if not devices:
        return None, None, None, capacity
    load = math.fsum(u for u, _ in devices) / len(devices)
    return load, sum_rel(devices), sum_rel_worst(devices), capacity


def _group_json(gl: GroupLoad, k: float, method: int) -> dict[str, Any]:
    g = gl.group
    out: dict[str, Any] = {
        "name": g.name, "kind": g.kind, "count": g.count, "rating": g.rating,
        "rating_measure": RATING_MEASURE[g.kind], "rating_source": g.rating_source,
        "sources": list(g.sources), "load": gl.load,
        "term": k * gl.load * g.rating * g.count if method == 1 and gl.load is not None else None,
        "valid": gl.valid,
    }
    if g.kind == "network":
        out["bits"] = gl.bits
        out["available_bps"] = gl.available_bps
        out["available_from"] = "configured" if g.available_bandwidth_bps else "2 x line rate"
        out["ports"] = gl.detail
    else:
        out["devices"] = gl.detail
    return out


def _used_energy_series(result: Mapping[str, Any], series: Sequence[Series]) -> list[Series]:
    keys = {(f["source"], f["metric"]) for role in result["sources"].values()
            for f in role["per_source"] if isinstance(f["source"], str)}
    return [s for s in series if (s.source, s.metric) in keys]


def _no_section(result: dict[str, Any], site: Site, series: Sequence[Series], start: float,
                end: float) -> dict[str, Any]:
    missing = issue("no_general_section")
    result.update({
        "load": {k: None for k in GROUP_KINDS}, "load_method": None, "computing_power": None,
        "cee": None, "cee_level": None, "ccue": None, "annual": False,
    })
    result["quality"] = quality_block(
        _used_energy_series(result, series), start, end, "general",
        [missing, *result["quality"]["issues"]], min(site.quality.max_gap_s, A5_MAX_INTERVAL_S),
        valid=False,
    )
    return result


def evaluate_general(
    site: Site,
    series: Sequence[Series],
    start: float,
    end: float,
    *,
    means: Mapping[Series, GaugeMean] | None = None,
    qualities: Mapping[Series, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Return the JSON-ready general-computing result of [start, end] (epoch s).

    The infrastructure result plus: `load` (U per kind, 0..1, None when not measured),
    `load_method`, `computing_power` C (standard points, 6.2.2 formula (2)),
    `energy_per_unit_time_wh` E, `cee` = C / E (standard points per Wh, formula (1)) with its
    Table 1 `cee_level`, `ccue` = CE / C with CE per unit time (kg per standard point),
    `annual` (the window spans at least 8760 h), the groups' detail, and C, CEE and CCUE in
    `uncertainty`. Not valid (with the reasons) when a group's load is missing or not
    valid, a sample interval exceeds 15 min, or the window is shorter than 12 h (A.5).
    `means` and `qualities` are mean_utilisation's and series_quality's results precomputed
    for some load series (the collector's gauge folds); the others are read from samples.
    Samples outside the site's physical limits (a CPU load outside 0..100 %, port traffic
    above the line rate, ...) are left out of every figure and listed in
    `quality.implausible`; a load above 1 is an issue. Either makes the result not valid.
    """
    screened = screen(series, site.plausibility)
    series = screened.series
    result = evaluate_infrastructure(site, series, start, end)
    result["kind"] = "general"
    section = site.general
    if section is None:
        result = _no_section(result, site, series, start, end)
        flag(result["quality"], screened.findings)
        return result
    gap_s = min(site.quality.max_gap_s, A5_MAX_INTERVAL_S)
    seconds, hours = end - start, (end - start) / 3600.0
    index = _by_source(series)
    loads = [
        _network_group(g, index, start, end, gap_s) if g.kind == "network"
        else _cpu_group(g, section.cpu_metric, index, start, end, means)
        for g in section.groups
    ]
    issues: list[str] = []
    valid = True
    for gl in loads:
        issues.extend(issue("ctx.group", group=gl.group.name, inner=i) for i in gl.issues)
        valid = valid and gl.valid
        if gl.load is None:
            issues.append(issue("group_no_load", group=gl.group.name))
    load: dict[GroupKind, float | None] = {}
    rels: dict[GroupKind, float | None] = {}
    terms: dict[GroupKind, float | None] = {}
    capacities: dict[GroupKind, float] = {}
    parts: list[tuple[float, float]] = []
    worst_parts: list[tuple[float, float]] = []
    for kind in GROUP_KINDS:
        gls = [gl for gl in loads if gl.group.kind == kind]
        u, rel, worst, capacity = _kind_load(kind, gls, section.method, seconds)
        load[kind], rels[kind], capacities[kind] = u, rel, capacity
        terms[kind] = None if u is None else section.coefficient(kind) * u * capacity
        if u is not None and rel is not None and worst is not None:
            parts.append((terms[kind] or 0.0, rel))
            worst_parts.append((terms[kind] or 0.0, worst))
        if not gls and kind != "compute":
            issues.append(issue("no_group_network") if kind == "network"
                          else issue("no_group_kind", kind=kind))
    # Σ P·N of a kind stands for P·N in formula (2): Method 1's U is weighted to match it.
    measured = [(section.coefficient(k), u, capacities[k], 1.0)
                for k, u in load.items() if u is not None]
    c = computing_power(measured) if measured else None
    e_total = result["energy_kwh"]["total"]
    e_wh = None if e_total is None else energy_per_unit_time_wh(e_total, hours, section.unit_time_h)
    carbon = result["carbon_kg"]
    ce_unit = None if carbon is None or not hours > 0 else carbon / hours * section.unit_time_h
    cee_value = None if c is None or e_wh is None else cee(c, e_wh)
    ccue_value = None if c is None or ce_unit is None else ccue(ce_unit, c)
    if c is not None and not c > 0:
        issues.append(issue("c_zero"))
    for kind, u in load.items():
        if u is not None and not at_most(u, 1.0):  # A.5: U is a share of the capacity
            issues.append(issue("load_above_1", kind=kind, load=u))
            valid = False
    result.update({
        "load": load,
        "load_method": section.method,
        "computing_power": c,
        "computing_power_terms": terms,
        "coefficients": {"lambda": section.lambda_, "beta": section.beta,
                         "gamma": section.gamma},
        "groups": [_group_json(gl, section.coefficient(gl.group.kind), section.method)
                   for gl in loads],
        "unit_time_h": section.unit_time_h,
        "energy_per_unit_time_wh": e_wh,
        "carbon_kg_per_unit_time": ce_unit,
        "cee": cee_value,
        "cee_level": cee_level(cee_value),
        "cee_thresholds": {"advanced": CEE_ADVANCED, "energy_saving": CEE_ENERGY_SAVING},
        "ccue": ccue_value,
        "annual": hours >= ANNUAL_HOURS,
    })
    _uncertainty(result["uncertainty"], rels, parts, worst_parts, c, cee_value, ccue_value)
    used = _used_energy_series(result, series) + [s for gl in loads for s in gl.used]
    result["quality"] = quality_block(
        used, start, end, "general", result["quality"]["issues"] + issues, gap_s,
        valid=result["quality"]["valid"] and valid, precomputed=qualities,
    )
    flag(result["quality"], screened.findings)
    return result


def _uncertainty(
    block: dict[str, Any],
    rels: Mapping[GroupKind, float | None],
    parts: Sequence[tuple[float, float]],
    worst_parts: Sequence[tuple[float, float]],
    c: float | None,
    cee_value: float | None,
    ccue_value: float | None,
) -> None:
    """Add the loads', C's, CEE's and CCUE's relative uncertainties to the `uncertainty` block."""
    def finite(x: float) -> float | None:
        return x if math.isfinite(x) else None

    c_rel = finite(sum_rel(parts)) if c is not None and c > 0 else None
    c_worst = finite(sum_rel_worst(worst_parts)) if c_rel is not None else None
    e_rel, e_worst = block["energy_total_rel"], block["worst_case"]["energy_total_rel"]
    ce_rel, ce_worst = block["carbon_rel"], block["worst_case"]["carbon_rel"]

    def both(a: float | None, b: float | None, worst: bool) -> float | None:
        if a is None or b is None:
            return None
        return ratio_rel_worst(a, b) if worst else ratio_rel(a, b)

    block["load_rel"] = dict(rels)
    block["computing_power_rel"] = c_rel
    block["cee_rel"] = both(c_rel, e_rel, False) if cee_value is not None else None
    block["ccue_rel"] = both(c_rel, ce_rel, False) if ccue_value is not None else None
    block["worst_case"]["computing_power_rel"] = c_worst
    block["worst_case"]["cee_rel"] = both(c_worst, e_worst, True) if cee_value is not None else None
    block["worst_case"]["ccue_rel"] = (
        both(c_worst, ce_worst, True) if ccue_value is not None else None
    )
    block["general_method"] = UNCERTAINTY_METHOD
