"""A window's current result: the stored samples around it, through the shared evaluation.

The collector adds to the result's `quality` what only the store knows: how the agents'
batches of the window link (hash chain) and whether the agents' clocks were synchronised.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from dcmeter.collectors.evaluation.evaluate import evaluate, source_ids
from dcmeter.collectors.evaluation.gauge_fold import GaugeFold
from dcmeter.collectors.evaluation.general import A5_MAX_INTERVAL_S
from dcmeter.collectors.evaluation.instruments import add_instruments
from dcmeter.collectors.evaluation.issues import Issue, add_issue, attach_details, issue
from dcmeter.collectors.evaluation.jsonl import rfc3339
from dcmeter.collectors.evaluation.levels import withhold_levels
from dcmeter.collectors.evaluation.loads import GaugeMean
from dcmeter.collectors.evaluation.series import Series
from dcmeter.collectors.evaluation.site import Site
from dcmeter.collectors.evaluation.verdict import verdict
from dcmeter.collectors.results.scope import scoped
from dcmeter.collectors.storage.deadline import Deadline, check
from dcmeter.collectors.storage.ownership import CONFIRMED
from dcmeter.collectors.storage.records import Drop, Window
from dcmeter.collectors.storage.store import Store
from dcmeter.collectors.storage.store_folds import FOLD_METRIC

KINDS = ("infrastructure", "general", "ai")
SUPPORTED = ("infrastructure", "general", "ai")


def chain_and_clock(
    agents: Sequence[Mapping[str, Any]], t0_ns: int, t1_ns: int, max_interval_s: float,
    steps: Mapping[str, Sequence[tuple[int, float]]] | None = None,
    drops: Mapping[str, Sequence[Drop]] | None = None,
) -> tuple[dict[str, Any], dict[str, Any], list[str], bool]:
    """Check the batches sealed in [t0, t1] or holding a sample in it, whenever sealed, per
    agent as `Store.chain_summary` reports them.

    Chain, per batch as the store recorded it: "break" (the previous hash does not match:
    batches altered or replaced) invalidates; "gap" (the previous batch is missing, or was
    on arrival and then arrived without the link to it verified; a late batch that does hash
    to its successor's `prev` turns the successor's link "ok", one that does not is refused)
    and "dropped"
    (the agent discarded batches when its buffer was full) are issues: the lost samples show
    as gaps in the per-series figures. Clock: a batch sealed while the agent reported its
    clock unsynchronised is an issue; a known clock error bound above `max_interval_s`
    invalidates (timestamps could then move samples across the interval limit). A wall-clock
    step the agent reported (`steps`, per agent: (seq, stepped_s)) is an issue: the agent
    kept each series moving forward in time, but times around the step are shifted by it.
    `drops` (per agent, as `Store.dropped_records` reads them): a "gap" whose previous batch an
    agent reported dropped is a "dropped" link, and each agent's block says how many samples
    were dropped and when (`dropped_samples`, `dropped_spans`).
    Returns the `chain` and `clock` blocks, the issues and whether the store side is valid.
    """
    chain_agents: dict[str, dict[str, Any]] = {}
    clock_agents: dict[str, dict[str, Any]] = {}
    issues: list[str] = []
    valid = True
    for a in agents:
        a = _with_drops(a, (drops or {}).get(a["agent"], ()))
        agent, n = a["agent"], a["batches"]
        breaks, gaps, open_gaps, dropped = a["breaks"], a["gaps"], a["gaps_open"], a["dropped"]
        chain_agents[agent] = {
            k: a[k]
            for k in ("batches", "first_seq", "last_seq", "breaks", "gaps", "gaps_open",
                      "dropped", "dropped_samples", "dropped_spans")
        }
        if breaks:
            valid = False
            issues.append(issue("chain_broken", agent=agent, seqs=_seqs(breaks)))
        if open_gaps:
            issues.append(issue("batches_missing", agent=agent, seqs=_seqs(open_gaps)))
        if len(open_gaps) < len(gaps):
            filled = [s for s in gaps if s not in open_gaps]
            issues.append(issue("batches_late", agent=agent, seqs=_seqs(filled)))
        if dropped or a["dropped_spans"]:
            spans = [
                issue("dropped_span", first=d["first_seq"], last=d["last_seq"],
                      samples=d["samples"], start=d["from"], end=d["to"])
                for d in a["dropped_spans"][:10]
            ]
            issues.append(issue(
                "batches_dropped", agent=agent, samples=a["dropped_samples"],
                before=issue("dropped_before", seqs=_seqs(dropped)) if dropped else issue("empty"),
                spans=issue("dropped_spans", spans=spans) if spans else issue("empty"),
            ))
        max_error = a["max_error_s"]
        stepped = list((steps or {}).get(agent, ()))
        clock_agents[agent] = {
            "synced": a["synced"],
            "unsynced": a["unsynced"],
            "unknown": a["unknown"],
            "max_error_s": max_error,
            "steps": [{"seq": q, "stepped_s": s} for q, s in stepped],
        }
        if stepped:
            shown = [issue("clock_step", step=s, seq=q) for q, s in stepped[:10]]
            issues.append(issue("clock_stepped", agent=agent, steps=shown))
        if a["unsynced"]:
            issues.append(issue("clock_unsynced", agent=agent, unsynced=a["unsynced"], n=n))
        if max_error is not None and max_error > max_interval_s:
            valid = False
            issues.append(issue("clock_error", agent=agent, error=max_error,
                                limit=max_interval_s))
    span = {"from": rfc3339(t0_ns / 1e9), "to": rfc3339(t1_ns / 1e9)}
    chain = {
        "checked": True,
        # Both spans are the same: the batches checked are those sealed in it and those
        # holding a sample in it (a batch sealed long before or after still counts).
        "batches_sealed": span,
        "batches_sampled": span,
        "ok": all(not a["breaks"] for a in chain_agents.values()),
        "agents": chain_agents,
    }
    clock = {
        "checked": True,
        "ok": all(not a["unsynced"] and not a["steps"] for a in clock_agents.values()),
        "agents": clock_agents,
    }
    return chain, clock, issues, valid


def _with_drops(a: Mapping[str, Any], drops: Sequence[Drop]) -> dict[str, Any]:
    """`a` with its gaps after dropped batches counted as "dropped" links, and the drops."""
    after_drop = {s for s in a["gaps"] if any(d[0] <= s - 1 <= d[1] for d in drops)}
    return {
        **a,
        "gaps": [s for s in a["gaps"] if s not in after_drop],
        "gaps_open": [s for s in a["gaps_open"] if s not in after_drop],
        "dropped": sorted({*a["dropped"], *after_drop}),
        "dropped_samples": sum(d[2] for d in drops),
        "dropped_spans": [
            {"first_seq": d[0], "last_seq": d[1], "samples": d[2],
             "from": rfc3339(d[3] / 1e9), "to": rfc3339(d[4] / 1e9)}
            for d in drops
        ],
    }


def _seqs(seqs: Sequence[int]) -> Issue:
    shown = [int(s) for s in seqs[:10]]
    more = len(seqs) - 10
    return issue("seqs_more", seqs=shown, more=more) if more > 0 else issue("seqs", seqs=shown)


def _folded(
    store: Store, site: Site, w: Window, start: float, end: float
) -> dict[int, GaugeFold]:
    """The usable gauge folds of a general window's load series, by series id."""
    if w.kind != "general" or site.general is None or site.general.cpu_metric != FOLD_METRIC:
        return {}
    gap = site.quality.max_gap_s
    interval = min(gap, A5_MAX_INTERVAL_S)
    # A fold that saw a load outside 0..100 % clipped it into its sums: that series is read
    # raw, so the plausibility screen leaves the sample out (evaluation/plausibility.py).
    return {sid: f for sid, f in store.window_folds(w.id).items()
            if f.usable(start, end, interval, gap) and not f.out_of_range}


def _provenance(
    store: Store, sources: Sequence[str], t0_ns: int, t1_ns: int, quality: dict[str, Any]
) -> None:
    """Add to `quality` who owned each source over the span (`owners`: only the owner's
    samples were read; `confirmed`: false for a binding made on first delivery that no
    engineer confirmed yet) and the sources' metadata changes (`source_changes`), with an
    issue for a source that changed owner and for each reconfigured instrument."""
    owners: dict[str, list[dict[str, Any]]] = {}
    for source in sources:
        spans = [s for s in store.owners.spans(source)
                 if s.from_ns <= t1_ns and (s.until_ns is None or s.until_ns > t0_ns)]
        owners[source] = [{"agent": s.agent, "via": s.via, "confirmed": s.via in CONFIRMED,
                           "from": _opt_time(s.from_ns), "until": _opt_time(s.until_ns)}
                          for s in spans]
        if len({s.agent for s in spans}) > 1:
            add_issue(quality, "owner_changed", source=source, agents=[s.agent for s in spans])
    quality["owners"] = owners
    changes = store.source_changes(sources, t0_ns, t1_ns)
    quality["source_changes"] = [
        {**{k: v for k, v in c.items() if k != "ts_ns"}, "at": rfc3339(c["ts_ns"] / 1e9)}
        for c in changes
    ]
    for c in changes:
        what = [issue("change", key=k, before=repr(b), after=repr(a))
                for k, (b, a) in c["changed"].items()]
        add_issue(quality, "reconfigured", source=c["source"], agent=c["agent"],
                  at=rfc3339(c["ts_ns"] / 1e9), changes=what)


def _opt_time(ns: int | None) -> str | None:
    return None if ns is None or ns <= 0 else rfc3339(ns / 1e9)


def window_result(
    store: Store, site: Site, w: Window, now_ns: int, *, use_folds: bool = True,
    deadline: Deadline | None = None,
) -> dict[str, Any]:
    """Evaluate `w` over [start, end], or [start, now] while it is open.

    A general window's CPU load series come from their gauge folds (kept as batches
    arrived) where usable, the rest from the stored samples; `use_folds=False` reads all
    samples (the raw path, for comparison). `deadline` stops the reading (Abandoned).
    """
    site = scoped(site, w.kind, w.scope)
    end_ns = w.end_ns if w.end_ns is not None else now_ns
    # Samples just outside the window let the evaluation interpolate at its edges.
    margin_ns = int(site.quality.max_gap_s * 1e9)
    kind: Any = w.kind
    t0_ns, t1_ns = w.start_ns - margin_ns, end_ns + margin_ns
    start, end = w.start_ns / 1e9, end_ns / 1e9
    folds = _folded(store, site, w, start, end) if use_folds else {}
    by_id = store.series_by_id(source_ids(kind, site), t0_ns, t1_ns, skip=folds.keys(),
                               deadline=deadline)
    series = list(by_id.values())
    runs = [r.body for r in store.runs(w.id)]
    means: dict[Series, GaugeMean] = {}
    qualities: dict[Series, dict[str, Any]] = {}
    gap_s = min(site.quality.max_gap_s, A5_MAX_INTERVAL_S)
    for sid, fold in folds.items():
        if (s := by_id.get(sid)) is None:
            continue
        m, q = fold.mean_utilisation(s, start, end), fold.series_quality(s, start, end, gap_s)
        if m is None or q is None:  # not expected after usable(): read everything raw
            return window_result(store, site, w, now_ns, use_folds=False, deadline=deadline)
        means[s], qualities[s] = m, q
    result = evaluate(kind, site, series, start, end, runs, means=means, qualities=qualities)
    check(deadline)
    result["window"] = {
        "id": w.id,
        "kind": w.kind,
        "state": "open" if w.end_ns is None else "closed",
        "note": w.note,
        "opened_by": w.opened_by,
        "closed_by": w.closed_by,
        "scope": None if w.scope is None else list(w.scope),
        **result["window"],
    }
    quality = result["quality"]
    # Every batch holding a sample of the span, whenever it was sealed (a batch sealed long
    # before its samples must not escape), and every batch sealed in it. Every agent is
    # checked, not only the owners of the window's series.
    summary = store.chain_summary(t0_ns, t1_ns)
    chain, clock, issues, ok = chain_and_clock(
        summary, t0_ns, t1_ns, site.quality.max_gap_s, store.clock_steps(t0_ns, t1_ns),
        store.dropped_records(t0_ns, t1_ns),
    )
    quality["chain"], quality["clock"] = chain, clock
    quality["issues"].extend(issues)
    quality["valid"] = quality["valid"] and ok
    withhold_levels(result)  # the chain or clock may have just made it not valid,
    result["verdict"] = verdict(w.kind, result, site.equipment)  # and so the verdict indicative
    _provenance(store, source_ids(kind, site), t0_ns, t1_ns, quality)
    # The instruments: each source with samples in the window itself (not its margins).
    stored = store.instruments(source_ids(kind, site), w.start_ns, end_ns)
    add_instruments(result, site, [dataclasses.asdict(i) for i in stored], series, end)
    if w.end_ns is None:
        add_issue(quality, "window_open", at=rfc3339(now_ns / 1e9))
    attach_details(result)  # after the last issue: quality.issue_details, runs' too
    return result
