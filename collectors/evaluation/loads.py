"""Load levels U of T/CECA-G 0355—2025 Annex A.5 from samples: CPU means, port traffic.

- Servers and storage: the mean CPU utilisation over the period. Each `cpu_util_pct` sample
  is the mean over the interval that ends at it (psutil: since the previous read;
  hrProcessorLoad: the last minute), so the time-weighted mean gives each sample the time
  since the one before; at a regular interval it equals A.5's arithmetic mean.
- Network: U_n = (Δin + Δout) × 8 / (Δt × available bandwidth) from the egress ports'
  octet counters (full duplex: available = 2 × line rate unless configured). A counter
  decrease is told apart as a wrap or a reset by energy.py's rule (`_step`), tightened by
  what the switch says: a step in which sysUpTime fell or the port's counter discontinuity
  time moved is a reset; with a known line rate a wrap must not exceed it.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from dcmeter.collectors.evaluation.energy import (
    EDGE_TOLERANCE_INTERVALS,
    WRAP_RATE_FACTOR,
    EventKind,
    _at,
    _bracket,
    _clean,
    _median_rate,
    _secs,
    _step,
)
from dcmeter.collectors.evaluation.exact import seconds_at_most
from dcmeter.collectors.evaluation.issues import issue
from dcmeter.collectors.evaluation.jsonl import rfc3339
from dcmeter.collectors.evaluation.series import Series, arrays, median

UTIL_UNITS = {"%": 0.01, "pct": 0.01, "1": 1.0, "": 1.0}  # to a fraction 0..1
# A wrapped octet step may exceed the line rate by this factor (sample-time jitter).
LINE_RATE_MARGIN = 1.1


@dataclass(frozen=True, slots=True)
class GaugeMean:
    """The time-weighted mean of a utilisation gauge over a window, as a fraction 0..1."""

    source: str
    mean: float | None
    covered_s: float
    coverage: float
    samples: int
    issues: tuple[str, ...]
    valid: bool


@dataclass(frozen=True, slots=True)
class CounterEvent:
    """A counter decrease inside the window: a wrap past the modulus or a reset."""

    ts: float
    kind: EventKind
    before: float
    after: float
    counted: float  # the increase the step was counted with, in the series' unit


@dataclass(frozen=True, slots=True)
class CounterDelta:
    """The increase of a cumulative counter over [start, end], in the series' unit."""

    delta: float
    events: tuple[CounterEvent, ...]
    issues: tuple[str, ...]
    valid: bool
    coverage: float
    samples: int
    max_step_s: float

    @property
    def wraps(self) -> int:
        """Number of wraps counted."""
        return sum(e.kind == "wrap" for e in self.events)

    @property
    def resets(self) -> int:
        """Number of resets counted."""
        return sum(e.kind == "reset" for e in self.events)


def _edge_issues(
    first: float, last: float, start: float, end: float, median_dt: float, what: str
) -> tuple[list[str], bool]:
    """Report how far the data falls short of the window edges; beyond 2 intervals: invalid."""
    issues: list[str] = []
    valid = True
    tolerance = EDGE_TOLERANCE_INTERVALS * median_dt
    for short, edge in ((first - start, "after window start"), (end - last, "before window end")):
        if short > 0:
            far = short > tolerance
            issues.append(issue("coverage_load_far" if far else "coverage_load", what=what,
                                edge=edge, short=_secs(short),
                                **({"n": EDGE_TOLERANCE_INTERVALS} if far else {})))
            valid = valid and not far
    return issues, valid


def mean_utilisation(series: Series, start: float, end: float) -> GaugeMean:
    """Return the time-weighted mean utilisation (fraction 0..1) of a gauge over [start, end].

    T/CECA-G 0355—2025 A.5 (U of servers and storage). The sample at t_i stands for
    (t_{i-1}, t_i]; the series' first sample, whose interval is unknown, only opens the next.
    Values in % (or fractions, unit "1") outside 0..100 % are clipped and reported. A window
    edge not reached within 2 median intervals makes the figure invalid.
    """
    ts, vs, dropped = arrays(series)
    issues: list[str] = [issue("nonfinite_dropped", count=dropped)] if dropped else []
    scale = UTIL_UNITS.get(series.unit.strip().lower())
    if scale is None:
        known = [repr(u) for u in UTIL_UNITS]
        return GaugeMean(series.source, None, 0.0, 0.0, 0,
                         (issue("unknown_unit_util", unit=series.unit, known=known),), False)
    frac = vs * scale
    out = (frac < 0.0) | (frac > 1.0)
    if out.any():
        issues.append(
            issue("clipped", count=int(np.count_nonzero(out)), example=float(vs[out][0]))
        )
    # Step i runs from ts[i] to ts[i + 1] and carries the value of its later sample.
    a, b = np.maximum(ts[:-1], start), np.minimum(ts[1:], end)
    inside = b > a
    if not inside.any() or end <= start:
        issues.append(issue("no_interval"))
        return GaugeMean(series.source, None, 0.0, 0.0, 0, tuple(issues), False)
    width = (b - a)[inside]
    weighted = float(np.dot(np.clip(frac[1:][inside], 0.0, 1.0), width))
    covered = float(width.sum())
    first, last = float(a[inside][0]), float(b[inside][-1])
    median_dt = median(np.diff(ts))
    edge, valid = _edge_issues(first, last, start, end, median_dt, "first/last sample interval")
    return GaugeMean(
        series.source,
        weighted / covered,
        covered,
        covered / (end - start),
        int(np.count_nonzero(inside)),
        tuple(issues + edge),
        valid,
    )


def reset_steps(
    uptime: Series | None, discontinuity: Series | None
) -> list[tuple[float, float]]:
    """Return the sample intervals (t1, t2] in which a switch restarted its counters.

    sysUpTime (`sys_uptime_s`) falling means a reboot; a change of the port's
    ifCounterDiscontinuityTime (`if_counter_discontinuity_s`) a counter discontinuity
    (IF-MIB): both tell a reset apart from a wrap whatever the counter values show.
    """
    steps: list[tuple[float, float]] = []
    for s, fell in ((uptime, True), (discontinuity, False)):
        if s is None:
            continue
        ts, vs, _ = _clean(s)
        for i in range(1, len(ts)):
            if (vs[i] < vs[i - 1]) if fell else (vs[i] != vs[i - 1]):
                steps.append((ts[i - 1], ts[i]))
    return steps


def _known_reset(t1: float, t2: float, steps: Sequence[tuple[float, float]]) -> bool:
    return any(a < t2 and b > t1 for a, b in steps)


def counter_delta(
    series: Series,
    start: float,
    end: float,
    gap_s: float,
    *,
    max_rate: float | None = None,
    resets_in: Sequence[tuple[float, float]] = (),
) -> CounterDelta:
    """Return the increase of a cumulative counter over [start, end] (epoch s), in its unit.

    The counter is interpolated linearly at the window edges, as energy.counter_energy does.
    A decrease is a wrap (counting v2 + modulus - v1) or a reset (counting v2, the counter
    restarted from zero; the figure is then invalid) by energy.py's `_step` rule; with
    `max_rate` (unit/s, e.g. from the line rate) a wrap is plausible when its rate is within
    it, instead of 10 × the series' median rate. A step overlapping one of `resets_in` (see
    reset_steps) is a reset even when the value rose. A gap longer than gap_s holding a window
    edge makes the edge value an interpolation across it: invalid.
    """
    ts, vs, issues = _clean(series)
    span = _bracket(ts, start, end)
    if span is None:
        issues.append(issue("few_samples"))
        return CounterDelta(0.0, (), tuple(issues), False, 0.0, 0, 0.0)
    lo, hi = span
    rate = _median_rate(ts, vs) if max_rate is None else max_rate / WRAP_RATE_FACTOR
    cumulative = [0.0]
    events: list[CounterEvent] = []
    for j in range(lo + 1, hi + 1):
        v1, v2, dt = vs[j - 1], vs[j], ts[j] - ts[j - 1]
        kind: EventKind | None
        if _known_reset(ts[j - 1], ts[j], resets_in):
            delta, kind = v2, "reset"
        else:
            delta, kind = _step(v1, v2, dt, series.modulus, rate)
        cumulative.append(cumulative[-1] + delta)
        if kind is not None:
            events.append(CounterEvent(ts[j], kind, v1, v2, delta))
        if kind == "reset":
            issues.append(issue("counter_reset_load", at=rfc3339(ts[j]), before=float(v1),
                                after=float(v2), unit=series.unit))
    used = ts[lo : hi + 1]
    steps = [used[i + 1] - used[i] for i in range(len(used) - 1)]
    valid = not any(e.kind == "reset" for e in events)
    for i, dt in enumerate(steps):
        t1, t2 = used[i], used[i + 1]
        if not seconds_at_most(dt, gap_s) and (t1 < start < t2 or t1 < end < t2):
            issues.append(issue("gap_edge_load", gap=_secs(dt), at=rfc3339(t1)))
            valid = False
    edge, edges_ok = _edge_issues(
        used[0], used[-1], start, end, statistics.median(steps), "first/last sample"
    )
    a, b = max(start, used[0]), min(end, used[-1])
    delta = _at(used, cumulative, b) - _at(used, cumulative, a)
    return CounterDelta(
        delta=delta,
        events=tuple(events),
        issues=tuple(issues + edge),
        valid=valid and edges_ok,
        coverage=(b - a) / (end - start),
        samples=len(used),
        max_step_s=max(steps),
    )


def network_utilisation(bits: float, seconds: float, available_bps: float) -> float | None:
    """Return U_n = bits / (Δt × available bandwidth), a fraction (T/CECA-G 0355 A.5).

    `bits` = (Δin + Δout) octets × 8 over all egress ports, `seconds` = Δt, `available_bps`
    the ports' total available bandwidth (2 × line rate each, full duplex, unless configured).
    None when there is no bandwidth or no time.
    """
    if not seconds > 0 or not available_bps > 0:
        return None
    return bits / (seconds * available_bps)


def line_rate(speed: Series | None, start: float, end: float) -> tuple[float | None, list[str]]:
    """Return a port's line rate (bit/s) over [start, end] from `if_speed_bps`, or None.

    The mean of the positive samples inside the window (else those bracketing it); a rate
    that changed is reported. None when the device reported none (`if_speed_unknown` = 1
    comes without `if_speed_bps`).
    """
    if speed is None:
        return None, []
    ts, vs, _ = _clean(speed)
    inside = [v for t, v in zip(ts, vs, strict=True) if start <= t <= end and v > 0]
    if not inside:
        span = _bracket(ts, start, end)
        inside = [v for v in vs[span[0] : span[1] + 1] if v > 0] if span else []
    if not inside:
        return None, []
    issues: list[str] = []
    if min(inside) != max(inside):
        issues.append(issue("line_rate_changed", low=min(inside), high=max(inside)))
    return math.fsum(inside) / len(inside), issues


def wrap_ambiguous(modulus: float | None, rate_bps: float | None, max_step_s: float) -> bool:
    """Tell whether an octet counter can wrap more than once between two samples at line rate."""
    if modulus is None or rate_bps is None or not rate_bps > 0:
        return False
    return modulus * 8 / rate_bps < max_step_s
