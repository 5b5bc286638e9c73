"""Profile `Store.insert_batch` on PostgreSQL with 10,000-sample batches (cProfile).

    .venv/bin/python bench/profile_pg_insert.py

Starts a private cluster as bench/store_insert.py does, inserts 100 batches of 1,000
sources × 10 metrics with a 295 KB raw envelope each (the size a real one has), prints the
rate under the profiler and the 12 costliest functions.
"""

from __future__ import annotations

import cProfile
import pstats
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import store_insert as si

from dcmeter.collectors.storage.store import Store


def main() -> None:
    """Insert, profile, print."""
    si.SOURCES = 1000  # 10,000-sample batches
    todo = si.batches(100)
    with si.private_postgres() as url:
        store = Store(url)
        pr = cProfile.Profile()
        t = time.perf_counter()
        pr.enable()
        for b in todo:
            store.insert_batch(b, b.seq.to_bytes(32, "big"), b"x" * 295_000, b.sealed_ns)
        pr.disable()
        spent = time.perf_counter() - t
        store.close()
    print(f"{len(todo) * 10_000 / spent:,.0f} samples/s under cProfile, {spent:.2f} s")
    pstats.Stats(pr).sort_stats("tottime").print_stats(12)


if __name__ == "__main__":
    main()
