"""The indication of a stored series over a calibration dwell (seed 004, STANDARD.md §4).

A gauge gives its time-weighted mean over the dwell (ai_calibration.gauge_mean); a counter
its increase (ai_calibration.counter_delta, wraps told from resets as for energy counters),
per second for a rate quantity, converted into the quantity's unit. With it: the level's
fluctuation inside the dwell (the synchronisation component's spread, calibration.py), how
many samples lie inside, and the resolution (GUM F.2.2.1) as far as the samples tell it.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise

from dcmeter.collectors.evaluation.ai_calibration import counter_delta, gauge_mean
from dcmeter.collectors.evaluation.calibration_quantities import CounterUnit, Quantity
from dcmeter.collectors.evaluation.energy import _clean, _median_rate, _step
from dcmeter.collectors.evaluation.issues import issue
from dcmeter.collectors.evaluation.series import Series


@dataclass(frozen=True, slots=True)
class Indication:
    """A series' indication over [start, end], in the quantity's unit.

    `value` None where the samples do not give one (`issues` say why); `spread` the change a
    shift of one edge by the whole dwell could make (calibration.py's synchronisation): max −
    min of the gauge samples inside the dwell, or the counter's fastest per-interval rate
    there (× the dwell for an amount quantity); `samples` how many samples lie inside;
    `resolution` the estimated resolution (0 = not estimated) and `resolution_basis` how.
    """

    value: float | None
    spread: float
    samples: int
    resolution: float
    resolution_basis: str
    issues: tuple[str, ...] = ()


def _unit_error(series: Series, quantity: Quantity) -> ValueError:
    gauges = ", ".join(quantity.gauge_units) or "none"
    counters = ", ".join(quantity.counter_units) or "none"
    return ValueError(
        f"series {series.source} {series.metric}: a {series.kind} in unit {series.unit!r}"
        f" does not fit quantity {quantity.name} ({quantity.unit}); valid: gauge units"
        f" {gauges}, counter units {counters}"
    )


def _gauge(series: Series, start: float, end: float, factor: float) -> Indication:
    """Time-weighted mean, spread and smallest step of a gauge's samples inside the dwell."""
    ts, vs, _ = _clean(series)
    inside = [v * factor for t, v in zip(ts, vs, strict=True) if start <= t <= end]
    mean = gauge_mean(series, start, end)
    issues = () if mean is not None else (issue("cal.few_samples"),)
    spread = max(inside) - min(inside) if inside else 0.0
    levels = sorted(set(inside))
    steps = [b - a for a, b in pairwise(levels) if b > a]
    if steps:
        resolution, basis = min(steps), "estimated: smallest step between the samples"
    elif len(inside) < 2:
        resolution, basis = 0.0, "one sample"
    else:
        resolution, basis = 0.0, "not estimated: the samples inside do not change"
    return Indication(None if mean is None else mean * factor, spread, len(inside),
                      resolution, basis, issues)


def _counter_rates(series: Series, start: float, end: float) -> tuple[list[float], int]:
    """The per-interval rates (counter unit/s) between consecutive samples inside the dwell
    (a wrap counted by energy._step), and how many samples lie inside."""
    ts, vs, _ = _clean(series)
    idx = [i for i, t in enumerate(ts) if start <= t <= end]
    median = _median_rate(ts, vs)
    rates = []
    for i, j in pairwise(idx):
        dt = ts[j] - ts[i]
        d, kind = _step(vs[i], vs[j], dt, series.modulus, median)
        if dt > 0 and kind != "reset":
            rates.append(d / dt)
    return rates, len(idx)


def _counter(series: Series, start: float, end: float, unit: CounterUnit) -> Indication:
    """A counter's increase over the dwell (per second for a rate quantity), converted."""
    duration = end - start
    per = duration if unit.per_second else 1.0
    delta = counter_delta(series, start, end)
    rates, samples = _counter_rates(series, start, end)
    # A counter's increase moves with an edge at the counter's rate, steady load or not.
    spread = max(abs(r) for r in rates) * unit.factor if rates else 0.0
    if not unit.per_second:
        spread *= duration  # an amount: the rate over a whole dwell
    issues: tuple[str, ...] = ()
    value = None if delta.value is None else delta.value * unit.factor / per
    if delta.value is None:
        issues = (issue("cal.few_samples"),)
    elif delta.resets:
        value, issues = None, (issue("cal.counter_reset", count=delta.resets),)
    elif not delta.valid:
        value, issues = None, (issue("cal.samples_short"),)
    return Indication(value, spread, samples, unit.factor / per,
                      "one counter unit over the dwell", issues)


def indication(series: Series, start: float, end: float, quantity: Quantity) -> Indication:
    """Return the series' indication of `quantity` over [start, end] (epoch s).

    A gauge in one of quantity.gauge_units: its time-weighted mean × the unit's factor. A
    counter in one of quantity.counter_units: its increase × factor (B -> Gbit/s: × 8/1e9;
    J -> Wh: / 3600; Wh -> Wh), divided by end − start for a rate quantity. Any other unit
    or kind raises ValueError naming the series' unit and the quantity. Without a sample at
    or before `start` and one at or after `end` there is no value (`issues` say which).
    """
    if end <= start:
        raise ValueError(f"dwell end {end} is not after its start {start}")
    fits = (series.kind == "gauge" and series.unit in quantity.gauge_units) or (
        series.kind == "counter" and series.unit in quantity.counter_units)
    if not fits:
        raise _unit_error(series, quantity)
    # A calibration reads between samples, never beyond them: the value at an edge past the
    # last sample would be a guess (and one taken before the agent has shipped the samples
    # after the dwell would freeze a dwell cut short into the record).
    ts, _, _ = _clean(series)
    if not (len(ts) and ts[0] <= start and ts[-1] >= end):
        code = ("cal.no_sample_before" if not (len(ts) and ts[0] <= start)
                else "cal.no_sample_after")
        return Indication(None, 0.0, 0, 0.0, "", (issue(code),))
    if series.kind == "gauge":
        return _gauge(series, start, end, quantity.gauge_units[series.unit])
    return _counter(series, start, end, quantity.counter_units[series.unit])
