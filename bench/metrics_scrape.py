"""Cost of one GET /metrics scrape: N agents' batches over H hours in a SQLite store.

    .venv/bin/python bench/metrics_scrape.py --agents 100 --hours 1

Fills a fresh store (in a temporary folder, or `--store FILE`) through `Store.insert_batch`
with signed, hash-chained batches, one per agent per minute: each agent reports its host's
cpu_util_pct and `--sources` BMC power gauges; agent 0 also carries the site's total and IT
meters (energy counters). The site file has a [general] compute group over every host, so a
scrape runs all three last-hour evaluations. Then it times the scrape as the route does it
(the store collector through prometheus_client's encoder, no HTTP): the first scrape, which
sums every stored batch, then `--repeat` later ones, which add only the batches stored since;
it prints the figures, and `--json FILE` writes them.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import CollectorRegistry

from dcmeter.agent import wire
from dcmeter.agent.samples import MetricSpec, SourceInfo
from dcmeter.agent.wire import GENESIS, Batch, ClockStatus, MetricEntry
from dcmeter.collectors.evaluation.site import Site
from dcmeter.collectors.storage.store import Store
from dcmeter.collectors.web.metrics import StoreCollector

INTERVAL_S = 60
METRICS = [
    MetricEntry(MetricSpec("cpu_util_pct", "%")),
    MetricEntry(MetricSpec("power_w", "W")),
    MetricEntry(MetricSpec("energy_import_kwh", "kWh", "counter")),
]


def sources(agent: int, bmcs: int) -> list[tuple[SourceInfo, int]]:
    """The agent's sources with the index of the metric each reports."""
    out = [(SourceInfo(f"host-{agent:03d}", "host", "localhost", {"kind": "compute"}), 0)]
    out += [(SourceInfo(f"bmc-{agent:03d}-{b}", "ipmi", f"10.0.{agent}.{b}:623",
                        {"point": "it_input"}), 1) for b in range(bmcs)]
    if agent == 0:
        out += [(SourceInfo("meter-total", "modbus", "10.0.0.1:502/1", {"point": "total"}), 2),
                (SourceInfo("meter-it", "modbus", "10.0.0.1:502/2", {"point": "it_pdu"}), 2)]
    return out


def value(source: str, metric: int, t: float, t0: float) -> float:
    """A plausible reading: CPU 30 %, BMC 400 W, meters at 150 and 100 kW."""
    if metric == 0:
        return 30.0
    if metric == 1:
        return 400.0
    kw = 150.0 if source == "meter-total" else 100.0
    return 1000.0 + kw * (t - t0) / 3600.0


def fill(store: Store, agents: int, hours: float, bmcs: int, now: float) -> tuple[int, int]:
    """Store one signed batch per agent per minute over `hours` before now; return counts."""
    key = Ed25519PrivateKey.generate()
    ticks = int(hours * 3600 / INTERVAL_S)
    t0 = now - ticks * INTERVAL_S
    batches = samples = 0
    for a in range(agents):
        srcs = sources(a, bmcs)
        prev = GENESIS
        for k in range(ticks):
            t = t0 + (k + 1) * INTERVAL_S
            ts = [int(t * 1e9)] * len(srcs)
            vals = [value(s.id, m, t, t0) for s, m in srcs]
            batch = Batch(f"agent-{a:03d}", k + 1, prev, ts[0], ClockStatus(synced=True),
                          [s for s, _ in srcs], METRICS,
                          *wire.pack_arrays(ts, list(range(len(srcs))), [m for _, m in srcs],
                                            vals))
            body = wire.encode_body(batch)
            digest = wire.batch_hash(body)
            store.insert_batch(batch, digest, wire.seal(batch, key), int(t * 1e9) + 1)
            prev = digest
            batches, samples = batches + 1, samples + len(srcs)
    return batches, samples


def site_file(agents: int) -> Site:
    """Total and IT meters; one compute group over every agent's host."""
    return Site.model_validate({
        "site": {"name": "benchmark", "region": "east-2023"},
        "energy": {"total": ["meter-total"], "it": ["meter-it"], "it_point": "it_pdu"},
        "general": {"groups": [{
            "name": "hosts", "kind": "compute", "count": agents, "rating": 20000.0,
            "rating_source": "benchmark", "sources": [f"host-{a:03d}" for a in range(agents)],
        }]},
    })


def main() -> None:
    """Fill a store, time the scrapes, print the figures."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--agents", type=int, default=100)
    p.add_argument("--hours", type=float, default=1.0)
    p.add_argument("--sources", type=int, default=8, help="BMC power gauges per agent")
    p.add_argument("--repeat", type=int, default=20)
    p.add_argument("--store", type=Path, help="SQLite file to fill (default: a temporary one)")
    p.add_argument("--json", type=Path, help="write the figures to this file")
    args = p.parse_args()
    if args.store is not None and args.store.exists():
        p.exit(2, f"--store {args.store}: the file exists; give a new path (it is filled)\n")
    now = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(args.store or Path(tmp) / "collector.sqlite")
        started = time.perf_counter()
        batches, samples = fill(store, args.agents, args.hours, args.sources, now)
        fill_s = time.perf_counter() - started
        registry = CollectorRegistry(auto_describe=False)
        registry.register(StoreCollector(store, site_file(args.agents), lambda: int(now * 1e9)))
        started = time.perf_counter()
        text = generate_latest(registry)
        first_s = time.perf_counter() - started
        times = []
        for _ in range(args.repeat):
            started = time.perf_counter()
            generate_latest(registry)
            times.append(time.perf_counter() - started)
        store.close()
    figures: dict[str, Any] = {
        "agents": args.agents, "hours": args.hours, "batches": batches, "samples": samples,
        "fill_s": round(fill_s, 2), "exposition_bytes": len(text),
        "first_scrape_ms": round(first_s * 1000, 2),
        "scrape_ms_median": round(statistics.median(times) * 1000, 2),
        "scrape_ms_max": round(max(times) * 1000, 2), "repeat": args.repeat,
        "python": platform.python_version(), "machine": platform.machine(),
    }
    for k, v in figures.items():
        print(f"{k:20} {v}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
