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

from dcmeter import __version__
from dcmeter.collectors.evaluation.evaluate import Kind, evaluate, source_ids
from dcmeter.collectors.evaluation.jsonl import parse_rfc3339
from dcmeter.collectors.evaluation.series import Series
from dcmeter.collectors.evaluation.site import Site
from dcmeter.collectors.reporting.report_buckets import least_bucket_s, nice_s, role_of
from dcmeter.collectors.reporting.report_format import fmt, hms, plain, zone
from dcmeter.collectors.reporting.report_html import LABELS, page
from dcmeter.collectors.reporting.report_i18n import word
from dcmeter.collectors.reporting.report_plots import bar_chart as bar_chart
from dcmeter.collectors.reporting.report_plots import line_chart as line_chart
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
    `rule`: why `step_s` is that long (collectors/reporting/report_buckets.py):
    `r_total_kwh`, `r_it_kwh` (counter resolution), `p_total_kw`, `p_it_kw` (mean power),
    `least_s` (the shortest bucket keeping resolution under 0.5 %); empty when not computed.
    """

    total_kw: list[Point] = field(default_factory=list)
    it_kw: list[Point] = field(default_factory=list)
    pue: list[Point] = field(default_factory=list)
    load: dict[str, list[Point]] = field(default_factory=dict)
    step_s: float = 0.0
    rule: dict[str, float] = field(default_factory=dict)


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
    sampling interval; where counter resolution would change a figure by 0.5 % or more, the
    least bucket that keeps it under, rounded up to a readable length: report_buckets.py)
    and each is evaluated with `evaluate()`: general windows as general (for U per kind),
    every other kind as infrastructure (power and PUE).
    """
    length = end - start
    if not length > 0:
        return ReportSeries(step_s=0.0)
    counter = site.energy.metrics.counter
    total_role = role_of(series, site.energy.total, counter)
    it_role = role_of(series, site.energy.it, counter)
    least = least_bucket_s((total_role, it_role))
    rule = {"r_total_kwh": total_role.r_kwh, "r_it_kwh": it_role.r_kwh,
            "p_total_kw": total_role.p_kw, "p_it_kw": it_role.p_kw, "least_s": least}
    if step_s and step_s > 0:
        step = step_s
    else:
        step = max(length / POINTS, _sampling_interval_s(series))
        if least > step:  # counter steps would show: a readable length above the least
            step = min(length, nice_s(least))
    sub: Kind = "general" if kind == "general" else "infrastructure"
    margin = site.quality.max_gap_s  # samples beyond the edges let evaluate() interpolate
    out = ReportSeries(load={k: [] for k in LOAD_KINDS} if sub == "general" else {},
                       step_s=step, rule=rule)
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


def _span(result: Mapping[str, Any]) -> tuple[float, float] | None:
    """The window's [start, end] in epoch s from the result, None where it does not say."""
    w = result.get("window") or {}
    try:
        return parse_rfc3339(str(w["start"])), parse_rfc3339(str(w["end"]))
    except (KeyError, ValueError):
        return None


def bucket_note(series: ReportSeries, L: Mapping[str, str]) -> str:
    """The line under the power and PUE plots: how long a bucket is and why (escaped)."""
    rule, step = series.rule, series.step_s
    least = rule.get("least_s", 0.0)
    if not least > 0:
        text = L["bucket_note_plain"].format(step=hms(step))
    elif least > step + 1e-9:
        text = L["bucket_note_short"].format(step=hms(step), least=hms(least))
    else:
        share = sum(rule[f"r_{r}_kwh"] / rule[f"p_{r}_kw"] for r in ("total", "it")
                    if rule.get(f"p_{r}_kw")) / (step / 3600.0)
        text = L["bucket_note"].format(
            step=hms(step), least=hms(least), r_total=plain(rule.get("r_total_kwh"), 3, True),
            r_it=plain(rule.get("r_it_kwh"), 3, True),
            p_total=fmt(rule.get("p_total_kw"), "power_kw"),
            p_it=fmt(rule.get("p_it_kw"), "power_kw"), share=f"{share * 100:.2f} %")
    return f'<p class="muted note">{escape(text)}</p>'


def _run_plots(result: Mapping[str, Any], L: Mapping[str, str],
               lang: Lang) -> tuple[list[float], list[str]]:
    """AI windows: the runs' boundaries (epoch s) and the mean power per run and AEE plots."""
    runs = result.get("runs") or []
    marks: list[float] = []
    bars_kw: list[tuple[str, float | None, bool]] = []
    for i, r in enumerate(runs):
        label = f"{word(r.get('phase', ''), lang)[:5]} #{r.get('repetition', i + 1)}"
        start, dur, wh = (parse_rfc3339(str(r["start"])) if r.get("start") else None,
                          _num(r.get("duration_s")), _num(r.get("energy_wh")))
        if start is not None and dur is not None:
            marks += [start, start + dur]
        kw = wh / 1000.0 / (dur / 3600.0) if wh is not None and dur else None
        bars_kw.append((label, kw, bool(r.get("valid"))))
    bars = [(label, _num(r.get("aee_gflops_per_wh")), bool(r.get("valid")))
            for (label, _, _), r in zip(bars_kw, runs, strict=True)]
    advanced = _num((result.get("aee_thresholds") or {}).get("advanced"))
    threshold = (f"{L['advanced']} ≥ {plain(advanced, 6, True)}", advanced) if advanced else None
    return marks, [bar_chart(L["p_run_power"], bars_kw, None, L["no_data"], L["invalid_run"]),
                   bar_chart(L["p_aee"], bars, threshold, L["no_data"], L["invalid_run"])]


def render_html(
    result: Mapping[str, Any],
    series: ReportSeries,
    lang: Lang,
    fingerprints: Mapping[str, str] | None = None,
    generated: float | None = None,
) -> str:
    """The self-contained HTML report (inline CSS and SVG, no script) of one window's result.

    `fingerprints` maps agent id to its enrolled key's fingerprint for the evidence section.
    `generated`: the generation time shown (epoch s); default the result revision's
    `computed_at` (so a stored revision's page stays the same), else now.
    """
    if lang not in LABELS:
        raise ReportError(f"unknown report language {lang!r}: use 'en' or 'zh'")
    L = LABELS[lang]
    span = _span(result)
    tz = zone((result.get("site_info") or {}).get("timezone"))
    if generated is None:
        rev = result.get("revision")
        try:
            generated = parse_rfc3339(str(rev["computed_at"]))  # type: ignore[index]
        except (KeyError, ValueError, TypeError):
            generated = datetime.now(UTC).timestamp()
    marks: list[float] = []
    extra: list[str] = []
    if result.get("kind") == "ai":
        marks, extra = _run_plots(result, L, lang)
    note = bucket_note(series, L)
    plots = [
        line_chart(L["p_power"], [(L["total_power"], series.total_kw),
                                  (L["it_power"], series.it_kw)], L["no_data"], span, tz,
                   marks) + (f'<p class="muted note">{escape(L["run_marks"])}</p>'
                             if marks else "") + note,
        line_chart(L["p_pue"], [("PUE", series.pue)], L["no_data"], span, tz, marks) + note,
    ]
    if result.get("kind") == "general":
        plots.append(line_chart(L["p_load"], [
            (L[k], [(t, v * 100 if v is not None else None) for t, v in series.load.get(k, [])])
            for k in LOAD_KINDS], L["no_data"], span, tz))
    plots += extra
    return page(result, plots, lang, fingerprints or {}, generated, __version__)
