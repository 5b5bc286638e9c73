"""GET /metrics: the collector's gauges and counters in the Prometheus exposition format.

Everything is computed at scrape time from the store by one custom collector on a private
registry (no global state): counts by SQL aggregates over the rows appended since the last
scrape, the site figures by the shared evaluation over the last hour of samples only. See
docs/metrics.md.
"""

from __future__ import annotations

import math
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from typing import Any

import structlog
from fastapi import FastAPI, Request, Response
from fastapi.responses import PlainTextResponse
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from dcmeter.collectors.evaluation.evaluate import evaluate, source_ids
from dcmeter.collectors.evaluation.site import Site
from dcmeter.collectors.evaluation.site_general import GROUP_KINDS
from dcmeter.collectors.results.windows import KINDS
from dcmeter.collectors.storage import deadline as dl
from dcmeter.collectors.storage.store import Store
from dcmeter.collectors.web.offloop import Reads

log = structlog.get_logger("dcmeter.collector.metrics")

HOUR_S = 3600.0
POWER_SPAN_S = 900.0  # the span the power gauges are averaged over
# Refusals by (HTTP status, reason) as collectors/intake/ingest.py records them: always exposed,
# from 0, so that increase() works from the first scrape. Any other reason counts as "other", so
# the label set stays bounded whatever a later release records.
REJECTIONS: tuple[tuple[int, str], ...] = (
    (400, "malformed"),
    (400, "time_out_of_range"),
    (401, "unknown_agent"),
    (403, "bad_signature"),
    (403, "source_owned"),
    (403, "source_not_allowed"),
    (409, "seq_conflict"),
    (409, "chain_mismatch"),
    (409, "key_reused"),
    (409, "key_out_of_order"),
    (413, "too_large"),
    (422, "series_limit"),
)
REASONS = frozenset(r for _, r in REJECTIONS)


def _status_label(status: int) -> str:
    return str(status) if 100 <= status <= 599 else "other"


def rejection_counts(counts: Mapping[tuple[int, str], int]) -> dict[tuple[str, str], int]:
    """Fold refusals counted by (status, reason) into bounded (status, reason) labels."""
    out = {(str(s), r): 0 for s, r in REJECTIONS}
    for (status, reason), n in counts.items():
        key = (_status_label(status), reason if reason in REASONS else "other")
        out[key] = out.get(key, 0) + n
    return out


@dataclass(slots=True)
class AgentTotals:
    """What the store holds of one agent's batches: counts, newest times (ns), chain breaks."""

    batches: int = 0
    samples: int = 0
    last_sealed_ns: int = 0
    last_received_ns: int = 0
    breaks: int = 0


class StoreTotals:
    """Running sums over the store's batches and rejections, which are only ever appended.

    The first scrape aggregates every row; each later one only the rows appended since (by
    SQLite row id), so a scrape costs the same whether the store holds an hour or a year.
    """

    def __init__(self, store: Store) -> None:
        """Sum `store`'s rows, lazily at the first refresh."""
        self.store = store
        self._lock = threading.Lock()  # scrapes may run concurrently in the thread pool
        self._agents: dict[str, AgentTotals] = {}
        self._rejections: Counter[tuple[int, str]] = Counter()
        self._batch_row = self._rejection_row = 0

    def refresh(self) -> tuple[dict[str, AgentTotals], dict[tuple[int, str], int]]:
        """Add the rows appended since the last call; return per-agent totals and refusals."""
        with self._lock:
            rows, self._batch_row = self.store.agent_totals(self._batch_row)
            for r in rows:
                t = self._agents.setdefault(str(r["agent"]), AgentTotals())
                t.batches += int(r["batches"])
                t.samples += int(r["samples"] or 0)
                t.last_sealed_ns = max(t.last_sealed_ns, int(r["last_sealed_ns"]))
                t.last_received_ns = max(t.last_received_ns, int(r["last_received_ns"]))
                t.breaks += int(r["breaks"] or 0)
            refused, self._rejection_row = self.store.rejection_totals(self._rejection_row)
            for status, reason, n in refused:
                self._rejections[(status, reason)] += n
            agents = {a: replace(t) for a, t in sorted(self._agents.items())}
            return agents, dict(self._rejections)


def role_watts(result: Mapping[str, Any], role: str) -> float | None:
    """Mean power (W) of a role in an infrastructure result: per source over what it covered.

    Each source's energy is divided by the part of the span its samples cover (the newest
    sample is usually a poll interval old), and the sources are summed. None when a source of
    the role has no usable samples in the span: a partial sum would be a wrong figure.
    """
    block = result["sources"][role]
    hours = float(result["window"]["hours"])
    figures = block["per_source"]
    if not block["sources"] or len(figures) < len(block["sources"]):
        return None
    watts = 0.0
    for f in figures:
        covered_h = (f["coverage"] or 0.0) * hours
        if not covered_h > 0:
            return None
        watts += f["kwh"] * 1000.0 / covered_h
    return watts


def _finite(value: Any) -> bool:
    """Tell whether `value` is a finite number (a gauge value Prometheus can use)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


class StoreCollector(Collector):
    """Yield the collector's metrics from the store and the site file at each scrape."""

    def __init__(self, store: Store, site: Site, clock: Callable[[], int] = time.time_ns) -> None:
        """Read `store` and evaluate with `site`; `clock` gives now in ns since the epoch."""
        self.store = store
        self.site = site
        self.clock = clock
        self.totals = StoreTotals(store)

    def collect(self) -> Iterator[Metric]:
        """Build every metric family afresh."""
        started = time.perf_counter()
        agents, refused = self.totals.refresh()
        yield from self._ingest(agents, refused)
        yield from self._agents(agents)
        yield from self._windows()
        yield from self._site(self.clock())
        yield GaugeMetricFamily(
            "dcmeter_scrape_duration_seconds",
            "Time this collector took to compute the metrics of this scrape (store queries and"
            " the last-hour evaluations), s.",
            value=time.perf_counter() - started,
        )

    def _ingest(
        self, agents: Mapping[str, AgentTotals], refused: Mapping[tuple[int, str], int]
    ) -> Iterator[Metric]:
        yield CounterMetricFamily(
            "dcmeter_ingest_batches_accepted",
            "Batches verified and stored (retries answered as duplicates are not counted).",
            value=sum(a.batches for a in agents.values()),
        )
        yield CounterMetricFamily(
            "dcmeter_ingest_samples_accepted",
            "Samples stored, from the accepted batches.",
            value=sum(a.samples for a in agents.values()),
        )
        rejected = CounterMetricFamily(
            "dcmeter_ingest_batches_rejected",
            "Batches refused and stored nothing, by HTTP status and reason (malformed,"
            " unknown_agent, bad_signature, seq_conflict, too_large, other).",
            labels=["status", "reason"],
        )
        for (status, reason), n in sorted(rejection_counts(refused).items()):
            rejected.add_metric([status, reason], n)
        yield rejected

    def _agents(self, agents: Mapping[str, AgentTotals]) -> Iterator[Metric]:
        batches = CounterMetricFamily(
            "dcmeter_agent_batches_stored", "Batches stored from the agent.", labels=["agent"]
        )
        samples = CounterMetricFamily(
            "dcmeter_agent_samples_stored", "Samples stored from the agent.", labels=["agent"]
        )
        sealed = GaugeMetricFamily(
            "dcmeter_agent_last_batch_sealed_timestamp_seconds",
            "Seal time of the agent's newest stored batch, by the agent's clock (Unix s).",
            labels=["agent"],
        )
        received = GaugeMetricFamily(
            "dcmeter_agent_last_batch_received_timestamp_seconds",
            "When the collector stored the agent's newest batch, by its own clock (Unix s).",
            labels=["agent"],
        )
        chain_ok = GaugeMetricFamily(
            "dcmeter_agent_chain_ok",
            "1 when no stored batch of the agent breaks its hash chain (previous hash"
            " mismatch), else 0; gaps and drops are not breaks.",
            labels=["agent"],
        )
        breaks = CounterMetricFamily(
            "dcmeter_agent_chain_breaks",
            "Stored batches of the agent whose previous hash did not match.",
            labels=["agent"],
        )
        for name, t in agents.items():
            agent = [name]
            batches.add_metric(agent, t.batches)
            samples.add_metric(agent, t.samples)
            sealed.add_metric(agent, t.last_sealed_ns / 1e9)
            received.add_metric(agent, t.last_received_ns / 1e9)
            chain_ok.add_metric(agent, 0.0 if t.breaks else 1.0)
            breaks.add_metric(agent, t.breaks)
        yield from (batches, samples, sealed, received, chain_ok, breaks)

    def _windows(self) -> Iterator[Metric]:
        open_ = self.store.open_window_totals()
        family = GaugeMetricFamily(
            "dcmeter_windows_open", "Measurement windows open now, by kind.", labels=["kind"]
        )
        for kind in sorted({*KINDS, *open_}):
            family.add_metric([kind], open_.get(kind, 0))
        yield family

    def _site(self, now_ns: int) -> Iterator[Metric]:
        """The power of the last 15 min, the PUE of the last hour and the loads per kind."""
        site = self.site
        total = GaugeMetricFamily(
            "dcmeter_site_total_power_watts",
            "Site total power (energy.total sources), mean over the last 15 min: each source's"
            " energy over the part of the span its samples cover, summed, W. Absent when a"
            " source has no samples in the span.",
        )
        it = GaugeMetricFamily(
            "dcmeter_site_it_power_watts",
            "Site IT power (energy.it sources), mean over the last 15 min: each source's"
            " energy over the part of the span its samples cover, summed, W. Absent when a"
            " source has no samples in the span.",
        )
        pue = GaugeMetricFamily(
            "dcmeter_pue_last_hour",
            "PUE = E_total / E_IT over the last hour, by the infrastructure evaluation"
            " (dimensionless). Absent when it cannot be computed.",
        )
        valid = GaugeMetricFamily(
            "dcmeter_pue_last_hour_valid",
            "1 when the evaluation of the last hour is valid (data quality), else 0.",
        )
        load = GaugeMetricFamily(
            "dcmeter_load_last_hour_ratio",
            "Load U of the devices of a kind over the last hour, by the general evaluation"
            " (0..1). Only with a [general] site section; absent for a kind not measured.",
            labels=["kind"],
        )
        now = now_ns / 1e9
        ok = 0.0
        try:
            kind: Any = "general" if site.general is not None else "infrastructure"
            margin = site.quality.max_gap_s  # samples before the span interpolate its edge
            deadline = dl.current.get()
            series = self.store.series(
                source_ids(kind, site), int((now - HOUR_S - margin) * 1e9), now_ns, deadline
            )
            hour = evaluate("infrastructure", site, series, now - HOUR_S, now)
            dl.check(deadline)
            recent = evaluate("infrastructure", site, series, now - POWER_SPAN_S, now)
            dl.check(deadline)
            # A figure that could not be computed, or is not a finite number, is left out:
            # an absent series, never NaN (docs/metrics.md).
            for family, role in ((total, "total"), (it, "it")):
                watts = role_watts(recent, role)
                if watts is not None and _finite(watts):
                    family.add_metric([], watts)
            if _finite(hour["pue"]):
                pue.add_metric([], hour["pue"])
            ok = 1.0 if hour["quality"]["valid"] and _finite(hour["pue"]) else 0.0
            if site.general is not None:
                loads = evaluate("general", site, series, now - HOUR_S, now)["load"]
                for k in GROUP_KINDS:
                    if _finite(loads.get(k)):
                        load.add_metric([k], loads[k])
        except dl.Abandoned:  # past the time limit or the client left: stop the scrape
            raise
        except Exception:  # one failed evaluation must not take the ingest metrics with it
            log.exception("site figures for /metrics failed")
        valid.add_metric([], ok)
        yield from (total, it, pue, valid, load)


def add_metrics(
    app: FastAPI, store: Store, site: Site, clock: Callable[[], int] = time.time_ns,
    reads: Reads | None = None,
) -> None:
    """Serve GET /metrics on `app` from `store` and `site` (no token: gauges, no secrets);
    each scrape runs off the event loop within `reads`' time limit (collectors/web/offloop.py)."""
    off_loop = reads or Reads(60.0)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StoreCollector(store, site, clock))

    @app.get(
        "/metrics",
        response_class=PlainTextResponse,
        summary="Prometheus metrics",
        description=(
            "Site power, PUE of the last hour, loads, open windows, ingest counters and"
            " per-agent batch and hash-chain status, in the Prometheus text format"
            " (OpenMetrics when the Accept header asks for it). No token: see docs/metrics.md."
        ),
        responses={200: {"content": {"text/plain": {}}}},
    )
    async def metrics(request: Request) -> Response:
        encode, content_type = choose_encoder(request.headers.get("accept", ""))
        body = await off_loop.run(request, lambda _: encode(registry), "the /metrics scrape")
        return Response(body, media_type=content_type)
