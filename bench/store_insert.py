"""Ingest rate of the collector store on SQLite and on PostgreSQL, in the same run.

    .venv/bin/python bench/store_insert.py [--batches 1000] [--postgresql URL]

One batch of 1,000 samples (100 sources × 10 metrics, one tick) is stored `--batches` times
through `Store.insert_batch` (each time a new seq, its timestamps a minute later), first into
a new SQLite file, then into a PostgreSQL database: the one `--postgresql` names (it must be
empty), else a throwaway cluster this script starts with initdb/pg_ctl (Debian layout, as
`postgres` when run as root) with the server's default durability (fsync and
synchronous_commit on). Prints seconds, ms per batch and samples/s for each.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from dcmeter.agent import wire
from dcmeter.agent.samples import MetricSpec, SourceInfo
from dcmeter.agent.wire import GENESIS, Batch, ClockStatus, MetricEntry
from dcmeter.collectors.storage.store import Store

T0 = 1_793_491_200  # 2026-11-01T00:00:00Z
SOURCES, METRICS = 100, 10


def batches(n: int) -> list[Batch]:
    """`n` batches of SOURCES × METRICS samples, one tick each, 60 s apart."""
    sources = [SourceInfo(f"host-{h:03d}", "host", "local", {"kind": "compute"}, None)
               for h in range(SOURCES)]
    metrics = [MetricEntry(MetricSpec(f"m{m}_w", "W")) for m in range(METRICS)]
    src = [s for s in range(SOURCES) for _ in range(METRICS)]
    met = [m for _ in range(SOURCES) for m in range(METRICS)]
    val = [100.0 + s + m / 10 for s, m in zip(src, met, strict=True)]
    out = []
    for i in range(n):
        ts = (T0 + 60 * i) * 10**9
        arrays = wire.pack_arrays([ts] * len(src), src, met, val)
        out.append(Batch("bench", i + 1, GENESIS, ts, ClockStatus(), sources, metrics, *arrays))
    return out


def run(location: Path | str, todo: list[Batch]) -> float:
    """Insert every batch into a new store at `location`; return the seconds it took."""
    store = Store(location)
    t = time.perf_counter()
    for b in todo:
        state, _ = store.insert_batch(b, b.seq.to_bytes(32, "big"), b"", b.sealed_ns)
        assert state == "stored"
    spent = time.perf_counter() - t
    assert store.counts()["samples"] == len(todo) * SOURCES * METRICS
    store.close()
    return spent


@contextmanager
def private_postgres() -> Iterator[str]:
    """A throwaway PostgreSQL cluster (default durability); yield a database URL."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    bindir = found[-1].parent if found else Path(shutil.which("initdb") or "initdb").parent
    root = Path(tempfile.mkdtemp(prefix="dcmeter-bench-pg-"))
    as_user = []
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    data = str(root / "data")
    subprocess.run([*as_user, str(bindir / "initdb"), "-D", data, "-A", "trust", "-U", "dcmeter",
                    "-E", "UTF8", "--locale=C"], check=True, capture_output=True)
    subprocess.run([*as_user, str(bindir / "pg_ctl"), "-D", data, "-l", str(root / "log"), "-w",
                    "-o", f"-p {port} -k {root} -c listen_addresses=127.0.0.1", "start"],
                   check=True, capture_output=True)
    try:
        yield f"postgresql://dcmeter@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*as_user, str(bindir / "pg_ctl"), "-D", data, "-m", "fast", "-w", "stop"],
                       capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    """Time both backends and print their figures."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batches", type=int, default=1000)
    p.add_argument("--postgresql", metavar="URL", help="an empty database (default: start one)")
    args = p.parse_args()
    todo = batches(args.batches)
    samples = args.batches * SOURCES * METRICS
    figures = {}
    with tempfile.TemporaryDirectory() as tmp:
        figures["sqlite"] = run(Path(tmp) / "bench.sqlite", todo)
    if args.postgresql:
        figures["postgresql"] = run(args.postgresql, todo)
    else:
        with private_postgres() as url:
            figures["postgresql"] = run(url, todo)
    print(f"{args.batches} batches × {SOURCES * METRICS} samples via Store.insert_batch")
    for name, s in figures.items():
        print(f"{name:<11} {s:7.2f} s  {s / args.batches * 1e3:6.2f} ms/batch"
              f"  {samples / s:10,.0f} samples/s")


if __name__ == "__main__":
    main()
