"""Data quality of a window: per-series coverage, gaps, interval compliance, counter events.

T/CECA-G 0355—2025 Annex A.5: sampling interval 60 s recommended, 15 min at most; a general
computing window lasts 24 h preferably, 12 h at least. The collector adds the store-side
items (batch hash chain, agents' clocks, collectors/results/windows.py); offline they are
reported as not checked.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from dcmeter.collectors.evaluation.energy import _median_rate, _step
from dcmeter.collectors.evaluation.exact import seconds_at_most, seconds_below
from dcmeter.collectors.evaluation.issues import issue
from dcmeter.collectors.evaluation.jsonl import rfc3339
from dcmeter.collectors.evaluation.series import Series, arrays, median

MIN_HOURS = {"general": 12.0}  # A.5: the shortest window that counts, by kind
RECOMMENDED_HOURS = {"general": 24.0}
# Kinds whose result A.5's sampling interval rule (at most 15 min) invalidates when broken.
INTERVAL_RULE_KINDS = ("general",)
NOT_CHECKED_OFFLINE = "not checked offline (samples file): the collector checks it"


def _secs(x: float) -> str:
    return f"{x:.3f}".rstrip("0").rstrip(".")


def series_quality(
    series: Series, start: float, end: float, max_interval_s: float = 900.0
) -> dict[str, Any]:
    """Return the data quality of one series over [start, end] (epoch s).

    - samples: samples inside [start, end];
    - coverage: the share of the window within intervals of at most max_interval_s between
      two samples (the samples just outside the window count), 0..1;
    - longest_gap_s: the longest time without a sample that overlaps the window: between
      consecutive samples, from the window start to the first sample when none precedes it,
      from the last sample to the window end when none follows it; the window length when
      the series is empty;
    - median_interval_s: median of the intervals that overlap the window (None below 2);
    - interval_ok: longest_gap_s <= max_interval_s;
    - resets, wraps: counter decreases inside the window by the energy module's rule (a wrap
      past the modulus when its rate is plausible, else a reset); 0 for a gauge.
    """
    ts, vs, _ = arrays(series)
    length = max(end - start, 0.0)
    lo = max(int(np.searchsorted(ts, start, "right")) - 1, 0)  # last sample at or before start
    hi = min(int(np.searchsorted(ts, end, "left")), ts.size - 1)  # first sample at or after end
    used_t, used_v = ts[lo : hi + 1], vs[lo : hi + 1]
    inside = int(np.searchsorted(ts, end, "right") - np.searchsorted(ts, start, "left"))
    a, b = used_t[:-1], used_t[1:]
    overlaps = (b > start) & (a < end)
    a, b = a[overlaps], b[overlaps]
    gaps = b - a
    short = np.round(gaps, 6) <= max_interval_s  # whole microseconds, as the rule (exact.py)
    covered = float(np.sum(np.minimum(b[short], end) - np.maximum(a[short], start)))
    ends: list[float] = []
    if used_t.size and length > 0:
        ends = [float(x) for x in (used_t[0] - start, end - used_t[-1]) if x > 0]
    longest = max([*ends, float(gaps.max())] if gaps.size else ends, default=length)
    resets = wraps = 0
    if series.kind == "counter" and used_t.size > 1:
        rate = _median_rate(ts, vs)
        # Only a decrease can be a wrap or a reset (energy._step).
        for i in np.flatnonzero(overlaps & (used_v[1:] < used_v[:-1])).tolist():
            dt = float(used_t[i + 1] - used_t[i])
            _, event = _step(float(used_v[i]), float(used_v[i + 1]), dt, series.modulus, rate)
            resets += event == "reset"
            wraps += event == "wrap"
    median_s = median(gaps) if gaps.size else None
    return {
        "source": series.source,
        "metric": series.metric,
        "labels": dict(series.labels),
        "samples": inside,
        "coverage": covered / length if length > 0 else 0.0,
        "longest_gap_s": longest,
        "median_interval_s": median_s,
        "interval_ok": bool(gaps.size) and seconds_at_most(longest, max_interval_s),
        "resets": resets,
        "wraps": wraps,
    }


def _window_check(kind: str, start: float, end: float) -> tuple[list[str], list[str]]:
    """Return the window-length issues that invalidate and the notes that do not."""
    if end <= start:
        return [issue("window_not_after", end=rfc3339(end), start=rfc3339(start))], []
    hours = (end - start) / 3600.0
    minimum, recommended = MIN_HOURS.get(kind), RECOMMENDED_HOURS.get(kind)
    if minimum is not None and seconds_below(end - start, minimum * 3600.0):
        return [issue("window_short", hours=hours, minimum=minimum, kind=kind,
                      recommended=recommended)], []
    if recommended is not None and seconds_below(end - start, recommended * 3600.0):
        return [], [issue("window_short_note", hours=hours, minimum=minimum, kind=kind,
                          recommended=recommended)]
    return [], []


def window_rule(kind: str, start: float, end: float) -> list[str]:
    """Return the window-length issues of a `kind` window; notes start with "note: ".

    general: at least 12 h (an issue that invalidates), 24 h recommended (a note);
    infrastructure and ai: no length rule (an empty window is always an issue).
    """
    issues, notes = _window_check(kind, start, end)
    return issues + notes


def _series_issues(
    q: dict[str, Any], max_interval_s: float, known: Mapping[str, str]
) -> list[str]:
    """Issues of one series, unless the evaluation already reported them (`known`: per
    word, the issues holding it joined by newlines: one C-speed search per series, not a
    Python pass over every issue)."""
    name = f"{q['source']} {q['metric']}"

    def reported(word: str) -> bool:
        return name in known[word]

    issues: list[str] = []
    if not q["interval_ok"] and not reported("gap of"):
        issues.append(issue("series_gap", series=name, gap=_secs(q["longest_gap_s"]),
                            limit=_secs(max_interval_s)))
    if q["resets"] and not reported("reset"):
        issues.append(issue("series_resets", series=name, resets=q["resets"]))
    return issues


def quality_block(
    series: Sequence[Series],
    start: float,
    end: float,
    kind: str,
    extra_issues: list[str],
    max_interval_s: float = 900.0,
    *,
    valid: bool | None = None,
    precomputed: Mapping[Series, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Return the result's `quality` block over the series a `kind` evaluation used.

    `extra_issues` are the evaluation's own issues, listed first. `valid` is the evaluation's
    own verdict; when None, any extra issue invalidates. The block is further invalid when the
    window is shorter than its kind's rule, or (general) a series breaks the 15 min interval
    rule; other findings here (counter resets, short gaps of infrastructure counters, which
    the counter bridges exactly) are listed without invalidating. `chain` and `clock` are
    filled by the collector; offline they say they were not checked. `precomputed` holds
    series_quality's result for series whose samples were folded as they arrived (the
    collector's gauge folds): those are taken as they are.
    """
    blocking, notes = _window_check(kind, start, end)
    known = precomputed or {}
    sources = [
        dict(known[s]) if s in known else series_quality(s, start, end, max_interval_s)
        for s in series
    ]
    own: list[str] = []
    words = {w: "\n".join(i for i in extra_issues if w in i) for w in ("gap of", "reset")}
    for q in sources if end > start else ():
        own.extend(_series_issues(q, max_interval_s, words))
    interval_ok = all(q["interval_ok"] for q in sources)
    if kind in INTERVAL_RULE_KINDS and not interval_ok:
        blocking.append(issue("interval_rule", limit=_secs(max_interval_s)))
    base_valid = not extra_issues if valid is None else valid
    issues = list(extra_issues) + [i for i in own + blocking + notes if i not in extra_issues]
    return {
        "valid": base_valid and not blocking,
        "issues": issues,
        "sources": sources,
        "window_hours": (end - start) / 3600.0,
        "window_rule_ok": not _window_check(kind, start, end)[0],
        "interval_ok": interval_ok,
        "max_interval_s": max_interval_s,
        "chain": {"checked": False, "note": NOT_CHECKED_OFFLINE},
        "clock": {"checked": False, "note": NOT_CHECKED_OFFLINE},
    }


def part_of(labels: Mapping[str, str]) -> str | None:
    """Return the part of its source a series measures, for a row's name: a switch port's
    if_name (else its if_index), a GPU's index and name; None for the whole device."""
    if labels.get("if_name") or labels.get("if_index"):
        return labels.get("if_name") or f"ifIndex {labels['if_index']}"
    if labels.get("gpu_index") is not None:
        return f"GPU {labels['gpu_index']} {labels.get('gpu_name', '')}".strip()
    return None


def tidy_sources(quality: dict[str, Any]) -> None:
    """Name each row of `quality["sources"]` by its part (`part`, part_of; `name`: the metric
    and its part, as a table shows it) and leave out the idle series of live sources, in
    place.

    A row without samples in the window stays when no row of its source has any: a dead
    source is a finding (its issue is the role's). An idle series of a source that did report
    (a port gone from the selection, a series left behind by a relabelling) is no finding
    about the window: it is counted in `idle_series`, not listed. A series listed twice (one
    source in two roles) is listed once. The block's validity and issues are unchanged (they
    were judged over every series).
    """
    rows = quality.get("sources") or []
    live = {q["source"] for q in rows if q.get("samples")}
    seen: set[tuple[str, str, str]] = set()
    kept = []
    for q in rows:
        key = (q["source"], q["metric"], str(sorted((q.get("labels") or {}).items())))
        if key in seen or not (q.get("samples") or q["source"] not in live):
            continue
        seen.add(key)
        kept.append(q)
    for q in kept:
        q["part"] = part_of(q.get("labels") or {})
        q["name"] = " ".join(x for x in (q["metric"], q["part"]) if x)
    quality["idle_series"] = sum(
        1 for q in rows if not q.get("samples") and q["source"] in live
    )
    quality["sources"] = kept
