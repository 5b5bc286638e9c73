"""The result's instrument list: every source that delivered samples to a window, with its
identity, accuracy and calibration (collectors/evaluation/site_instruments.py)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from datetime import date, datetime, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

from dcmeter.collectors.evaluation.issues import Issue, attach_details
from dcmeter.collectors.evaluation.series import Series
from dcmeter.collectors.evaluation.site import Site
from dcmeter.collectors.evaluation.site_instruments import instrument_entry, overdue_issue
from dcmeter.collectors.evaluation.uncertainty import sources_accuracy


def roles_of(site: Site) -> dict[str, list[str]]:
    """Which of the site file's source lists name each source id (dotted keys)."""
    lists: list[tuple[str, Sequence[str]]] = [
        ("energy.total", site.energy.total), ("energy.it", site.energy.it),
        ("energy.green", site.energy.green),
    ]
    if site.ai is not None:
        lists += [("ai.servers", site.ai.servers), ("ai.gpus", site.ai.gpus),
                  ("ai.network", site.ai.network), ("ai.storage", site.ai.storage)]
    if site.general is not None:
        lists += [(f"general.groups.{g.name}", g.sources) for g in site.general.groups]
    for r in site.reconcile:  # a meter or a source behind it in a [[reconcile]] set
        lists += [("reconcile.meter", [r.meter]), ("reconcile.below", r.below)]
    out: dict[str, list[str]] = {}
    for key, ids in lists:
        for sid in ids:
            if key not in (have := out.setdefault(sid, [])):  # a source in two sets: once
                have.append(key)
    return out


def end_day(end: float, tz: tzinfo) -> date:
    """The calendar day, in the site's time zone (`[site] timezone`), of a window's end,
    `end` in epoch s."""
    return datetime.fromtimestamp(end, tz).date()


def instrument_list(
    site: Site, stored: Sequence[Mapping[str, Any]], series: Sequence[Series], end: float,
) -> tuple[list[dict[str, Any]], list[Issue]]:
    """The `instruments` rows of a window ending at `end` (epoch s) and their issues.

    `stored`: one mapping per (agent, source) with samples in the window (`agent`,
    `source`, `protocol`, `address`, `labels`, `accuracy`, `device`, `samples`); `series`:
    the window's series, for the default accuracy of a source that states none
    (uncertainty.py, `accuracy_source` "default"). A row's `overdue` is true when its
    calibration was due before the window's end day; each such row adds an issue.
    """
    cal = {i.source: i for i in site.instruments}
    roles = roles_of(site)
    day = end_day(end, ZoneInfo(site.site.timezone))
    by_source: dict[str, list[Series]] = {}
    for s in series:
        by_source.setdefault(s.source, []).append(s)
    rows: list[dict[str, Any]] = []
    issues: list[Issue] = []
    for st in stored:
        row = instrument_entry(st, cal.get(st["source"]), roles.get(st["source"], []), day)
        if row["accuracy"] is None and by_source.get(st["source"]):
            acc, basis = sources_accuracy(by_source[st["source"]])
            row["accuracy"], row["accuracy_source"] = acc, "default"
            row["accuracy_basis"] = row["accuracy_basis"] or basis
        rows.append(row)
        if row["overdue"]:
            issues.append(overdue_issue(row, day))
    return rows, issues


def add_instruments(
    result: dict[str, Any], site: Site, stored: Sequence[Mapping[str, Any]],
    series: Sequence[Series], end: float,
) -> None:
    """Put the instrument list into `result` and each overdue calibration into its
    `quality.issues` (an issue only: no clause makes validity hang on a calibration date,
    site_instruments.py)."""
    rows, issues = instrument_list(site, stored, series, end)
    result["instruments"] = rows
    result["quality"]["issues"].extend(issues)
    attach_details(result)  # the issues' codes, after the last one added


def series_instruments(
    series: Sequence[Series], start: float, end: float
) -> list[dict[str, Any]]:
    """The `stored` rows `instrument_list` takes, from series alone (`dcmeter evaluate`:
    JSON lines carry no agent, protocol, address or device identity); `samples` counts each
    series' samples in [start, end] (epoch s)."""
    out: dict[str, dict[str, Any]] = {}
    for s in sorted(series, key=lambda s: s.source):
        row = out.setdefault(s.source, {
            "agent": None, "source": s.source, "protocol": None, "address": None,
            "labels": dict(s.labels), "accuracy": s.accuracy, "device": {}, "samples": 0,
        })
        row["samples"] += sum(1 for t in s.ts if start <= t <= end)
    return [r for r in out.values() if r["samples"]]


def with_site_accuracy(site: Site, series: Sequence[Series]) -> dict[Series, Series]:
    """Each series whose source's [[instruments]] entry states an accuracy, mapped to a copy
    carrying it: the calibration certificate overrides the agent's configured figure in the
    uncertainty as in the instrument list. Series not concerned are left out."""
    stated = {i.source: i.accuracy for i in site.instruments if i.accuracy is not None}
    return {s: dataclasses.replace(s, accuracy=stated[s.source])
            for s in series if s.source in stated and s.accuracy != stated[s.source]}
