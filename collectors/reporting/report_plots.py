"""The report's plots as inline SVG, drawn here (no plotting library, no script): line plots
over time (local time ticks) and bar plots (pure: no I/O)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta, tzinfo
from html import escape
from typing import Any

import numpy as np

from dcmeter.collectors.reporting.report_format import plain

Point = tuple[float, float | None]

W, H = 720, 240  # px of one plot
PAD_L, PAD_R, PAD_T, PAD_B = 64, 16, 30, 36
COLOURS = ("#1f5fa8", "#d9822b", "#2e8b57", "#8e44ad")


def _nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """About `n` round tick values covering [lo, hi]."""
    if not hi > lo:
        hi = lo + (abs(lo) or 1.0)
    raw = (hi - lo) / n
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    first = math.floor(lo / step) * step
    ticks = []
    t = first
    while t <= hi + step * 0.5:
        ticks.append(round(t, 10))
        t += step
    return ticks


def _tick_label(v: float) -> str:
    return plain(v, 4, strip=True)


def _time_label(t: float, span_s: float, tz: tzinfo = UTC) -> str:
    d = datetime.fromtimestamp(t, UTC).astimezone(tz)
    return d.strftime("%m-%d %H:%M" if span_s > 86400 else "%H:%M")


TIME_STEPS_S = (60, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400, 172800,
                604800)


def _time_ticks(t0: float, t1: float, most: int = 7, tz: tzinfo = UTC) -> list[float]:
    """Round local times (whole minutes, hours, days in `tz`) in [t0, t1], at most `most`."""
    step = next((st for st in TIME_STEPS_S if (t1 - t0) / st <= most - 1), TIME_STEPS_S[-1])
    off = (datetime.fromtimestamp(t0, UTC).astimezone(tz).utcoffset() or timedelta()).seconds
    first = math.ceil((t0 + off) / step) * step - off
    return [float(t) for t in np.arange(first, t1 + 1e-6, step)]


def _text_px(text: str) -> int:
    """The rough width of `text` at the plots' 11 px font (CJK glyphs are twice as wide)."""
    return sum(12 if ord(ch) > 0x2E80 else 7 for ch in text)


def _frame(title: str, y_ticks: Sequence[float], y_of: Any, x_ticks: Sequence[tuple[float, str]],
           legend: Sequence[tuple[str, str]]) -> list[str]:
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="plot" width="{W}" height="{H}"'
             f' viewBox="0 0 {W} {H}" role="img" aria-label="{escape(title)}">',
             f'<rect width="{W}" height="{H}" fill="#fff"/>',
             f'<text x="{PAD_L}" y="16" class="pt">{escape(title)}</text>']
    for v in y_ticks:
        y = y_of(v)
        parts.append(f'<line x1="{PAD_L}" x2="{W - PAD_R}" y1="{y:.1f}" y2="{y:.1f}"'
                     ' stroke="#e3e3e3"/>')
        parts.append(f'<text x="{PAD_L - 6}" y="{y + 4:.1f}" text-anchor="end"'
                     f' class="pa">{_tick_label(v)}</text>')
    for x, text in x_ticks:
        parts.append(f'<text x="{x:.1f}" y="{H - PAD_B + 16}" text-anchor="middle"'
                     f' class="pa">{escape(text)}</text>')
    parts.append(f'<line x1="{PAD_L}" x2="{W - PAD_R}" y1="{H - PAD_B}" y2="{H - PAD_B}"'
                 ' stroke="#777"/>')
    lx = W - PAD_R
    for colour, name in reversed(legend):
        lx -= 14 + _text_px(name) + 18
        parts.append(f'<rect x="{lx}" y="8" width="12" height="10" fill="{colour}"/>'
                     f'<text x="{lx + 16}" y="17" class="pa">{escape(name)}</text>')
    return parts


def line_chart(title: str, lines: Sequence[tuple[str, Sequence[Point]]], no_data: str,
               span: tuple[float, float] | None = None, tz: tzinfo = UTC,
               marks: Sequence[float] = ()) -> str:
    """An SVG line plot of (name, points) over time (`span`: the x range, epoch s; default
    the points' own); None values break a line; `marks`: times (epoch s) drawn as dashed
    vertical lines (an AI window's run boundaries); tick times local to `tz`. The y axis
    starts at 0 where the values are all positive and not far from it, and never spans less
    than 2 % of the values' size (so a constant PUE is a flat line, not magnified rounding
    noise)."""
    pts = [(t, v) for _, line in lines for t, v in line if v is not None]
    if not pts:
        return _empty(title, no_data)
    t0, t1 = span or (min(t for t, _ in pts), max(t for t, _ in pts))
    if t1 <= t0:
        t0, t1 = t0 - 60, t1 + 60
    lo, hi = min(v for _, v in pts), max(v for _, v in pts)
    least = 0.02 * max(abs(lo), abs(hi)) or 1.0
    if hi - lo < least:
        mid = (hi + lo) / 2
        lo, hi = mid - least / 2, mid + least / 2
    pad = 0.05 * (hi - lo)
    lo = 0.0 if 0 <= lo < 0.5 * hi else lo - pad
    hi = hi + pad
    ticks = _nice_ticks(lo, hi)
    lo, hi = min(ticks[0], lo), max(ticks[-1], hi)

    def x_of(t: float) -> float:
        return PAD_L + (t - t0) / (t1 - t0) * (W - PAD_L - PAD_R)

    def y_of(v: float) -> float:
        return H - PAD_B - (v - lo) / (hi - lo) * (H - PAD_T - PAD_B)

    x_ticks = [(x_of(t), _time_label(t, t1 - t0, tz)) for t in _time_ticks(t0, t1, tz=tz)]
    legend = [(COLOURS[i % len(COLOURS)], name) for i, (name, _) in enumerate(lines)]
    parts = _frame(title, ticks, y_of, x_ticks, legend)
    for m in marks:
        if t0 <= m <= t1:
            parts.append(f'<line class="mark" x1="{x_of(m):.1f}" x2="{x_of(m):.1f}"'
                         f' y1="{PAD_T}" y2="{H - PAD_B}" stroke="#8e44ad"'
                         ' stroke-dasharray="4 3"/>')
    for (colour, _), (_, line) in zip(legend, lines, strict=True):
        segment: list[str] = []
        for t, v in [*line, (0.0, None)]:
            if v is not None:
                segment.append(f"{x_of(t):.1f},{y_of(v):.1f}")
                continue
            if len(segment) == 1:
                x, y = segment[0].split(",")
                parts.append(f'<circle cx="{x}" cy="{y}" r="2.5" fill="{colour}"/>')
            elif segment:
                parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2"'
                             f' points="{" ".join(segment)}"/>')
            segment = []
    parts.append("</svg>")
    return "".join(parts)


def bar_chart(title: str, bars: Sequence[tuple[str, float | None, bool]],
              threshold: tuple[str, float] | None, no_data: str, invalid: str) -> str:
    """An SVG bar plot of (label, value, valid); invalid bars hatched red, a threshold line."""
    values = [v for _, v, _ in bars if v is not None]
    if not values:
        return _empty(title, no_data)
    hi = max([*values, threshold[1] if threshold else 0.0]) * 1.1
    ticks = _nice_ticks(0.0, hi)
    hi = max(hi, ticks[-1])

    def y_of(v: float) -> float:
        return H - PAD_B - v / hi * (H - PAD_T - PAD_B)

    slot = (W - PAD_L - PAD_R) / len(bars)
    x_ticks = [(PAD_L + slot * (i + 0.5), label) for i, (label, _, _) in enumerate(bars)]
    legend = [(COLOURS[0], title.split(" (")[0]), ("#c0392b", invalid)]
    parts = _frame(title, ticks, y_of, x_ticks, legend)
    for i, (_, v, ok) in enumerate(bars):
        if v is None:
            continue
        x, y = PAD_L + slot * i + slot * 0.2, y_of(v)
        colour = COLOURS[0] if ok else "#c0392b"
        parts.append(f'<rect class="bar" x="{x:.1f}" y="{y:.1f}" width="{slot * 0.6:.1f}"'
                     f' height="{H - PAD_B - y:.1f}" fill="{colour}"/>'
                     f'<text x="{x + slot * 0.3:.1f}" y="{y - 4:.1f}" text-anchor="middle"'
                     f' class="pa">{plain(v, 4)}</text>')
    if threshold:
        y = y_of(threshold[1])
        parts.append(f'<line x1="{PAD_L}" x2="{W - PAD_R}" y1="{y:.1f}" y2="{y:.1f}"'
                     ' stroke="#2e8b57" stroke-dasharray="6 4" stroke-width="1.5"/>'
                     f'<text x="{PAD_L + 4}" y="{y - 4:.1f}" class="pa" fill="#2e8b57">'
                     f'{escape(threshold[0])}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _empty(title: str, no_data: str) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" class="plot" width="{W}" height="80"'
            f' viewBox="0 0 {W} 80" role="img" aria-label="{escape(title)}">'
            f'<text x="{PAD_L}" y="16" class="pt">{escape(title)}</text>'
            f'<text x="{W / 2}" y="52" text-anchor="middle" class="pa">{escape(no_data)}</text>'
            "</svg>")


