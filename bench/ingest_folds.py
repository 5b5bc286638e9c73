"""Cost the gauge folds add to ingest: `insert_batch` with and without an open general window.

    .venv/bin/python bench/ingest_folds.py [--batches 1000] [--per-batch 100]

Each batch holds one tick of `--per-batch` hosts' `cpu_util_pct` (one sample each), ticks 60 s
apart. Two new stores in a temporary directory get the same batches: one with no window,
one with a general window opened before the first batch, so every sample is folded and every
fold it touches is written back in the batch's transaction. Prints the time of each and the
cost per batch and per sample.
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from pathlib import Path

from dcmeter.agent import wire
from dcmeter.agent.samples import MetricSpec, SourceInfo
from dcmeter.agent.wire import GENESIS, Batch, ClockStatus, MetricEntry
from dcmeter.collectors.storage.store import Store

T0 = 1_793_491_200  # 2026-11-01T00:00:00Z
CPU = MetricSpec("cpu_util_pct", "%")


def batches(n: int, per: int) -> list[Batch]:
    """`n` batches, each one tick of `per` hosts' CPU utilisation."""
    sources = [SourceInfo(f"host-{h:05d}", "host", "local", {"kind": "compute"}, None)
               for h in range(per)]
    out = []
    for i in range(n):
        ts = (T0 + 60 * i) * 10**9
        arrays = wire.pack_arrays([ts] * per, list(range(per)), [0] * per,
                                  [30.0 + 20.0 * math.sin(i / 60 + h) for h in range(per)])
        out.append(Batch("bench", i + 1, GENESIS, ts, ClockStatus(), sources,
                         [MetricEntry(CPU)], *arrays))
    return out


def run(path: Path, todo: list[Batch], window: bool) -> float:
    """Insert every batch into a new store at `path`; return the seconds insert_batch took."""
    store = Store(path)
    if window:
        store.open_window("general", T0 * 10**9, "benchmark", T0 * 10**9)
    t = time.perf_counter()
    for b in todo:
        store.insert_batch(b, b.seq.to_bytes(32, "big"), b"", b.sealed_ns)
    spent = time.perf_counter() - t
    store.close()
    return spent


def main() -> None:
    """Run both cases and print their figures."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batches", type=int, default=1000)
    p.add_argument("--per-batch", type=int, default=100)
    args = p.parse_args()
    todo = batches(args.batches, args.per_batch)
    samples = args.batches * args.per_batch
    with tempfile.TemporaryDirectory() as tmp:
        plain = run(Path(tmp) / "plain.sqlite", todo, window=False)
        folded = run(Path(tmp) / "folded.sqlite", todo, window=True)
    for name, s in (("no window", plain), ("open general window", folded)):
        print(f"{name:<20} {s:7.2f} s  {s / args.batches * 1e3:6.2f} ms/batch"
              f"  {s / samples * 1e6:6.1f} us/sample")
    print(f"{'folds add':<20} {folded - plain:7.2f} s  ({folded / plain - 1:+.0%})")


if __name__ == "__main__":
    main()
