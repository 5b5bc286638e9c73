"""The evaluation report of one window: plot series from the store, HTML, PDF by Chromium.

`report_series` evaluates the window's consecutive sub-intervals with the shared
`evaluate()`, so every plotted point is computed exactly as the result is; `render_html`
lays out the result and those series (collectors/reporting/report_html.py); `render_pdf` and
`render_png` print the page with sandboxed headless Chromium (collectors/reporting/report_print.py).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from html import escape
from typing import Any, Literal

import numpy as np

from dcmeter.collectors.evaluation.evaluate import Kind, evaluate, source_ids
from dcmeter.collectors.evaluation.jsonl import parse_rfc3339
from dcmeter.collectors.evaluation.series import Series
from dcmeter.collectors.evaluation.site import Site
from dcmeter.collectors.reporting.report_html import LABELS, page
from dcmeter.collectors.reporting.report_i18n import word
from dcmeter.collectors.reporting.report_print import ReportError as ReportError
from dcmeter.collectors.reporting.report_print import chromium_binary as chromium_binary
from dcmeter.collectors.reporting.report_print import render_pdf as render_pdf
from dcmeter.collectors.reporting.report_print import render_png as render_png
from dcmeter.collectors.storage.deadline import Deadline
from dcmeter.collectors.storage.records import Window
from dcmeter.collectors.storage.store import Store

Lang = Literal["en", "zh"]
Point = tuple[float, float | None]
POINTS = 48  # sub-intervals over a window
LOAD_KINDS = ("compute", "storage", "network")


@dataclass(frozen=True, slots=True)
class ReportSeries:
    """The time series the report's plots draw: (epoch s at the sub-interval's middle, value).

    `total_kw`, `it_kw`: mean power over each sub-interval (energy / duration) in kW; `pue`:
    the sub-interval's PUE; `load`: U per kind (0..1), general windows only. A value is None
    where the sub-interval could not be evaluated (no samples). `step_s`: sub-interval length.
    """

    total_kw: list[Point] = field(default_factory=list)
    it_kw: list[Point] = field(default_factory=list)
    pue: list[Point] = field(default_factory=list)
    load: dict[str, list[Point]] = field(default_factory=dict)
    step_s: float = 0.0


def _sampling_interval_s(series: Sequence[Series], default: float = 60.0) -> float:
    """The shortest median sampling interval among the series, in s."""
    medians = [
        float(np.median(np.diff(np.asarray(s.ts)))) for s in series if len(s.ts) > 2
    ]
    positive = [m for m in medians if m > 0]
    return min(positive) if positive else default


def _slice(s: Series, t0: float, t1: float) -> Series:
    """`s` with only its samples in [t0, t1] (times sorted, as the store returns them)."""
    ts = np.asarray(s.ts)
    i, j = int(np.searchsorted(ts, t0, "left")), int(np.searchsorted(ts, t1, "right"))
    return Series(s.source, s.metric, s.unit, s.kind, ts[i:j], np.asarray(s.values)[i:j],
                  s.modulus, s.labels, s.accuracy)


def _num(v: Any) -> float | None:
    """`v` as a float when it is a finite number, else None (a gap in the plot)."""
    if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v):
        return float(v)
    return None


def series_from(
    kind: str, site: Site, series: Sequence[Series], start: float, end: float,
    step_s: float | None = None,
) -> ReportSeries:
    """Plot series of [start, end] (epoch s) from samples already read (pure, no I/O).

    The window is cut into sub-intervals of `step_s` (default: its length / 48, at least the
    sampling interval) and each is evaluated with `evaluate()`: general windows as general
    (for U per kind), every other kind as infrastructure (power and PUE).
    """
    length = end - start
    if not length > 0:
        return ReportSeries(step_s=0.0)
    step = step_s if step_s and step_s > 0 else max(length / POINTS, _sampling_interval_s(series))
    sub: Kind = "general" if kind == "general" else "infrastructure"
    margin = site.quality.max_gap_s  # samples beyond the edges let evaluate() interpolate
    out = ReportSeries(load={k: [] for k in LOAD_KINDS} if sub == "general" else {},
                       step_s=step)
    a = start
    while a < end - 1e-9:
        b = min(a + step, end)
        part = [_slice(s, a - margin, b + margin) for s in series]
        r = evaluate(sub, site, part, a, b)
        hours = (b - a) / 3600.0
        mid = (a + b) / 2
        energy = r.get("energy_kwh") or {}
        total, it = _num(energy.get("total")), _num(energy.get("it"))
        out.total_kw.append((mid, total / hours if total is not None else None))
        out.it_kw.append((mid, it / hours if it is not None else None))
        out.pue.append((mid, _num(r.get("pue"))))
        for k in out.load:
            out.load[k].append((mid, _num((r.get("load") or {}).get(k))))
        a = b
    return out


def report_series(
    store: Store, site: Site, window: Window, now_ns: int, step_s: float | None = None,
    deadline: Deadline | None = None,
) -> ReportSeries:
    """Plot series of `window` (to `now_ns` while open), its samples read once from `store`
    (`deadline` stops the reading: collectors/storage/deadline.py)."""
    end_ns = window.end_ns if window.end_ns is not None else now_ns
    margin_ns = int(site.quality.max_gap_s * 1e9)
    kind: Kind = "general" if window.kind == "general" else "infrastructure"
    samples = store.series(source_ids(kind, site), window.start_ns - margin_ns,
                           end_ns + margin_ns, deadline=deadline)
    return series_from(window.kind, site, samples, window.start_ns / 1e9, end_ns / 1e9,
                       step_s)


# -- plots: inline SVG ---------------------------------------------------------------------

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
    return f"{v:.4g}"


def _time_label(t: float, span_s: float) -> str:
    d = datetime.fromtimestamp(t, UTC)
    return d.strftime("%m-%d %H:%M" if span_s > 86400 else "%H:%M")


TIME_STEPS_S = (60, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400, 172800,
                604800)


def _time_ticks(t0: float, t1: float, most: int = 7) -> list[float]:
    """Round UTC times (whole minutes, hours, days) in [t0, t1], at most `most` of them."""
    step = next((st for st in TIME_STEPS_S if (t1 - t0) / st <= most - 1), TIME_STEPS_S[-1])
    first = math.ceil(t0 / step) * step
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
               span: tuple[float, float] | None = None) -> str:
    """An SVG line plot of (name, points) over time (`span`: the x range, epoch s; default
    the points' own); None values break a line. The y axis starts at 0 where the values are
    all positive and not far from it, and never spans less than 2 % of the values' size (so
    a constant PUE is a flat line, not magnified rounding noise)."""
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

    x_ticks = [(x_of(t), _time_label(t, t1 - t0)) for t in _time_ticks(t0, t1)]
    legend = [(COLOURS[i % len(COLOURS)], name) for i, (name, _) in enumerate(lines)]
    parts = _frame(title, ticks, y_of, x_ticks, legend)
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
                     f' class="pa">{v:.4g}</text>')
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


def _span(result: Mapping[str, Any]) -> tuple[float, float] | None:
    """The window's [start, end] in epoch s from the result, None where it does not say."""
    w = result.get("window") or {}
    try:
        return parse_rfc3339(str(w["start"])), parse_rfc3339(str(w["end"]))
    except (KeyError, ValueError):
        return None


def render_html(
    result: Mapping[str, Any],
    series: ReportSeries,
    lang: Lang,
    fingerprints: Mapping[str, str] | None = None,
) -> str:
    """The self-contained HTML report (inline CSS and SVG, no script) of one window's result.

    `fingerprints` maps agent id to its enrolled key's fingerprint for the evidence section.
    """
    if lang not in LABELS:
        raise ReportError(f"unknown report language {lang!r}: use 'en' or 'zh'")
    L = LABELS[lang]
    span = _span(result)
    plots = [
        line_chart(L["p_power"], [(L["total_power"], series.total_kw),
                                  (L["it_power"], series.it_kw)], L["no_data"], span),
        line_chart(L["p_pue"], [("PUE", series.pue)], L["no_data"], span),
    ]
    if result.get("kind") == "general":
        plots.append(line_chart(L["p_load"], [
            (L[k], [(t, v * 100 if v is not None else None) for t, v in series.load.get(k, [])])
            for k in LOAD_KINDS], L["no_data"], span))
    if result.get("kind") == "ai":
        runs = result.get("runs") or []
        bars = [(f"{word(r.get('phase', ''), lang)[:5]} #{r.get('repetition', i + 1)}",
                 _num(r.get("aee_gflops_per_wh")), bool(r.get("valid"))) for i, r in
                enumerate(runs)]
        advanced = _num((result.get("aee_thresholds") or {}).get("advanced"))
        threshold = (f"{L['advanced']} ≥ {advanced:g}", advanced) if advanced else None
        plots.append(bar_chart(L["p_aee"], bars, threshold, L["no_data"], L["invalid_run"]))
    return page(result, plots, lang, fingerprints or {})
