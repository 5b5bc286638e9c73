"""The energy of a role (total, IT, green): its sources' figures summed, with provenance.

T/CECA-G 0355—2025 6.1.2 and GB 40879: E_total, E_IT and E_green are sums over the meters
that stand for each measurement point.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from dcmeter.collectors.evaluation.energy import (
    CounterEvent,
    EnergyFigure,
    counter_energy,
    integrated_energy,
    usable,
)
from dcmeter.collectors.evaluation.issues import issue
from dcmeter.collectors.evaluation.jsonl import rfc3339
from dcmeter.collectors.evaluation.series import Series


@dataclass(frozen=True, slots=True)
class RoleEnergy:
    """The energy (kWh) of one role (E_total, E_IT or E_green): the sum over its sources."""

    kwh: float | None
    method: Literal["counter", "integrated_power", "mixed"] | None
    sources: tuple[str, ...]
    figures: tuple[EnergyFigure, ...]
    points: tuple[str, ...]
    metrics: tuple[str, ...]
    events: tuple[CounterEvent, ...]
    issues: tuple[str, ...]
    valid: bool
    coverage: float | None


def _varying(group: Sequence[Series]) -> list[str]:
    """The label keys whose values differ between the series of `group` (once per group:
    a source with thousands of series must not cost a pass over the group per series)."""
    keys = sorted({k for s in group for k in s.labels})
    return [k for k in keys if len({s.labels.get(k) for s in group}) > 1]


def _labels_text(series: Series, varying: Sequence[str]) -> str:
    shown = [k for k in varying if k in series.labels]
    return "{" + ",".join(f"{k}={series.labels[k]}" for k in shown) + "}" if shown else ""


def _source_figure(
    source: str,
    chosen: Sequence[Series],
    energy: Callable[[Series, float, float, float], EnergyFigure],
    start: float,
    end: float,
    gap_s: float,
) -> EnergyFigure:
    """Sum the figures (kWh) of a source's series that share one metric, e.g. one per phase."""
    parts = [energy(s, start, end, gap_s) for s in chosen]
    varying = _varying(chosen) if any(p.issues for p in parts) else []
    firsts = [p.first_ts for p in parts if p.first_ts is not None]
    lasts = [p.last_ts for p in parts if p.last_ts is not None]
    return EnergyFigure(
        kwh=math.fsum(p.kwh for p in parts),
        method=parts[0].method,
        sources=(source,),
        metric=parts[0].metric,
        events=tuple(e for p in parts for e in p.events),
        issues=tuple(
            issue("ctx.series", source=source, metric=s.metric,
                  labels=_labels_text(s, varying), inner=i)
            for s, p in zip(chosen, parts, strict=True)
            for i in p.issues
        ),
        valid=all(p.valid for p in parts),
        coverage=min(p.coverage for p in parts),
        first_ts=min(firsts, default=None),
        last_ts=max(lasts, default=None),
        samples=sum(p.samples for p in parts),
        wraps=sum(p.wraps for p in parts),
        resets=sum(p.resets for p in parts),
    )


def role_energy(
    series_list: Sequence[Series],
    source_ids: Sequence[str],
    start: float,
    end: float,
    counter_metric: str,
    power_metric: str,
    gap_s: float,
) -> RoleEnergy:
    """Sum the energy (kWh) of a role's sources over [start, end], preferring counters.

    A source's counter series (counter_metric) is used when one has 2 samples around the window,
    else its power series (power_metric) is integrated. Series of one (source, metric) that
    differ only in labels (phases, feeds) are summed. A source with neither is an issue.
    """
    issues: list[str] = []
    if end <= start:
        issues.append(issue("empty_window", end=rfc3339(end), start=rfc3339(start)))
    figures: list[EnergyFigure] = []
    points: set[str] = set()
    missing = False
    for source in source_ids if end > start else ():
        counters = [s for s in series_list if s.source == source and s.metric == counter_metric]
        powers = [s for s in series_list if s.source == source and s.metric == power_metric]
        if any(usable(s, start, end) for s in counters):
            chosen, energy = counters, counter_energy
        elif any(usable(s, start, end) for s in powers):
            chosen, energy = powers, integrated_energy
            code = "integrated_used_around" if counters else "integrated_used"
            issues.append(issue(code, source=source, metric=counter_metric))
        else:
            issues.append(issue("no_energy_series", source=source, counter=counter_metric,
                                power=power_metric))
            missing = True
            continue
        figure = _source_figure(source, chosen, energy, start, end, gap_s)
        figures.append(figure)
        issues.extend(figure.issues)
        points.update(s.labels["point"] for s in chosen if "point" in s.labels)
    methods = sorted({f.method for f in figures})
    return RoleEnergy(
        kwh=math.fsum(f.kwh for f in figures) if figures or not source_ids else None,
        method="mixed" if len(methods) > 1 else (methods[0] if methods else None),
        sources=tuple(source_ids),
        figures=tuple(figures),
        points=tuple(sorted(points)),
        metrics=tuple(sorted({f.metric for f in figures})),
        events=tuple(e for f in figures for e in f.events),
        issues=tuple(issues),
        valid=end > start and not missing and all(f.valid for f in figures),
        coverage=min((f.coverage for f in figures), default=None),
    )


def used_series(role: RoleEnergy, series_list: Sequence[Series]) -> list[Series]:
    """Return the series a role's figures were computed from, in figure order.

    Each figure names its source and metric; every series of that (source, metric) was summed
    into it (phases, feeds).
    """
    return [
        s
        for f in role.figures
        for s in series_list
        if s.source == f.sources[0] and s.metric == f.metric
    ]
