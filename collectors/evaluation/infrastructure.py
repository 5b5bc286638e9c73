"""Evaluate an infrastructure window: E_total, E_IT, E_green, PUE and its level, CE and CUE."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from dcmeter.collectors.evaluation.energy import CounterEvent, EnergyFigure
from dcmeter.collectors.evaluation.grid_factors import (
    DEFAULT_PUE_THRESHOLDS,
    PUE_THRESHOLDS_NOTE,
    grid_factor,
)
from dcmeter.collectors.evaluation.indicators import carbon_emissions_kg, cue, pue, pue_level
from dcmeter.collectors.evaluation.issues import issue
from dcmeter.collectors.evaluation.jsonl import rfc3339
from dcmeter.collectors.evaluation.plausibility import flag, screen
from dcmeter.collectors.evaluation.quality import quality_block, series_quality
from dcmeter.collectors.evaluation.roles import RoleEnergy, role_energy, used_series
from dcmeter.collectors.evaluation.series import Series
from dcmeter.collectors.evaluation.site import Site
from dcmeter.collectors.evaluation.uncertainty import infrastructure_uncertainty


def _event(event: CounterEvent) -> dict[str, Any]:
    return {
        "ts": rfc3339(event.ts),
        "kind": event.kind,
        "source": event.source,
        "metric": event.metric,
        "before": event.before,
        "after": event.after,
        "unit": event.unit,
        "counted_kwh": event.counted_kwh,
    }


def _figure(figure: EnergyFigure) -> dict[str, Any]:
    return {
        "source": figure.sources[0] if len(figure.sources) == 1 else list(figure.sources),
        "kwh": figure.kwh,
        "method": figure.method,
        "metric": figure.metric,
        "coverage": figure.coverage,
        "first": None if figure.first_ts is None else rfc3339(figure.first_ts),
        "last": None if figure.last_ts is None else rfc3339(figure.last_ts),
        "samples": figure.samples,
        "wraps": figure.wraps,
        "resets": figure.resets,
        "valid": figure.valid,
    }


def _provenance(role: RoleEnergy) -> dict[str, Any]:
    return {
        "sources": list(role.sources),
        "method": role.method,
        "metrics": list(role.metrics),
        "points": list(role.points),
        "events": [_event(e) for e in role.events],
        "coverage": role.coverage,
        "valid": role.valid,
        "per_source": [_figure(f) for f in role.figures],
    }


def _grid_factor(site: Site) -> tuple[float, dict[str, Any]]:
    """Return η in kg CO2/kWh and its provenance: the table entry or the configured value."""
    if site.site.region is not None:
        factor = grid_factor(site.site.region)
        value, key, source = factor.kg_per_kwh, factor.key, factor.describe()
    else:
        assert site.site.grid_factor_kg_per_kwh is not None  # the site model demands one of two
        value, key = site.site.grid_factor_kg_per_kwh, "configured"
        source = "configured in the site file (site.grid_factor_kg_per_kwh)"
    return value, {"value": value, "unit": "kg/kWh", "key": key, "source": source}


def _point_issues(name: str, role: RoleEnergy, expected: str) -> list[str]:
    other = [p for p in role.points if p != expected]
    if not other:
        return []
    return [issue("point_mismatch", role=name, points=other, expected=expected)]


def evaluate_infrastructure(
    site: Site, series: Sequence[Series], start: float, end: float
) -> dict[str, Any]:
    """Return the JSON-ready infrastructure result of [start, end] (epoch s; energies in kWh).

    PUE = E_total / E_IT with its GB 40879-2021 level (T/CECA-G 0355—2025 4.1, 6.1); CE by
    6.1.2 formula (2) in kg CO2 and CUE by formula (1) in kg CO2/kWh. Values are not rounded.
    `uncertainty` propagates the sources' accuracies (collectors/evaluation/uncertainty.py);
    `quality` keeps `valid` and `issues` and adds the per-series data quality of the series
    the energies were computed from (collectors/evaluation/quality.py). Samples outside
    the site's physical limits are left out and listed in `quality.implausible`, which
    makes the result not valid (collectors/evaluation/plausibility.py). A PUE below 1 is
    physically impossible: an issue, not valid, and no level.
    """
    screened = screen(series, site.plausibility)
    series = screened.series
    energy = site.energy
    roles = {
        name: role_energy(
            series,
            ids,
            start,
            end,
            energy.metrics.counter,
            energy.metrics.power,
            site.quality.max_gap_s,
        )
        for name, ids in (("total", energy.total), ("it", energy.it), ("green", energy.green))
    }
    total, it, green = roles["total"], roles["it"], roles["green"]
    issues: list[str] = []
    if end <= start:  # every role would repeat this one issue
        issues.append(issue("window_not_after", end=rfc3339(end), start=rfc3339(start)))
    else:
        for name, role in roles.items():
            issues.extend(issue("ctx.role", role=name, inner=i) for i in role.issues)
    issues += _point_issues("total", total, "total")
    issues += _point_issues("it", it, energy.it_point)
    issues += _point_issues("green", green, "green")

    eta, factor = _grid_factor(site)
    thresholds = site.pue_levels.thresholds() if site.pue_levels else DEFAULT_PUE_THRESHOLDS
    ratio = None if total.kwh is None or it.kwh is None else pue(total.kwh, it.kwh)
    carbon = None
    if total.kwh is not None and green.kwh is not None:
        carbon = carbon_emissions_kg(total.kwh, green.kwh, eta)
        if green.kwh > total.kwh:
            issues.append(issue("green_exceeds"))
    if it.kwh is not None and not it.kwh > 0:
        issues.append(issue("it_not_positive"))
    if total.kwh is None and end > start:
        issues.append(issue("no_total"))
    if it.kwh is None and end > start:
        issues.append(issue("no_it"))
    implausible = ratio is not None and ratio < 1.0
    if implausible:
        issues.append(issue("pue_below_1"))
    valid = (
        end > start
        and all(role.valid for role in roles.values())
        and total.kwh is not None
        and ratio is not None
        and not implausible
    )
    cue_value = None if carbon is None or it.kwh is None else cue(carbon, it.kwh)
    uncertainty = infrastructure_uncertainty(roles, series)
    if ratio is None:
        uncertainty["pue_rel"] = uncertainty["worst_case"]["pue_rel"] = None
    if cue_value is None:
        uncertainty["cue_rel"] = uncertainty["worst_case"]["cue_rel"] = None
    used = [s for role in roles.values() for s in used_series(role, series)]
    quality = quality_block(
        used, start, end, "infrastructure", issues, site.quality.max_gap_s, valid=valid
    )
    # A source without usable samples is listed too (no samples, coverage 0); its issue is
    # already the role's.
    for role in roles.values():
        found = {f.sources[0] for f in role.figures}
        for source in (x for x in role.sources if x not in found):
            metrics = (energy.metrics.counter, energy.metrics.power)
            own = [x for x in series if x.source == source and x.metric in metrics]
            empty = Series(source, energy.metrics.counter, "", "counter", (), ())
            for x in own or [empty]:
                quality["sources"].append(series_quality(x, start, end, site.quality.max_gap_s))
            quality["interval_ok"] = False
    flag(quality, screened.findings)
    return {
        "kind": "infrastructure",
        "site": site.site.name,
        # What the report's title block shows; the time zone its times are shown in.
        "site_info": {"address": site.site.address, "operator": site.site.operator,
                      "timezone": site.site.timezone},
        "window": {"start": rfc3339(start), "end": rfc3339(end), "hours": (end - start) / 3600.0},
        "energy_kwh": {"total": total.kwh, "it": it.kwh, "green": green.kwh},
        "pue": ratio,
        "pue_level": pue_level(ratio, thresholds),
        "pue_thresholds": {
            "level1": thresholds.level1,
            "level2": thresholds.level2,
            "level3": thresholds.level3,
            "configured": site.pue_levels is not None,
            "note": PUE_THRESHOLDS_NOTE,
        },
        "it_point": energy.it_point,
        "carbon_kg": carbon,
        "cue": cue_value,
        "grid_factor": factor,
        "sources": {name: _provenance(role) for name, role in roles.items()},
        "uncertainty": uncertainty,
        "quality": quality,
    }
