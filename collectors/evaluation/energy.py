"""Energy of a window from samples: counter deltas (wraps, resets) or integrated power, in kWh.

E_total, E_IT and E_green of T/CECA-G 0355—2025 6.1.2 and GB 40879 are sums of such figures.
"""

from __future__ import annotations

import bisect
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Literal

import numpy as np

from dcmeter.collectors.evaluation.exact import reading, seconds_at_most
from dcmeter.collectors.evaluation.issues import issue
from dcmeter.collectors.evaluation.jsonl import rfc3339
from dcmeter.collectors.evaluation.series import Floats, Series, arrays, median

Method = Literal["counter", "integrated_power"]
EventKind = Literal["wrap", "reset"]

ENERGY_UNITS_TO_KWH = {"kwh": 1.0, "wh": 1e-3, "mwh": 1e3, "j": 1 / 3.6e6, "kj": 1 / 3600.0}
# The same factors as exact fractions: a counter's energy is worked out exactly (exact.py).
EXACT_TO_KWH = {
    "kwh": Fraction(1), "wh": Fraction(1, 1000), "mwh": Fraction(1000),
    "j": Fraction(1, 3_600_000), "kj": Fraction(1, 3600),
}
POWER_UNITS_TO_KW = {"w": 1e-3, "kw": 1.0, "mw": 1e3}
# A wrapped step is plausible when its rate is at most this many times the median rate.
WRAP_RATE_FACTOR = 10.0
# A window edge may fall this many median sampling intervals short of the data and stay valid.
EDGE_TOLERANCE_INTERVALS = 2.0


@dataclass(frozen=True, slots=True)
class CounterEvent:
    """A counter decrease: a wrap past its modulus or a reset to zero, at the later sample."""

    source: str
    metric: str
    ts: float  # epoch s of the sample after the decrease
    kind: EventKind
    before: float  # raw counter values, in `unit`
    after: float
    unit: str
    counted_kwh: float  # energy the step was counted with


@dataclass(frozen=True, slots=True)
class EnergyFigure:
    """The energy (kWh) of one source over a window and how it was obtained."""

    kwh: float
    method: Method
    sources: tuple[str, ...]
    metric: str
    events: tuple[CounterEvent, ...] = ()
    issues: tuple[str, ...] = ()
    valid: bool = True
    coverage: float = 0.0  # fraction of the window between the first and last sample used
    first_ts: float | None = None  # epoch s of the first and last sample used
    last_ts: float | None = None
    samples: int = 0  # samples used, including the two bracketing the window
    wraps: int = 0
    resets: int = 0


def _secs(x: float) -> str:
    """Format a duration in seconds without exponent, to the millisecond."""
    return f"{x:.3f}".rstrip("0").rstrip(".")


def _clean(series: Series) -> tuple[list[float], list[float], list[str]]:
    ts, vs, dropped = arrays(series)
    issues: list[str] = [issue("nonfinite_dropped", count=dropped)] if dropped else []
    return ts.tolist(), vs.tolist(), issues


def _bracket(ts: Sequence[float], start: float, end: float) -> tuple[int, int] | None:
    """Return the first and last index of the samples that bracket [start, end], if two or more."""
    if end <= start or not ts:
        return None
    lo = max(bisect.bisect_right(ts, start) - 1, 0)
    hi = min(bisect.bisect_left(ts, end), len(ts) - 1)
    return (lo, hi) if hi > lo else None


def usable(series: Series, start: float, end: float) -> bool:
    """Tell whether the series has at least two samples relevant to [start, end]."""
    return _bracket(_clean(series)[0], start, end) is not None


def _at(ts: Sequence[float], ys: Sequence[float], t: float) -> float:
    """Evaluate the piecewise-linear curve through (ts, ys) at t inside [ts[0], ts[-1]]."""
    j = min(max(bisect.bisect_right(ts, t) - 1, 0), len(ts) - 2)
    t1, t2 = ts[j], ts[j + 1]
    if t2 <= t1:
        return ys[j + 1]
    return ys[j] + (ys[j + 1] - ys[j]) * (t - t1) / (t2 - t1)


def _median_rate(ts: Floats, vs: Floats) -> float | None:
    """Return the median rate of the non-negative steps with time between them, or None."""
    dv, dt = np.diff(np.asarray(vs, dtype=np.float64)), np.diff(np.asarray(ts, dtype=np.float64))
    up = (dv >= 0) & (dt > 0)
    return median(dv[up] / dt[up]) if up.any() else None


def _step(
    v1: float, v2: float, dt: float, modulus: float | None, median_rate: float | None
) -> tuple[float, EventKind | None]:
    """Return the increase of one counter step and whether it wrapped or reset."""
    if v2 >= v1:
        return v2 - v1, None
    if modulus is None or modulus <= 0:
        return v2, "reset"
    d = v2 + modulus - v1
    if d < 0:  # the earlier value exceeded the declared modulus: not a wrap
        return v2, "reset"
    if not median_rate:
        plausible = d < modulus / 2
    else:
        plausible = dt > 0 and d / dt <= WRAP_RATE_FACTOR * median_rate
    return (d, "wrap") if plausible else (v2, "reset")


def _window_issues(
    ts: Sequence[float], start: float, end: float, gap_s: float, method: Method
) -> tuple[list[str], bool, float]:
    """Check gaps and edge coverage of the used samples; return issues, validity, coverage."""
    issues: list[str] = []
    valid = True
    steps = [ts[i + 1] - ts[i] for i in range(len(ts) - 1)]
    for i, dt in enumerate(steps):
        if seconds_at_most(dt, gap_s):
            continue
        t1, t2 = ts[i], ts[i + 1]
        gap = {"gap": _secs(dt), "at": rfc3339(t1), "limit": _secs(gap_s)}
        if method == "integrated_power":
            issues.append(issue("gap_integrated", **gap))
            valid = False
        elif t1 < start < t2 or t1 < end < t2:
            issues.append(issue("gap_counter_edge", **gap))
            valid = False
        else:
            issues.append(issue("gap_bridged", **gap))
    median_dt = statistics.median(steps)
    tolerance = EDGE_TOLERANCE_INTERVALS * median_dt
    head, tail = ts[0] - start, end - ts[-1]
    edges = ((head, "first sample after window start"), (tail, "last sample before window end"))
    for short, what in edges:
        if short > 0:
            far = short > tolerance
            n = {"n": EDGE_TOLERANCE_INTERVALS} if far else {}
            code = "coverage_energy_far" if far else "coverage_energy"
            issues.append(issue(code, edge=what, short=_secs(short), **n))
            valid = valid and not far
    coverage = (min(end, ts[-1]) - max(start, ts[0])) / (end - start)
    return issues, valid, coverage


def _prepare(
    series: Series, start: float, end: float, units: dict[str, float], method: Method
) -> tuple[list[float], list[float], list[str], float, int, int] | EnergyFigure:
    """Return clean samples, unit scale and the bracketing span, or an invalid zero figure."""
    ts, vs, issues = _clean(series)
    scale = units.get(series.unit.lower())
    span = _bracket(ts, start, end)
    if scale is not None and span is not None:
        return ts, vs, issues, scale, span[0], span[1]
    if scale is None:
        issues.append(issue("unknown_unit", unit=series.unit, method=method, known=list(units)))
    elif end <= start:
        issues.append(issue("empty_window", end=rfc3339(end), start=rfc3339(start)))
    else:
        issues.append(issue("few_samples"))
    return EnergyFigure(
        0.0, method, (series.source,), series.metric, issues=tuple(issues), valid=False
    )


def _exact_at(
    ts: Sequence[float], vs: Sequence[float], extra: Sequence[tuple[int, Fraction]], t: float
) -> Fraction:
    """Return the counted increase from vs[0] to time t, exactly on the reported decimals.

    The counted increase at sample k is vs[k] − vs[0] plus the `extra` of the wraps and
    resets up to k; between samples it is linear in time, as `_at` interpolates (exact.py).
    """
    def counted(k: int) -> Fraction:
        return reading(vs[k]) - reading(vs[0]) + sum((x for i, x in extra if i <= k), Fraction())

    j = min(max(bisect.bisect_right(ts, t) - 1, 0), len(ts) - 2)
    t1, t2 = reading(ts[j]), reading(ts[j + 1])
    if t2 <= t1:
        return counted(j + 1)
    c1, c2 = counted(j), counted(j + 1)
    return c1 + (c2 - c1) * (reading(t) - t1) / (t2 - t1)


def counter_energy(series: Series, start: float, end: float, gap_s: float) -> EnergyFigure:
    """Return the energy (kWh) a cumulative counter recorded in [start, end] (epoch s).

    The counter value at each window edge is interpolated linearly between the bracketing
    samples; without a sample before start (after end) the first (last) sample is used and the
    shortfall is an issue, which invalidates the figure beyond 2 median sampling intervals.
    A decrease v2 < v1 is a wrap, counting d = v2 + modulus - v1, when d is plausible: d / dt is
    at most 10 × the median rate of the whole series' non-negative steps (without such steps,
    or with a zero median: d < modulus / 2). Otherwise, and always without a modulus, it is a
    reset: the meter counted from zero, v2 is counted and the figure is invalid. A gap longer
    than gap_s is bridged exactly by the counter, unless it holds a window edge: the edge value
    is then an interpolation across the gap and the figure invalid.
    """
    prepared = _prepare(series, start, end, ENERGY_UNITS_TO_KWH, "counter")
    if isinstance(prepared, EnergyFigure):
        return prepared
    ts, vs, issues, scale, lo, hi = prepared
    src, metric, unit = series.source, series.metric, series.unit
    rate = _median_rate(ts, vs)
    # What each wrap or reset adds to the plain difference of readings, by index in `used`:
    # a wrap its modulus, a reset the value it fell from (the step counts v2, not v2 - v1).
    extra: list[tuple[int, Fraction]] = []
    events: list[CounterEvent] = []
    for j in range(lo + 1, hi + 1):
        delta, kind = _step(vs[j - 1], vs[j], ts[j] - ts[j - 1], series.modulus, rate)
        if kind is None:
            continue
        before, after = vs[j - 1], vs[j]
        modulus = series.modulus if kind == "wrap" else None  # _step wraps only with one
        extra.append((j - lo, reading(before if modulus is None else modulus)))
        events.append(CounterEvent(src, metric, ts[j], kind, before, after, unit, delta * scale))
        if kind == "reset":
            issues.append(issue("counter_reset_energy", at=rfc3339(ts[j]), before=before,
                                after=after, unit=unit))
    used = ts[lo : hi + 1]
    window_issues, valid, coverage = _window_issues(used, start, end, gap_s, "counter")
    a, b = max(start, used[0]), min(end, used[-1])
    values = vs[lo : hi + 1]
    counted = _exact_at(used, values, extra, b) - _exact_at(used, values, extra, a)
    resets = sum(e.kind == "reset" for e in events)
    return EnergyFigure(
        kwh=float(counted * EXACT_TO_KWH[unit.lower()]),
        method="counter",
        sources=(src,),
        metric=metric,
        events=tuple(events),
        issues=tuple(issues + window_issues),
        valid=valid and resets == 0,
        coverage=coverage,
        first_ts=used[0],
        last_ts=used[-1],
        samples=len(used),
        wraps=len(events) - resets,
        resets=resets,
    )


def integrated_energy(series: Series, start: float, end: float, gap_s: float) -> EnergyFigure:
    """Return the energy (kWh) of a power gauge (W, kW) over [start, end] by the trapezoid rule.

    Power is linear between samples and interpolated at the window edges; a gap longer than
    gap_s is an interpolation, not a measurement, and makes the figure invalid.
    """
    prepared = _prepare(series, start, end, POWER_UNITS_TO_KW, "integrated_power")
    if isinstance(prepared, EnergyFigure):
        return prepared
    ts, ps, issues, scale, lo, hi = prepared
    used, power = ts[lo : hi + 1], ps[lo : hi + 1]
    steps = []  # summed with fsum: a year of minutes adds no rounding drift to the grade
    for j in range(len(used) - 1):
        x1, x2 = max(used[j], start), min(used[j + 1], end)
        if x2 > x1:
            steps.append((_at(used, power, x1) + _at(used, power, x2)) / 2 * (x2 - x1))
    kw_s = math.fsum(steps)
    window_issues, valid, coverage = _window_issues(used, start, end, gap_s, "integrated_power")
    return EnergyFigure(
        kw_s * scale / 3600.0,
        "integrated_power",
        (series.source,),
        series.metric,
        issues=tuple(issues + window_issues),
        valid=valid,
        coverage=coverage,
        first_ts=used[0],
        last_ts=used[-1],
        samples=len(used),
    )
