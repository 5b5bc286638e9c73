"""Targets' failing runs as batches report them (schema version 10), on both backends."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from dcmeter.agent import wire
from dcmeter.agent.samples import MetricSpec, SourceInfo
from dcmeter.agent.wire import GENESIS, Batch, ClockStatus, Failure, MetricEntry
from dcmeter.collectors.storage.store import Store

LIVE = SourceInfo("meter-live", "modbus", "127.0.0.1:502/1", {})
DEAD = SourceInfo("meter-dead", "modbus", "127.0.0.1:9/1", {})
S = 10**9
T = 1_700_000_000 * S


def put(store: Store, seq: int, samples: list[tuple[SourceInfo, int]],
        failures: list[Failure]) -> None:
    """Store agent-1's batch `seq` with power samples (source, time) and `failures`."""
    ids = list(dict.fromkeys(s.id for s, _ in samples))
    sources = [next(s for s, _ in samples if s.id == i) for i in ids]
    arrays = wire.pack_arrays([t for _, t in samples], [ids.index(s.id) for s, _ in samples],
                              [0] * len(samples), [1.0] * len(samples))
    batch = Batch("agent-1", seq, GENESIS if seq == 1 else b"\1" * 32, T + seq * S,
                  ClockStatus(True, 0.01), sources, [MetricEntry(MetricSpec("power_w", "W"))],
                  *arrays, failures=failures)
    body = wire.encode_body(batch)
    assert store.insert_batch(batch, wire.batch_hash(body), body, T + seq * S)[0] == "stored"


def rows(store: Store) -> list[tuple[object, ...]]:
    return [(f.source, f.first_ns - T, f.last_ns - T, f.count, f.reason,
             None if f.recovered_ns is None else f.recovered_ns - T, f.failing)
            for f in store.source_failures()]


def test_a_failing_run_counts_until_a_sample_ends_it_and_a_new_one_starts(
    store_location: Callable[[str], Path | str],
) -> None:
    where = store_location("failures")
    store = Store(where)
    try:
        put(store, 1, [(LIVE, T + 10 * S)], [Failure("meter-dead", T + 10 * S, "refused")])
        put(store, 2, [(LIVE, T + 20 * S)], [Failure("meter-dead", T + 20 * S, "timed out")])
        assert rows(store) == [("meter-dead", 10 * S, 20 * S, 2, "timed out", None, True)]
        # A sample of the live source touches nothing; one of the dead source after its last
        # failure ends the run at its first such sample.
        put(store, 3, [(LIVE, T + 30 * S), (DEAD, T + 31 * S), (DEAD, T + 30 * S)], [])
        assert rows(store) == [("meter-dead", 10 * S, 20 * S, 2, "timed out", 30 * S, False)]
    finally:
        store.close()
    store = Store(where)  # reopened: the table and its rows stay, the migration runs once
    try:
        put(store, 4, [(LIVE, T + 40 * S)], [Failure("meter-dead", T + 40 * S, "refused again")])
        assert rows(store) == [("meter-dead", 40 * S, 40 * S, 1, "refused again", 30 * S, True)]
        assert [f.source for f in store.source_failures(["meter-live"])] == []
        # An old agent's batch (no failures field) changes nothing of the run.
        put(store, 5, [(LIVE, T + 50 * S)], [])
        assert rows(store)[0][3:5] == (1, "refused again")
    finally:
        store.close()
