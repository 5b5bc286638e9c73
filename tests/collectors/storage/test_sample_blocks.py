"""Samples stored as one block of columns per batch (schema version 13), on both backends:
what the readers give back, worked by hand, and a store of one row per sample migrated."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from dcmeter.agent import wire
from dcmeter.agent.samples import MetricSpec, SourceInfo
from dcmeter.agent.wire import GENESIS, Batch, ClockStatus, MetricEntry
from dcmeter.collectors.storage.deadline import Deadline, TimedOut
from dcmeter.collectors.storage.store import Store
from tests.peers.old_store import back_to

S = 10**9
T = 1_800_000_000 * S  # 2027-01-15T08:00:00Z
SOURCES = {name: SourceInfo(name, "modbus", f"10.0.0.{i}:502/1", {"point": "it_pdu"})
           for i, name in enumerate(("m1", "h1", "h2"))}
POWER = MetricEntry(MetricSpec("power_w", "W"))
# Per agent, its batches in seq order: (source, ts ns, value) samples. rack-a's batch 3 holds
# samples earlier than batch 2's (a later seq with earlier times) and arrives before it.
BATCHES: dict[str, list[list[tuple[str, int, float]]]] = {
    "rack-a": [
        [("m1", T, 1.0), ("m1", T + 10 * S, 2.0), ("h1", T, 100.0)],
        [("m1", T + 20 * S, 3.0), ("m1", T + 30 * S, 4.0), ("h1", T + 20 * S, 101.0)],
        [("m1", T + 5 * S, 1.5), ("h1", T + 17 * S + S // 4, 102.0), ("m1", T + 15 * S, 2.5)],
    ],
    "rack-b": [
        [("h2", T + 12 * S, 7.0)],
        [("m1", T + 25 * S, 40.0), ("m1", T + 35 * S, 50.0)],  # after m1 moved to rack-b
    ],
}


def chained(agent: str) -> list[tuple[Batch, bytes, bytes]]:
    """(batch, hash, body) of `agent`'s BATCHES, hash-chained, one source table for all."""
    names = list(SOURCES)
    out, prev = [], GENESIS
    for i, samples in enumerate(BATCHES[agent]):
        arrays = wire.pack_arrays([t for _, t, _ in samples],
                                  [names.index(s) for s, _, _ in samples],
                                  [0] * len(samples), [v for _, _, v in samples])
        batch = Batch(agent, i + 1, prev, T + 60 * S, ClockStatus(True, 0.01),
                      list(SOURCES.values()), [POWER], *arrays)
        body = wire.encode_body(batch)
        prev = wire.batch_hash(body)
        out.append((batch, prev, body))
    return out


def filled(where: Path | str) -> Store:
    """A store holding BATCHES, the agents interleaved, rack-a's batch 3 before its batch 2,
    m1 moved from rack-a to rack-b from T + 25 s on (before rack-b delivers it)."""
    store = Store(where)
    a, b = chained("rack-a"), chained("rack-b")
    for batch, digest, body in [a[0], b[0], a[2], a[1]]:
        assert store.insert_batch(batch, digest, body, T + 61 * S)[0] == "stored"
    store.move_source("m1", "rack-b", T + 25 * S, "engineer", "meter re-wired", T + 62 * S)
    batch, digest, body = b[1]
    assert store.insert_batch(batch, digest, body, T + 63 * S)[0] == "stored"
    return store


def by_owner(store: Store, got: dict[int, Any]) -> dict[tuple[str, str], tuple[list[float],
                                                                              list[float]]]:
    """series_by_id's answer keyed by (agent, source): (times s, values)."""
    agent = {int(i): str(a) for i, a in store._db.execute("SELECT id, agent FROM series")}
    return {(agent[sid], s.source): (s.ts.tolist(), s.values.tolist()) for sid, s in got.items()}


def reads(store: Store) -> dict[str, Any]:
    """Everything the readers say about the store (checked by hand below)."""
    sources = ["m1", "h1", "h2"]
    return {
        "window": by_owner(store, store.series_by_id(sources, T + 10 * S, T + 30 * S)),
        "edge": by_owner(store, store.series_by_id(sources, T, T)),
        "instruments": [(i.agent, i.source, i.samples)
                        for i in store.instruments(sources, T + 10 * S, T + 30 * S)],
        "count": store.counts()["samples"],
        "all": store.samples(),
    }


E = 1_800_000_000  # T in seconds
EXPECTED = {
    # [T + 10 s, T + 30 s], both edges on samples: rack-a's m1 only while it owned it
    # (before T + 25 s: its T + 30 s sample is left out), rack-b's from then on; batch 3's
    # T + 15 s sample between batch 1's and 2's; h1's T + 17.25 s exact in seconds.
    "window": {
        ("rack-a", "m1"): ([E + 10.0, E + 15.0, E + 20.0], [2.0, 2.5, 3.0]),
        ("rack-a", "h1"): ([E + 17.25, E + 20.0], [102.0, 101.0]),
        ("rack-b", "h2"): ([E + 12.0], [7.0]),
        ("rack-b", "m1"): ([E + 25.0], [40.0]),
    },
    # [T, T]: only the samples exactly at T; rack-b owns m1 but has none there.
    "edge": {
        ("rack-a", "m1"): ([float(E)], [1.0]),
        ("rack-a", "h1"): ([float(E)], [100.0]),
        ("rack-b", "h2"): ([], []),
        ("rack-b", "m1"): ([], []),
    },
    # Every agent's samples in [T + 10 s, T + 30 s], owner or not, by source then agent.
    "instruments": [("rack-a", "h1", 2), ("rack-b", "h2", 1), ("rack-a", "m1", 4),
                    ("rack-b", "m1", 1)],
    "count": 3 + 3 + 3 + 1 + 2,
    "all": sorted([
        ("m1", "power_w", T, 1.0), ("m1", "power_w", T + 10 * S, 2.0),
        ("h1", "power_w", T, 100.0), ("m1", "power_w", T + 20 * S, 3.0),
        ("m1", "power_w", T + 30 * S, 4.0), ("h1", "power_w", T + 20 * S, 101.0),
        ("m1", "power_w", T + 5 * S, 1.5), ("h1", "power_w", T + 17 * S + S // 4, 102.0),
        ("m1", "power_w", T + 15 * S, 2.5), ("h2", "power_w", T + 12 * S, 7.0),
        ("m1", "power_w", T + 25 * S, 40.0), ("m1", "power_w", T + 35 * S, 50.0),
    ], key=lambda r: r[2]),
}


def test_series_read_from_blocks_are_the_hand_worked_samples(
    store_location: Callable[[str], Path | str],
) -> None:
    store = filled(store_location("s"))
    try:
        assert reads(store) == EXPECTED
        # One block row per batch, its span and count; no row per sample.
        blocks = store._db.execute(
            "SELECT agent, seq, min_ts, max_ts, n FROM sample_blocks ORDER BY agent, seq")
        assert [tuple(r) for r in blocks] == [
            ("rack-a", 1, T, T + 10 * S, 3), ("rack-a", 2, T + 20 * S, T + 30 * S, 3),
            ("rack-a", 3, T + 5 * S, T + 17 * S + S // 4, 3), ("rack-b", 1, T + 12 * S,
                                                               T + 12 * S, 1),
            ("rack-b", 2, T + 25 * S, T + 35 * S, 2),
        ]
        assert not store._db.columns("samples")
        if store.dialect == "postgresql":  # lz4, not pglz, where the server has it
            lz4 = store._db.execute(
                "SELECT 1 FROM pg_settings WHERE name = 'default_toast_compression'"
                " AND 'lz4' = ANY(enumvals)").fetchone() is not None
            methods = {str(r[0]): r[1] for r in store._db.execute(
                "SELECT attrelid::regclass::text || '.' || attname, attcompression"
                " FROM pg_attribute WHERE attname IN ('series', 'ts', 'val', 'raw')"
                " AND attrelid IN ('sample_blocks'::regclass, 'batches'::regclass)")}
            assert methods == dict.fromkeys(
                ("sample_blocks.series", "sample_blocks.ts", "sample_blocks.val",
                 "batches.raw"), "l" if lz4 else "")
        # A series in `skip`, owned throughout, comes without samples (its folds stand in).
        (h1,) = store._db.execute("SELECT id FROM series WHERE source = 'h1'").fetchone()
        got = store.series_by_id(["h1"], T, T + 60 * S, skip={h1})
        assert len(got[h1].ts) == 0 and got[h1].source == "h1"
    finally:
        store.close()


def test_migration_13_turns_a_store_of_sample_rows_into_blocks_read_back_the_same(
    store_location: Callable[[str], Path | str],
) -> None:
    """A store of schema 12 (one `samples` row per sample, as insert_batch wrote them then,
    plus one row written by hand for a batch of seq 7) becomes one block per (agent, seq)."""
    where = store_location("s")
    store = filled(where)
    db = store._db
    (h2,) = db.execute("SELECT id FROM series WHERE source = 'h2'").fetchone()
    with db.transaction():
        back_to(db, 12)
        db.execute("INSERT INTO samples VALUES (?,?,?,?)", (h2, T + 40 * S, 8.0, 7))
    (rows,) = db.execute("SELECT COUNT(*) FROM samples").fetchone()
    assert rows == 13 and not db.execute("SELECT 1 FROM sample_blocks").fetchall()
    store.close()
    store = Store(where)
    try:
        got = reads(store)
        assert got["count"] == 13
        assert ("h2", "power_w", T + 40 * S, 8.0) in got["all"]
        got["all"].remove(("h2", "power_w", T + 40 * S, 8.0))
        assert {**got, "count": 12} == EXPECTED
        assert not store._db.columns("samples")
        blocks = store._db.execute(
            "SELECT agent, seq, min_ts, max_ts, n FROM sample_blocks ORDER BY agent, seq")
        assert [tuple(r) for r in blocks][-1] == ("rack-b", 7, T + 40 * S, T + 40 * S, 1)
        # Inside a migrated block the samples are ordered by time.
        (ts,) = store._db.execute(
            "SELECT ts FROM sample_blocks WHERE agent = 'rack-a' AND seq = 3").fetchone()
        assert np.frombuffer(bytes(ts), "<i8").tolist() == [T + 5 * S, T + 15 * S,
                                                            T + 17 * S + S // 4]
        store.close()
        store = Store(where)  # reopening migrates nothing twice
        assert reads(store)["count"] == 13
    finally:
        store.close()


def test_a_long_read_stops_between_chunks_of_blocks_at_its_deadline(
    store_location: Callable[[str], Path | str],
) -> None:
    """One agent, one series, 40 one-sample batches: 3 chunks of blocks (READ_CHUNK 16).
    A deadline that passes after its third check (agent, chunk 1, chunk 2) stops the read
    before the last chunk; a generous one lets it finish with all 40 samples."""
    store = Store(store_location("s"))
    try:
        prev = GENESIS
        for seq in range(1, 41):
            arrays = wire.pack_arrays([T + seq * S], [0], [0], [float(seq)])
            b = Batch("rack-a", seq, prev, T + seq * S, ClockStatus(True, 0.01),
                      [SOURCES["m1"]], [POWER], *arrays)
            body = wire.encode_body(b)
            prev = wire.batch_hash(body)
            assert store.insert_batch(b, prev, body, T + seq * S)[0] == "stored"
        checks = iter(range(100))
        with pytest.raises(TimedOut):
            store.series_by_id(["m1"], T, T + 60 * S,
                               deadline=Deadline(2.5, clock=lambda: float(next(checks))))
        assert next(checks) == 4  # made at 0, checked at 1, 2, 3: the third one stopped it
        (got,) = store.series_by_id(["m1"], T, T + 60 * S, deadline=Deadline(60)).values()
        assert got.values.tolist() == [float(s) for s in range(1, 41)]
    finally:
        store.close()
