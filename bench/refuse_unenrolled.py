"""Time to refuse a 16 MB batch from an agent the collector never enrolled (401).

    PYTHONPATH=. .venv/bin/python bench/refuse_unenrolled.py [--mb 16] [--runs 5]

Calls the collector's ingest pipeline (collectors/intake/ingest.py) directly, in this process, on a
new SQLite store: the time of one call is the time the collector's event loop is held by
the request (the body is already read). Prints each run and the median, in ms; for
comparison, the same batch from the enrolled agent with a bad signature (403) and valid
(stored).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import structlog
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from dcmeter.agent import wire
from dcmeter.agent.samples import MetricSpec, SourceInfo
from dcmeter.agent.wire import GENESIS, Batch, ClockStatus, MetricEntry
from dcmeter.collectors.intake.ingest import Ingest
from dcmeter.collectors.storage.store import Store

SRC = SourceInfo("meter-total", "modbus", "127.0.0.1:502/1", {"point": "total"})
POWER = MetricEntry(MetricSpec("power_w", "W"))
BYTES_PER_SAMPLE = 24  # ts 8 + src 4 + met 4 + val 8


def big_batch(agent: str, mb: float) -> Batch:
    """One batch of about `mb` MB of samples, one a second from 2023-11-14."""
    n = int(mb * 2**20 / BYTES_PER_SAMPLE)
    t0 = 1_700_000_000 * 10**9
    arrays = wire.pack_arrays([t0 + i * 10**9 for i in range(n)], [0] * n, [0] * n,
                              [float(i % 1000) for i in range(n)])
    return Batch(agent, 1, GENESIS, t0 + n * 10**9, ClockStatus(True, 0.01), [SRC], [POWER],
                 *arrays)


def wide_batch(agent: str, mb: float) -> Batch:
    """One batch whose bulk is a source table of about `mb` MB (one sample per source)."""
    n = int(mb * 2**20 / 57)  # about 57 bytes per source entry and its sample
    t0 = 1_700_000_000 * 10**9
    sources = [SourceInfo(f"s{i}", "snmp", "10.0.0.1", {"rack": "r1"}) for i in range(n)]
    arrays = wire.pack_arrays([t0] * n, list(range(n)), [0] * n, [1.0] * n)
    return Batch(agent, 1, GENESIS, t0, ClockStatus(True, 0.01), sources, [POWER], *arrays)


def timed(ingest: Ingest, raw: bytes, runs: int) -> tuple[list[float], int, str]:
    """Milliseconds per call, and the last answer's status and reason or state."""
    took = []
    for _ in range(runs):
        started = time.perf_counter()
        out = ingest(raw)
        took.append((time.perf_counter() - started) * 1e3)
    return took, out.status, str(out.body.get("reason") or out.body.get("status"))


def main() -> None:
    """Build the batches, time the refusals, print the figures."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--mb", type=float, default=16.0)
    p.add_argument("--runs", type=int, default=5)
    args = p.parse_args()
    enrolled = Ed25519PrivateKey.generate()
    stranger = Ed25519PrivateKey.generate()
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "store.sqlite")
        structlog.configure(logger_factory=structlog.ReturnLoggerFactory())  # quiet
        ingest = Ingest(store, {"agent-1": enrolled.public_key()}, max_bytes=2**30)
        cases = [
            ("unenrolled agent", wire.seal(big_batch("rack-x", args.mb), stranger)),
            ("unenrolled agent, wide source table",
             wire.seal(wide_batch("rack-x", args.mb), stranger)),
            ("bad signature", wire.seal(big_batch("agent-1", args.mb), stranger)),
        ]
        for name, raw in cases:
            took, status, reason = timed(ingest, raw, args.runs)
            runs = ", ".join(f"{t:.1f}" for t in took)
            print(f"{name}: {len(raw) / 2**20:.1f} MiB -> {status} {reason}:"
                  f" median {statistics.median(took):.1f} ms (runs: {runs})")
        store.close()


if __name__ == "__main__":
    main()
