"""What the live window page shows, from a window's result and the store's freshness figures.

Pure functions over plain data (no I/O): console/routes.py reads the result (the same
`window_result` or frozen revision the API answers), the per-agent totals (web/metrics.py
`StoreTotals`: newest receipt per agent, chain breaks) and each source's newest samples, and
these turn them into the rows the templates print. Times are epoch seconds.

A source's failures come from its agent: each batch carries the tick's failed reads
(agent/wire.py `failures`), and the store keeps per source its current or last failing run
(collectors/storage/source_failures.py), handed here as `FailureRun`s. A source is `failing`
while its last failure is newer than its newest sample; "last failure reason" is the agent's
reason with the run's start and count, or, for a source without a recorded failure, the
result's own issues that name it (coverage gaps, resets, implausible values), else "—".
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

# An agent is stale past 3 × its interval; without a known interval, past this (s).
STALE_DEFAULT_S = 180.0
STALE_FACTOR = 3.0


def hms(seconds: float) -> str:
    """`h:mm:ss` of a duration in seconds (negative or not finite: 0:00:00)."""
    s = int(seconds) if math.isfinite(seconds) and seconds > 0 else 0
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def num(value: Any, digits: int = 3) -> str:
    """A figure for the page: `digits` decimals, or an em dash when there is none."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return "—"
    return f"{value:.{digits}f}"


@dataclass(frozen=True, slots=True)
class Indicator:
    """The window's headline indicator: its element id, label and value (text)."""

    id: str
    label: str
    value: str


def indicator(result: Mapping[str, Any]) -> Indicator:
    """PUE (infrastructure), CEE (general) or AEE (ai) so far."""
    kind = result.get("kind")
    if kind == "general":
        return Indicator("cee", "CEE", num(result.get("cee"), 4))
    if kind == "ai":
        return Indicator("aee", "AEE (GFLOPs/Wh)", num(result.get("aee_gflops_per_wh"), 2))
    return Indicator("pue", "PUE", num(result.get("pue"), 3))


@dataclass(frozen=True, slots=True)
class AgentRow:
    """One agent's freshness: seconds since its newest batch was stored, stale, chain state."""

    agent: str
    ago_s: int | None  # None: no batch stored
    stale: bool
    threshold_s: float
    chain: str  # "ok", or what is wrong (breaks, gaps still open, drops)


@dataclass(frozen=True, slots=True)
class FailureRun:
    """A source's current or last failing run as its agent reported it; times epoch s."""

    first_s: float
    last_s: float
    count: int
    reason: str
    recovered_s: float | None  # None, or not after last_s: no sample since the last failure


@dataclass(frozen=True, slots=True)
class SourceRow:
    """One (source, metric) of the window: status, newest value, coverage, last failure."""

    source: str
    metric: str
    status: str  # "ok", "stale", "no_data", "failing"
    last_value: str
    last_at: float | None
    coverage: str
    failure: str  # the agent's reason, else the newest result issue naming the source, or —
    run: FailureRun | None = None  # the run the failure belongs to, if the agent reported one

    @property
    def since(self) -> str:
        """`HH:MM:SS` (UTC) the failing run began, or "" without a run."""
        return "" if self.run is None else clock_time(self.run.first_s)

    @property
    def recovered(self) -> str:
        """`HH:MM:SS` (UTC) of the sample that ended the run, or "" while it lasts."""
        r = self.run
        if r is None or r.recovered_s is None or r.recovered_s <= r.last_s:
            return ""
        return clock_time(r.recovered_s)


def clock_time(epoch_s: float) -> str:
    """`HH:MM:SS` of an epoch time, UTC (the page's other times are UTC too)."""
    return time.strftime("%H:%M:%S", time.gmtime(epoch_s))


def is_failing(run: FailureRun | None, seen_s: float | None) -> bool:
    """Whether a source's last failure is newer than its newest sample (`seen_s`, None when
    none was read: then the run's own recovery decides)."""
    if run is None:
        return False
    if seen_s is None:
        return run.recovered_s is None or run.recovered_s <= run.last_s
    return run.last_s > seen_s


def agent_intervals(result: Mapping[str, Any]) -> dict[str, float]:
    """Per agent, the shortest median sampling interval (s) among its sources in the result:
    an agent seals one batch per tick, so its batches come about that often."""
    owner = {i.get("source"): i.get("agent") for i in result.get("instruments") or ()}
    out: dict[str, float] = {}
    for s in (result.get("quality") or {}).get("sources") or ():
        agent, step = owner.get(s.get("source")), s.get("median_interval_s")
        if agent and isinstance(step, (int, float)) and step > 0:
            out[agent] = min(out.get(agent, math.inf), float(step))
    return out


def chain_state(chain: Mapping[str, Any] | None, breaks: int) -> str:
    """An agent's chain in words: "ok", or the breaks, open gaps and drops in the window."""
    parts = []
    c = chain or {}
    if breaks or c.get("breaks"):
        parts.append(f"{max(breaks, len(c.get('breaks') or ()))} break(s)")
    if c.get("gaps_open"):
        parts.append(f"{len(c['gaps_open'])} open gap(s)")
    if c.get("dropped"):
        parts.append(f"{len(c['dropped'])} drop(s)")
    return ", ".join(parts) or "ok"


def agent_rows(
    result: Mapping[str, Any], received_s: Mapping[str, float], breaks: Mapping[str, int],
    now_s: float,
) -> list[AgentRow]:
    """The agents of the window (in its chain evidence) and every agent with stored batches:
    seconds since each one's newest batch (`received_s`, by the collector's clock), stale past
    3 × its interval (else STALE_DEFAULT_S), and its chain state."""
    chains = ((result.get("quality") or {}).get("chain") or {}).get("agents") or {}
    steps = agent_intervals(result)
    rows = []
    for agent in sorted(set(chains) | set(received_s)):
        last = received_s.get(agent)
        step = steps.get(agent)
        threshold = STALE_FACTOR * step if step else STALE_DEFAULT_S
        ago = None if last is None else max(0, int(now_s - last))
        rows.append(AgentRow(agent, ago, ago is None or ago > threshold, threshold,
                             chain_state(chains.get(agent), breaks.get(agent, 0))))
    return rows


def source_rows(
    result: Mapping[str, Any], last: Mapping[tuple[str, str], tuple[float, float, str]],
    now_s: float, open_: bool, failures: Mapping[str, FailureRun] | None = None,
) -> list[SourceRow]:
    """The result's sources (quality.sources) with their newest sample (`last`: (source,
    metric) → (time s, value, unit)); stale when an open window's source has had no sample
    for 3 × its median interval (else STALE_DEFAULT_S); failing while its last failure
    (`failures`: source → its run) is newer than that sample. A source with a run that the
    result does not list (a target that never answered) gets a row of its own, metric "—"."""
    issues: Sequence[str] = (result.get("quality") or {}).get("issues") or ()
    failures = failures or {}
    rows = []
    for s in (result.get("quality") or {}).get("sources") or ():
        src, metric = str(s.get("source")), str(s.get("metric"))
        seen = last.get((src, metric))
        step = s.get("median_interval_s")
        threshold = STALE_FACTOR * step if isinstance(step, (int, float)) and step > 0 \
            else STALE_DEFAULT_S
        if seen is None:
            status = "no_data"
        elif open_ and now_s - seen[0] > threshold:
            status = "stale"
        else:
            status = "ok"
        value = "—" if seen is None else f"{num(seen[1], 3)} {seen[2]}".strip()
        cov = s.get("coverage")
        coverage = "—" if not isinstance(cov, (int, float)) else f"{100 * cov:.1f} %"
        named = [i for i in issues if _names(i, src)]
        run = failures.get(src)
        if is_failing(run, None if seen is None else seen[0]):
            status = "failing"
        rows.append(SourceRow(src, metric, status, value, None if seen is None else seen[0],
                              coverage, run.reason if run else named[-1] if named else "—",
                              run))
    listed = {r.source for r in rows}
    for src, run in sorted(failures.items()):
        if src not in listed:
            rows.append(SourceRow(src, "—", "failing" if is_failing(run, None) else "ok",
                                  "—", None, "—", run.reason, run))
    return rows


def _names(issue: str, source: str) -> bool:
    """Whether an issue's text names `source` as a word (not as part of a longer id)."""
    at = issue.find(source)
    while at >= 0:
        end = at + len(source)
        before = issue[at - 1] if at else " "
        after = issue[end] if end < len(issue) else " "
        if not (before.isalnum() or before in "-_.") and not (after.isalnum() or after in "-_"):
            return True
        at = issue.find(source, at + 1)
    return False


def last_samples(series: Iterable[Any]) -> dict[tuple[str, str], tuple[float, float, str]]:
    """(source, metric) → (time s, value, unit) of the newest sample of each series read."""
    out: dict[tuple[str, str], tuple[float, float, str]] = {}
    for s in series:
        if len(s.ts):
            key = (s.source, s.metric)
            t = float(s.ts[-1])
            if key not in out or out[key][0] < t:
                out[key] = (t, float(s.values[-1]), s.unit)
    return out


def chart_series(series: Mapping[str, Any], updated: float,
                 still_open: bool = False) -> dict[str, Any]:
    """uPlot's columns from a report's plot series (total_kw, it_kw, pue as (t, v) pairs):
    `t` (epoch s) with `total_kw`, `it_kw` and `pue` aligned on it (null where a
    sub-interval had no figure), and `updated` (epoch s).

    While the window is open its last bucket is still filling: it runs to now, past the
    newest sample, and would draw a fall in power that is not there. It is left out until
    the next bucket starts (`still_open`)."""
    cols: dict[str, dict[float, Any]] = {}
    for name in ("total_kw", "it_kw", "pue"):
        cols[name] = {float(t): v for t, v in series.get(name) or ()}
    ts = sorted(set().union(*(c.keys() for c in cols.values())))
    if still_open and ts:
        ts = ts[:-1]
    return {"updated": updated, "t": ts,
            **{name: [c.get(t) for t in ts] for name, c in cols.items()}}
