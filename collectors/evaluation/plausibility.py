"""Physical plausibility of samples: what no instrument of a kind can read is left out.

Agents sign what they send, so the collector keeps every sample; but a figure of
T/CECA-G 0355—2025 (E_total, E_IT, E_green of 6.1.2, the loads U of A.5) must come from
measurements, and a value no device can produce is not one. `screen` checks each series
against the site's `[plausibility]` limits (collectors/evaluation/site_plausibility.py) and
returns the series without the samples that break them, with one `Finding` per series and
rule. The evaluations then compute from the screened series, list the findings in
`quality.implausible` and are not valid. Rules, by what a series is:

- energy counter (a counter in kWh, Wh, MWh, J or kJ): not negative, not above its declared
  modulus; its increase over the last plausible sample must not exceed max power × (1 +
  margin) × Δt + the counter's resolution (a register counting whole kWh steps by 1 kWh).
  A decrease is plausible when the energy it can be counted with (a reset counts the new
  value; a wrap past the modulus counts value + modulus − before) is within that limit;
- power gauge (W, kW, MW): between −negative_power_fraction × max power and max power ×
  (1 + margin);
- percentage (unit % or a metric named *_pct): 0..100 (CPU load and GPU utilisation, A.5);
- port octet counters (if_in_octets, if_out_octets): not negative, not above the modulus, and
  the traffic over Δt at most the port's line rate × (1 + margin) for Δt plus one second
  (poll-time jitter); the line rate is the highest the port reported (if_speed_bps), else
  the site's maximum line rate;
- line rate (if_speed_bps): 0..the site's maximum line rate.

Non-finite samples are left in place: the evaluation already drops and reports them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import numpy.typing as npt

from dcmeter.collectors.evaluation.energy import ENERGY_UNITS_TO_KWH, POWER_UNITS_TO_KW
from dcmeter.collectors.evaluation.issues import issue
from dcmeter.collectors.evaluation.jsonl import rfc3339
from dcmeter.collectors.evaluation.loads import UTIL_UNITS
from dcmeter.collectors.evaluation.series import Series
from dcmeter.collectors.evaluation.site_plausibility import Plausibility

OCTETS = ("if_in_octets", "if_out_octets")
SPEED = "if_speed_bps"
JITTER_S = 1.0  # poll-time jitter allowed to an octet counter, s of line rate
Array = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class Finding:
    """Samples of one series that broke one rule: how many, and the first of them.

    `checked` is what was compared with `limit`, in `checked_unit`: the sample's value, or a
    counter's increase over `span_s` seconds since the last plausible sample, or a port's
    traffic in bit/s.
    """

    source: str
    metric: str
    labels: Mapping[str, str]
    rule: str
    ts: float  # epoch s of the first offending sample
    value: float  # its value, in `unit`
    unit: str
    checked: float
    checked_unit: str
    limit: float
    count: int = 1
    span_s: float | None = None

    def to_json(self) -> dict[str, Any]:
        """Return the entry of the result's `quality.implausible` list."""
        return {
            "source": self.source, "metric": self.metric, "labels": dict(self.labels),
            "rule": self.rule, "ts": rfc3339(self.ts), "value": self.value, "unit": self.unit,
            "checked": self.checked, "checked_unit": self.checked_unit, "limit": self.limit,
            "span_s": self.span_s, "count": self.count,
        }

    def issue(self) -> str:
        """Return the result's issue line naming the series, the first sample and the limit."""
        varying = "".join(f",{k}={v}" for k, v in sorted(self.labels.items())
                          if k not in ("point", "kind"))
        labels = "{" + varying[1:] + "}" if varying else ""
        span = {} if self.span_s is None else {"span": self.span_s}
        return issue(
            "implausible_span" if span else "implausible", source=self.source,
            metric=self.metric, labels=labels, count=self.count, rule=self.rule,
            at=rfc3339(self.ts), value=self.value, unit=self.unit, what=RULE_TEXT[self.rule],
            checked=self.checked, checked_unit=self.checked_unit, limit=self.limit, **span,
        )


RULE_TEXT = {
    "counter_negative": "counter value",
    "counter_above_modulus": "counter value above its modulus:",
    "counter_increase": "increase",
    "power_below_range": "power",
    "power_above_range": "power",
    "percent_out_of_range": "value outside 0..100 %:",
    "octets_above_line_rate": "traffic",
    "line_rate_out_of_range": "line rate",
}


@dataclass(slots=True)
class _Marks:
    """Bad samples of one series found so far: positions in the sorted finite arrays."""

    bad: dict[int, str] = field(default_factory=dict)  # position -> rule (first rule wins)
    info: dict[int, tuple[float, float, float | None]] = field(default_factory=dict)

    def mark(self, i: int, rule: str, checked: float, limit: float,
             span: float | None = None) -> None:
        if i not in self.bad:
            self.bad[i] = rule
            self.info[i] = (checked, limit, span)


def _sorted_finite(s: Series) -> tuple[npt.NDArray[np.intp], Array, Array]:
    """Return the positions of the finite samples in time order, and their times and values."""
    ts, vs = np.asarray(s.ts, dtype=np.float64), np.asarray(s.values, dtype=np.float64)
    idx = np.flatnonzero(np.isfinite(ts) & np.isfinite(vs))
    order = np.argsort(ts[idx], kind="stable")
    idx = idx[order]
    return idx, ts[idx], vs[idx]


def _range(marks: _Marks, vs: Array, low: float, high: float, rules: tuple[str, str],
           check_high: bool = True) -> None:
    """Mark values below `low` (rules[0]) or above `high` (rules[1])."""
    for i in np.flatnonzero(vs < low).tolist():
        marks.mark(i, rules[0], float(vs[i]), low)
    if check_high:
        for i in np.flatnonzero(vs > high).tolist():
            marks.mark(i, rules[1], float(vs[i]), high)


def counter_steps(
    ts: Sequence[float] | Array, vs: Sequence[float] | Array, modulus: float | None,
    rate: float, slack: float,
) -> list[tuple[int, float, float, float]]:
    """Return the implausible samples of a cumulative counter as (position, increase, limit,
    Δt s), each compared with the last plausible sample before it.

    Times in s, sorted; `rate` is the largest increase per second and `slack` the increase
    allowed at once (a register's resolution), in the counter's unit. A step's increase is
    v2 − v1; a decrease is plausible when a reset (counting v2) or a wrap (counting v2 +
    modulus − v1, when not negative) fits the limit rate × Δt + slack; its reported increase
    is the smaller of the two. Values must be within 0..modulus (checked before).
    """
    t, v = np.asarray(ts, dtype=np.float64), np.asarray(vs, dtype=np.float64)
    if t.size < 2:
        return []
    dt, dv = np.diff(t), np.diff(v)
    limit = rate * dt + slack
    counted = np.where(dv >= 0, dv, v[1:])
    if modulus is not None and modulus > 0:
        wrap = v[1:] + modulus - v[:-1]
        counted = np.where((dv < 0) & (wrap >= 0), np.minimum(counted, wrap), counted)
    if bool(np.all(counted <= limit)):
        return []  # the common case: every step plausible, no loop
    out: list[tuple[int, float, float, float]] = []
    last = 0
    for i in range(1, t.size):
        span = float(t[i] - t[last])
        lim = rate * span + slack
        inc = float(v[i] - v[last])
        if inc < 0:
            reset = float(v[i])
            wrapped = reset + modulus - float(v[last]) if modulus else -1.0
            inc = min(reset, wrapped) if wrapped >= 0 else reset
        if inc <= lim:
            last = i
        else:
            out.append((i, inc, lim, span))
    return out


def _counter(marks: _Marks, ts: Array, vs: Array, modulus: float | None, rate: float,
             slack: float, rule: str) -> None:
    """Mark a counter's negative values, values above the modulus and too large increases."""
    _range(marks, vs, 0.0, modulus or 0.0, ("counter_negative", "counter_above_modulus"),
           check_high=modulus is not None and modulus > 0)
    keep = np.ones(vs.size, dtype=bool)
    keep[list(marks.bad)] = False
    pos = np.flatnonzero(keep)
    for j, inc, lim, span in counter_steps(ts[pos], vs[pos], modulus, rate, slack):
        marks.mark(int(pos[j]), rule, inc, lim, span)


def _line_rate(s: Series, by_port: Mapping[tuple[str, str], Series], p: Plausibility) -> float:
    """The highest plausible line rate (bit/s) the port of `s` reported, else the site's max."""
    top = p.line_rate_bps(s.source)
    speed = by_port.get((s.source, _key(s.labels)))
    if speed is not None:
        _, _, vs = _sorted_finite(speed)
        ok = vs[(vs > 0) & (vs <= top)]
        if ok.size:
            return float(ok.max())
    return top


def _key(labels: Mapping[str, str]) -> str:
    return repr(sorted(labels.items()))


def _percent_max(s: Series) -> float | None:
    """The top of a percentage's range in its unit (100 for %, 1 for a fraction), or None."""
    unit = s.unit.strip().lower()
    if unit in ("%", "pct"):
        return 100.0
    if s.metric.endswith("_pct"):
        return 1.0 / UTIL_UNITS.get(unit, 0.01)
    return None


def _marks(s: Series, p: Plausibility, by_port: Mapping[tuple[str, str], Series],
           ts: Array, vs: Array) -> tuple[_Marks, str]:
    """Check one series' sorted finite samples; return the marks and the unit of `checked`."""
    marks = _Marks()
    kind = s.labels.get("kind")
    unit = s.unit.strip().lower()
    if s.kind == "counter" and s.metric in OCTETS:
        rate = _line_rate(s, by_port, p) * (1.0 + p.margin) / 8.0
        _counter(marks, ts, vs, s.modulus, rate, rate * JITTER_S, "octets_above_line_rate")
        for i, rule in marks.bad.items():  # traffic as bit/s, as the line rate is given
            checked, limit, span = marks.info[i]
            if rule == "octets_above_line_rate" and span:
                marks.info[i] = (checked * 8.0 / span, limit * 8.0 / span, span)
        return marks, "bit/s"
    if s.kind == "counter" and unit in ENERGY_UNITS_TO_KWH:
        scale = ENERGY_UNITS_TO_KWH[unit]  # kWh per unit
        rate = p.power_w(s.source, kind) * (1.0 + p.margin) / 3.6e6 / scale
        _counter(marks, ts, vs, s.modulus, rate, p.resolution(s.source, kind) / scale,
                 "counter_increase")
        return marks, s.unit
    if s.kind == "counter":
        return marks, s.unit
    if unit in POWER_UNITS_TO_KW:
        to_w = POWER_UNITS_TO_KW[unit] * 1000.0
        top = p.power_w(s.source, kind)
        _range(marks, vs, -p.negative_power_fraction * top / to_w,
               top * (1.0 + p.margin) / to_w, ("power_below_range", "power_above_range"))
    elif (pct := _percent_max(s)) is not None:
        _range(marks, vs, 0.0, pct, ("percent_out_of_range", "percent_out_of_range"))
    elif s.metric == SPEED:
        _range(marks, vs, 0.0, p.line_rate_bps(s.source),
               ("line_rate_out_of_range", "line_rate_out_of_range"))
    return marks, s.unit


@dataclass(frozen=True, slots=True)
class Screened:
    """The series with their implausible samples left out, and what was found."""

    series: list[Series]
    findings: list[Finding]


def screen(series: Sequence[Series], limits: Plausibility) -> Screened:
    """Return `series` without their implausible samples, and one Finding per series and rule.

    A series with nothing implausible is returned as the same object (callers key precomputed
    figures by series).
    """
    by_port = {(s.source, _key(s.labels)): s for s in series if s.metric == SPEED}
    out: list[Series] = []
    findings: list[Finding] = []
    for s in series:
        idx, ts, vs = _sorted_finite(s)
        marks, checked_unit = _marks(s, limits, by_port, ts, vs)
        if not marks.bad:
            out.append(s)
            continue
        first: dict[str, int] = {}
        counts: dict[str, int] = {}
        for i, rule in marks.bad.items():
            counts[rule] = counts.get(rule, 0) + 1
            if rule not in first or ts[i] < ts[first[rule]]:
                first[rule] = i
        for rule, i in first.items():
            checked, limit, span = marks.info[i]
            findings.append(Finding(
                s.source, s.metric, dict(s.labels), rule, float(ts[i]), float(vs[i]), s.unit,
                checked, checked_unit if rule in _RATE_RULES else s.unit, limit,
                counts[rule], span,
            ))
        drop = np.zeros(len(s.ts), dtype=bool)
        drop[idx[sorted(marks.bad)]] = True
        keep = ~drop
        out.append(replace(s, ts=np.asarray(s.ts)[keep], values=np.asarray(s.values)[keep]))
    findings.sort(key=lambda f: (f.source, f.metric, _key(f.labels), f.rule))
    return Screened(out, findings)


_RATE_RULES = ("octets_above_line_rate",)


def flag(quality: dict[str, Any], findings: Sequence[Finding]) -> None:
    """Add `findings` to a result's quality block: `implausible`, issues, not valid."""
    seen = {(e["source"], e["metric"], _key(e["labels"]), e["rule"])
            for e in quality.setdefault("implausible", [])}
    new = [f for f in findings if (f.source, f.metric, _key(f.labels), f.rule) not in seen]
    quality["implausible"].extend(f.to_json() for f in new)
    quality["issues"][:0] = [f.issue() for f in new]
    if quality["implausible"]:
        quality["valid"] = False
