"""The store's window evidence by sample span (schema version 4), on both backends."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from dcmeter.agent import wire
from dcmeter.agent.samples import MetricSpec, SourceInfo
from dcmeter.agent.wire import GENESIS, Batch, ClockStatus, MetricEntry
from dcmeter.collectors.storage.store import Store
from dcmeter.collectors.storage.store_chain import LONG_SPAN_NS
from tests.peers.old_store import back_to

SRC = SourceInfo("meter-total", "modbus", "127.0.0.1:502/1", {"point": "total"})
HOUR = 3600 * 10**9
T = 1_700_000_000 * 10**9  # the window is [T, T + 1 h]


def put(store: Store, seq: int, times: list[int], sealed_ns: int) -> None:
    """Store a batch of agent-1 with power samples at `times`, chained to nothing."""
    arrays = wire.pack_arrays(times, [0] * len(times), [0] * len(times), [1.0] * len(times))
    batch = Batch("agent-1", seq, GENESIS if seq == 1 else b"\1" * 32, sealed_ns,
                  ClockStatus(True, 0.01), [SRC], [MetricEntry(MetricSpec("power_w", "W"))],
                  *arrays)
    body = wire.encode_body(batch)
    assert store.insert_batch(batch, wire.batch_hash(body), body, sealed_ns)[0] == "stored"


def seqs(store: Store) -> list[int]:
    """The seqs of the window [T, T + 1 h]'s evidence: batch 1 links, every other breaks."""
    (agent,) = store.chain_summary(T, T + HOUR)
    return sorted([1, *agent["breaks"]]) if agent["first_seq"] == 1 else agent["breaks"]


def test_evidence_is_every_batch_sealed_or_sampled_in_the_span(
    store_location: Callable[[str], Path | str],
) -> None:
    store = Store(store_location("spans"))
    try:
        put(store, 1, [T + 60 * 10**9], T + 61 * 10**9)  # the honest case
        put(store, 2, [T + 120 * 10**9], 1)  # sealed in 1970
        put(store, 3, [T + 180 * 10**9], T + 30 * HOUR)  # sealed a day after
        put(store, 4, [T - 2 * HOUR], T + 10 * 10**9)  # samples before, sealed in the span
        put(store, 5, [T - 2 * LONG_SPAN_NS, T + 2 * HOUR], 1)  # one long batch across it
        put(store, 6, [T - 3 * HOUR], T - 3 * HOUR)  # nothing to do with the window
        put(store, 7, [T + 3 * HOUR], T + 3 * HOUR)  # nor this one
        assert seqs(store) == [1, 2, 3, 4, 5]
        # A store of schema version 3 gets the spans from its samples.
        with store._tx() as db:
            db.execute("UPDATE batches SET min_ts = NULL, max_ts = NULL")
            back_to(db, 3)  # 5, 6, …: idempotent; 13 makes the blocks again
        assert seqs(store) == [1, 4]  # sealed in the span only
    finally:
        store.close()
    store = Store(store_location("spans"))
    try:
        assert seqs(store) == [1, 2, 3, 4, 5]
        spans = store._db.execute("SELECT seq, min_ts, max_ts FROM batches ORDER BY seq")
        assert [tuple(r) for r in spans][4] == (5, T - 2 * LONG_SPAN_NS, T + 2 * HOUR)
    finally:
        store.close()
