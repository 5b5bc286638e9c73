"""What several collectors on one PostgreSQL store cost at the store: `Store.insert_batch`
with 1, 2 and 3 `Store` objects (replicas) on one database, batches dealt round robin.

    .venv/bin/python bench/replicas_store.py [--samples 200000] [--size 1000] [--agents 4]

One process, one thread: no two inserts run at once, so the figure is the price of the
replica machinery alone (collectors/storage/generation.py): the store_generation bump every
write transaction takes, and, when the previous write was another replica's, re-reading the
series keys, source owners and gauge folds. The batches are bench/ingest.py's (a tick of
size/10 targets × 10 metrics per agent), on a private PostgreSQL cluster this script starts
(bench/store_insert.py, default durability). Prints samples/s per replica count.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from ingest import decoded, new_database, workload
from store_insert import private_postgres

from dcmeter.collectors.storage.store import Store


def run(url: str, replicas: int, todo: list) -> tuple[float, int]:  # type: ignore[type-arg]
    """Seconds to insert every batch, dealt round robin over `replicas` stores; resyncs."""
    stores = [Store(url) for _ in range(replicas)]
    loads = [0]
    for s in stores:
        catch_up = s._table.catch_up  # called on each re-read (Store._synced)

        def counted(db, _catch_up=catch_up):  # type: ignore[no-untyped-def]
            loads[0] += 1
            return _catch_up(db)

        s._table.catch_up = counted  # type: ignore[method-assign]
    t = time.perf_counter()
    for i, (b, digest, raw) in enumerate(todo):
        state, _ = stores[i % replicas].insert_batch(b, digest, raw, b.sealed_ns)
        assert state == "stored", state
    spent = time.perf_counter() - t
    for s in stores:
        s.close()
    return spent, loads[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--samples", type=int, default=200_000)
    ap.add_argument("--size", type=int, default=1000)
    ap.add_argument("--agents", type=int, default=4)
    args = ap.parse_args()
    _, envs = workload(args.samples, args.size, args.agents)
    todo = decoded(envs)
    n = sum(len(b) for b, _, _ in todo)
    with private_postgres() as admin:
        # The first run warms the new server (its first figure is ~25 % low): not counted.
        for tag, replicas in (("warm-up", 1), ("", 1), ("", 2), ("", 3)):
            url = new_database(admin, f"replicas_{tag.replace('-', '_')}{replicas}")
            spent, resyncs = run(url, replicas, todo)
            print(f"{tag or 'replicas'} {replicas}: {len(todo)} batches of {args.size},"
                  f" {n:,} samples,"
                  f" {n / spent:,.0f} samples/s, {len(todo) / spent:,.0f} batches/s,"
                  f" re-reads {resyncs}", flush=True)


if __name__ == "__main__":
    main()
