"""Two `Store`s on one PostgreSQL database, as two collectors behind a balancer hold them
(collectors/storage/generation.py, docs/scaling.md): folds, series and owners stay those one
store keeps, and one batch posted to both at once is stored once."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from dcmeter.agent import wire
from dcmeter.agent.samples import MetricSpec, SourceInfo
from dcmeter.agent.wire import GENESIS, Batch, ClockStatus, MetricEntry
from dcmeter.collectors.storage.store import Store

T0 = 1_793_491_200 * 10**9  # 2026-11-01T00:00:00Z, ns
CPU = MetricEntry(MetricSpec("cpu_util_pct", "%", "gauge"))


@pytest.fixture(autouse=True)
def _postgresql_only(request: pytest.FixtureRequest) -> None:
    if request.config.getoption("--store") != "postgresql":
        pytest.skip("replicas share a PostgreSQL store: runs with --store=postgresql")


def batches(n: int, hosts: int = 2) -> list[tuple[Batch, bytes, bytes]]:
    """`n` chained batches of agent-1: one sample per host each, 10 s apart; a new host
    (so new series) appears from batch 3 on."""
    out, prev = [], GENESIS
    for i in range(n):
        k = hosts + (1 if i >= 2 else 0)
        src = [SourceInfo(f"host-{h}", "host", "local", {"kind": "compute"}) for h in range(k)]
        ts = T0 + i * 10 * 10**9
        arrays = wire.pack_arrays([ts] * k, list(range(k)), [0] * k,
                                  [10.0 + 7 * i + h for h in range(k)])
        b = Batch("agent-1", i + 1, prev, ts + 10**9, ClockStatus(), src, [CPU], *arrays)
        body = wire.encode_body(b)
        out.append((b, wire.batch_hash(body), body))
        prev = wire.batch_hash(body)
    return out


def folds(store: Store, wid: int) -> dict[int, str]:
    return {sid: json.dumps(f.to_state(), sort_keys=True)
            for sid, f in store.window_folds(wid).items()}


def test_two_replicas_keep_the_folds_one_store_keeps(
    store_location: Callable[[str], Path | str]
) -> None:
    one = Store(store_location("one"))
    a, b = Store(store_location("shared")), Store(store_location("shared"))
    try:
        todo = batches(12)
        w1 = one.open_window("general", T0 + 15 * 10**9, None, T0)
        # Opened on replica a; b learns of it at its next write.
        wa = a.open_window("general", T0 + 15 * 10**9, None, T0)
        for i, (bt, digest, raw) in enumerate(todo):
            assert one.insert_batch(bt, digest, raw, bt.sealed_ns)[0] == "stored"
            replica = (a, b)[i % 2]  # round robin: every write follows the other's
            assert replica.insert_batch(bt, digest, raw, bt.sealed_ns)[0] == "stored"
            if i == 8:  # stopped on b, the replica that did not open it
                assert one.close_window(w1.id, T0 + 85 * 10**9, now_ns=T0)
                assert b.close_window(wa.id, T0 + 85 * 10**9, now_ns=T0)
        # Series ids match too: both databases made them in the same order.
        want = folds(one, w1.id)
        assert len(want) == 3
        assert folds(a, wa.id) == want and folds(b, wa.id) == want
        assert a.counts() == b.counts() == one.counts()
        assert sorted(a.owners.sources()) == sorted(b.owners.sources()) == [
            "host-0", "host-1", "host-2"]
    finally:
        for s in (one, a, b):
            s.close()


def test_one_batch_posted_to_two_replicas_at_once_is_stored_once(
    store_location: Callable[[str], Path | str]
) -> None:
    a, b = Store(store_location("shared")), Store(store_location("shared"))
    try:
        results: list[str] = []
        errors: list[BaseException] = []
        todo = batches(6)
        for bt, digest, raw in todo:
            go = threading.Barrier(2)

            def put(s: Store, bt: Batch = bt, digest: bytes = digest, raw: bytes = raw,
                    go: threading.Barrier = go) -> None:
                go.wait()
                try:
                    results.append(s.insert_batch(bt, digest, raw, bt.sealed_ns)[0])
                except BaseException as exc:  # a key violation without the row lock
                    errors.append(exc)

            threads = [threading.Thread(target=put, args=(s,)) for s in (a, b)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(30)
        assert errors == []
        assert sorted(results) == ["duplicate"] * 6 + ["stored"] * 6
        assert a.counts()["batches"] == 6 and a.counts()["samples"] == 2 * 2 + 4 * 3
        assert all(r["chain"] == "ok" for r in b.batches("agent-1"))
    finally:
        a.close()
        b.close()
