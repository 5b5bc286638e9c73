"""A utilisation gauge folded sample by sample into what a window's evaluation reads of it.

T/CECA-G 0355—2025 A.5 (U of servers and storage, sampling interval and coverage): a
`GaugeFold` holds, for ONE gauge series and ONE window [start, end] (end None while the window
is open), the running sums that `loads.mean_utilisation` and `quality.series_quality` compute
from the raw samples, so the collector can answer a window from O(1) state per series instead
of reading every sample. Fed the same samples the raw path would read (in time order), it
returns the same `GaugeMean` and the same quality dict, with two differences, both documented:

- medians are taken from a histogram of step lengths rounded to the millisecond, so
  `median_interval_s` and the edge tolerance of `mean_utilisation` (2 median intervals) are
  exact to 1 ms (0.5 ms rounding) rather than to the float;
- sums are added in arrival order rather than numpy's order: equal to about 1e-15 relative.

The median of `mean_utilisation` is over every step the fold saw: the caller feeds the window
± its margin, which is what the raw path reads, not the whole series. A sample not after the
last one folded makes the fold `dirty`; a fold the caller could not feed from the window's
start is `from_raw_needed`; in both cases the answers are None and the caller reads raw.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields, replace
from operator import attrgetter
from typing import Any

import msgpack

from dcmeter.collectors.evaluation.exact import seconds_at_most
from dcmeter.collectors.evaluation.issues import issue
from dcmeter.collectors.evaluation.loads import UTIL_UNITS, GaugeMean, _edge_issues
from dcmeter.collectors.evaluation.series import Series

STATE_VERSION = 1


def _ms(step_s: float) -> int:
    return round(step_s * 1000.0)


def _add(hist: dict[int, int], step_s: float) -> None:
    key = _ms(step_s)
    hist[key] = hist.get(key, 0) + 1


def hist_median_s(hist: dict[int, int]) -> float | None:
    """Return the median (s) of a histogram of steps in ms (the mean of the middle two for
    an even count), or None when it is empty."""
    n = sum(hist.values())
    if n == 0:
        return None
    keys = sorted(hist)
    wanted = (n // 2,) if n % 2 else (n // 2 - 1, n // 2)
    picked: list[int] = []
    seen = 0
    for k in keys:
        seen += hist[k]
        while len(picked) < len(wanted) and wanted[len(picked)] < seen:
            picked.append(k)
        if len(picked) == len(wanted):
            break
    return sum(picked) / len(picked) / 1000.0


@dataclass(slots=True)
class GaugeFold:
    """Streaming aggregates of one utilisation gauge series over one window (epoch s).

    `scale` turns a value into a fraction (0.01 for %); `max_interval_s` is the interval limit
    of the quality figures (A.5: 900 s); `margin_s` is how far outside the window the caller
    feeds samples (the raw path's margin), kept so a reader can check it matches.
    """

    start: float
    end: float | None
    scale: float
    max_interval_s: float
    margin_s: float
    dirty: bool = False
    from_raw_needed: bool = False
    saw_start: bool = False  # a sample at or before start was folded
    last_seen: float | None = None  # time of the last sample, finite or not (order check)
    first_t: float | None = None  # first finite sample
    prev_t: float | None = None  # last finite sample
    last_le_start: float | None = None  # last finite sample at or before start
    first_ge_end: float | None = None  # first finite sample at or after a known end
    nonfinite: int = 0
    out_of_range: int = 0
    first_out: float | None = None  # the first value outside 0..100 %, as sampled
    inside: int = 0  # finite samples in [start, end]
    steps: dict[int, int] = field(default_factory=dict)  # every step, ms -> count
    # Steps (p, t] overlapping the window: t > start and p < end.
    n_in: int = 0
    weighted: float = 0.0  # sum of clipped fraction x clipped width, s
    covered: float = 0.0  # sum of clipped widths, s
    covered_short: float = 0.0  # the same over steps <= max_interval_s
    max_gap: float = 0.0  # longest such step, unclipped, s
    win_steps: dict[int, int] = field(default_factory=dict)  # their lengths, ms -> count
    first_a: float | None = None  # clipped start of the first such step
    last_b: float | None = None  # clipped end of the last one

    def add(self, ts_s: float, value: float) -> None:
        """Fold one sample (epoch s, value in the series' unit); samples must come in order."""
        if self.dirty:
            return
        if self.last_seen is not None and not ts_s > self.last_seen:
            self.dirty = True
            return
        self.last_seen = ts_s
        if not (math.isfinite(ts_s) and math.isfinite(value)):
            self.nonfinite += 1
            return
        start, end = self.start, self.end
        frac = value * self.scale
        if frac < 0.0 or frac > 1.0:
            self.out_of_range += 1
            if self.first_out is None:
                self.first_out = value
        if ts_s <= start:
            self.last_le_start = ts_s
            self.saw_start = True
        if start <= ts_s and (end is None or ts_s <= end):
            self.inside += 1
        if end is not None and ts_s >= end and self.first_ge_end is None:
            self.first_ge_end = ts_s
        p = self.prev_t
        self.prev_t = ts_s
        if p is None:
            self.first_t = ts_s
            return
        step = ts_s - p
        _add(self.steps, step)
        if ts_s > start and (end is None or p < end):
            a = max(p, start)
            b = ts_s if end is None else min(ts_s, end)
            width = b - a
            self.n_in += 1
            self.weighted += min(max(frac, 0.0), 1.0) * width
            self.covered += width
            if round(step, 6) <= self.max_interval_s:  # whole µs, as quality.py (exact.py)
                self.covered_short += width
            self.max_gap = max(self.max_gap, step)
            _add(self.win_steps, step)
            if self.first_a is None:
                self.first_a = a
            self.last_b = b

    def close(self, end: float) -> None:
        """Fix the window's end (epoch s): a fold that already saw a later sample is dirty."""
        if self.end is not None:
            return
        if self.last_seen is not None and self.last_seen > end:
            self.dirty = True
        self.end = end
        if self.prev_t is not None and self.prev_t >= end:
            self.first_ge_end = self.prev_t

    def usable(self, start: float, end: float, max_interval_s: float, margin_s: float) -> bool:
        """Tell whether the fold answers for [start, end] as the raw path would."""
        if self.dirty or self.from_raw_needed or start != self.start or not end > start:
            return False
        if max_interval_s != self.max_interval_s or margin_s != self.margin_s:
            return False
        if self.end is None:  # open: every sample folded must lie at or before `end`
            return self.last_seen is None or self.last_seen <= end
        return end == self.end

    def _answers(self, series: Series, start: float, end: float) -> bool:
        scale = UTIL_UNITS.get(series.unit.strip().lower())
        return (
            scale == self.scale and series.kind == "gauge"
            and self.usable(start, end, self.max_interval_s, self.margin_s)
        )

    def mean_utilisation(self, series: Series, start: float, end: float) -> GaugeMean | None:
        """Return what `loads.mean_utilisation(series, start, end)` returns on the samples
        folded (medians to 1 ms), or None when the fold cannot answer (read raw then)."""
        if not self._answers(series, start, end):
            return None
        issues: list[str] = (
            [issue("nonfinite_dropped", count=self.nonfinite)] if self.nonfinite else []
        )
        if self.out_of_range:
            issues.append(issue("clipped", count=self.out_of_range, example=self.first_out))
        if self.n_in == 0 or self.first_a is None or self.last_b is None:
            issues.append(issue("no_interval"))
            return GaugeMean(series.source, None, 0.0, 0.0, 0, tuple(issues), False)
        median_dt = hist_median_s(self.steps) or 0.0
        edge, valid = _edge_issues(
            self.first_a, self.last_b, start, end, median_dt, "first/last sample interval"
        )
        return GaugeMean(
            series.source,
            self.weighted / self.covered,
            self.covered,
            self.covered / (end - start),
            self.n_in,
            tuple(issues + edge),
            valid,
        )

    def series_quality(
        self, series: Series, start: float, end: float, max_interval_s: float
    ) -> dict[str, Any] | None:
        """Return what `quality.series_quality(series, start, end, max_interval_s)` returns on
        the samples folded (median to 1 ms), or None when the fold cannot answer."""
        if max_interval_s != self.max_interval_s or not self._answers(series, start, end):
            return None
        length = end - start
        ends: list[float] = []
        if self.first_t is not None and self.prev_t is not None:
            first_used = self.last_le_start if self.last_le_start is not None else self.first_t
            last_used = self.first_ge_end if self.first_ge_end is not None else self.prev_t
            ends = [x for x in (first_used - start, end - last_used) if x > 0]
        longest = max([*ends, self.max_gap] if self.n_in else ends, default=length)
        return {
            "source": series.source,
            "metric": series.metric,
            "labels": dict(series.labels),
            "samples": self.inside,
            "coverage": self.covered_short / length,
            "longest_gap_s": longest,
            "median_interval_s": hist_median_s(self.win_steps) if self.n_in else None,
            "interval_ok": bool(self.n_in) and seconds_at_most(longest, max_interval_s),
            "resets": 0,
            "wraps": 0,
        }

    def copy(self) -> GaugeFold:
        """Return an independent copy (a snapshot to evaluate while ingest goes on)."""
        return replace(self, steps=dict(self.steps), win_steps=dict(self.win_steps))

    def to_state(self) -> dict[str, Any]:
        """Return the fold as a small JSON-able dict."""
        out: dict[str, Any] = {"v": STATE_VERSION}
        for name in _NAMES:
            out[name] = getattr(self, name)
        out["steps"] = sorted(self.steps.items())
        out["win_steps"] = sorted(self.win_steps.items())
        return out

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> GaugeFold:
        """Rebuild a fold from `to_state()`'s dict."""
        if state.get("v") != STATE_VERSION:
            raise ValueError(f"fold state version {state.get('v')!r}; known: {STATE_VERSION}")
        kwargs = {k: v for k, v in state.items() if k != "v"}
        for name in ("steps", "win_steps"):
            kwargs[name] = {int(k): int(n) for k, n in kwargs[name]}
        return cls(**kwargs)


    def to_packed(self) -> bytes:
        """Return the fold as compact bytes (msgpack: the version, every field in
        declaration order, the two histograms as maps): what the store writes, ~5× cheaper
        to make than `to_state()`'s dict and its JSON text."""
        out: bytes = msgpack.packb(
            [STATE_VERSION, *_SCALARS(self), self.steps, self.win_steps], use_bin_type=True)
        return out

    @classmethod
    def from_packed(cls, data: bytes) -> GaugeFold:
        """Rebuild a fold from `to_packed()`'s bytes."""
        out = msgpack.unpackb(data, strict_map_key=False, use_list=False)
        if out[0] != STATE_VERSION:
            raise ValueError(f"fold state version {out[0]!r}; known: {STATE_VERSION}")
        *scalars, steps, win_steps = out[1:]
        return cls(**dict(zip(_SCALAR_NAMES, scalars, strict=True)), steps=dict(steps),
                   win_steps=dict(win_steps))


_NAMES = tuple(f.name for f in fields(GaugeFold))
# The packed form's scalar fields: every field but the two histograms, in declaration order
# (from_packed passes them positionally: the histograms are declared among them, so they
# are taken out here and passed by name).
_SCALAR_NAMES = tuple(n for n in _NAMES if n not in ("steps", "win_steps"))
_SCALARS = attrgetter(*_SCALAR_NAMES)
