"""A replica catches up with what another replica changed, and only that (store.py
`Store._synced`, generation.py: `owners_gen`, `windows_gen`, `window_folds.gen`).

Two `Store`s on one PostgreSQL database. Replica A folds samples into a window's gauge fold
and moves a source; replica B's next writes must start from A's fold (else its write
overwrites the stored fold with one missing A's samples) and refuse a batch of the source's
old owner (else it stores it) — while re-reading neither the owners nor all folds when A
changed no owner, opened or closed no window. Expected fold worked by hand below."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from dcmeter.agent import wire
from dcmeter.agent.samples import MetricSpec, SourceInfo
from dcmeter.agent.wire import GENESIS, Batch, ClockStatus, MetricEntry
from dcmeter.collectors.storage.ownership import Owners, Refused
from dcmeter.collectors.storage.store import Store
from dcmeter.collectors.storage.store_folds import WindowFolds

S = 10**9
T0 = 1_793_491_200 * S  # 2026-11-01T00:00:00Z, ns
CPU = MetricEntry(MetricSpec("cpu_util_pct", "%", "gauge"))
HOST = SourceInfo("host-0", "host", "local", {"kind": "compute"})
# Batch i (1-based) holds one sample of host-0 at T0 + 10 s × (i - 1): 10, 20, 30, 40, 50 %.
VALUES = [10.0, 20.0, 30.0, 40.0, 50.0]


@pytest.fixture(autouse=True)
def _postgresql_only(request: pytest.FixtureRequest) -> None:
    if request.config.getoption("--store") != "postgresql":
        pytest.skip("replicas share a PostgreSQL store: runs with --store=postgresql")


def chain() -> list[tuple[Batch, bytes, bytes]]:
    """agent-1's five chained batches."""
    out, prev = [], GENESIS
    for i, value in enumerate(VALUES):
        ts = T0 + 10 * S * i
        arrays = wire.pack_arrays([ts], [0], [0], [value])
        b = Batch("agent-1", i + 1, prev, ts + S, ClockStatus(), [HOST], [CPU], *arrays)
        body = wire.encode_body(b)
        prev = wire.batch_hash(body)
        out.append((b, prev, body))
    return out


def put(store: Store, todo: list[tuple[Batch, bytes, bytes]], seq: int) -> None:
    b, digest, body = todo[seq - 1]
    assert store.insert_batch(b, digest, body, b.sealed_ns)[0] == "stored"


def test_a_replica_reads_the_folds_and_owners_another_changed_and_only_those(
    store_location: Callable[[str], Path | str], monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = Store(store_location("shared")), Store(store_location("shared"))
    reads = {"owners": 0, "folds": 0}
    for cls, name in ((Owners, "owners"), (WindowFolds, "folds")):
        def counted(self: object, *args: object, _orig=cls.load, _name=name) -> None:
            reads[_name] += 1
            _orig(self, *args)
        monkeypatch.setattr(cls, "load", counted)
    try:
        todo = chain()
        w = a.open_window("general", T0 + 15 * S, None, T0)  # opened on A
        put(b, todo, 1)  # B learns of the window: it reads all folds (none yet)
        put(a, todo, 2)
        put(a, todo, 3)  # A alone folds the samples at 10 s and 20 s
        reads.update(owners=0, folds=0)
        put(b, todo, 4)  # B must start from A's fold
        # A changed no owner and no window: B read the fold rows A wrote, nothing more.
        assert reads == {"owners": 0, "folds": 0}
        (fold,) = b.window_folds(w.id).values()
        # By hand, window [15 s, open), margin 900 s: samples at 0, 10, 20, 30 s folded;
        # steps ending after 15 s: (10, 20] clipped to (15, 20] at 30 % -> 0.3 × 5 s = 1.5;
        # (20, 30] at 40 % -> 0.4 × 10 s = 4.0. Weighted 5.5 over 15 s covered, 2 steps,
        # 2 samples inside, first sample at 0 s, last at 30 s, steps of 10 s × 3.
        assert (fold.weighted, fold.covered, fold.n_in, fold.inside) == (5.5, 15.0, 2, 2)
        assert fold.first_t == T0 / S and fold.prev_t == T0 / S + 30.0
        assert fold.steps == {10_000: 3} and fold.win_steps == {10_000: 2}
        # A gives host-0 to agent-2 from 35 s: agent-1's sample at 40 s is not its own now.
        a.move_source("host-0", "agent-2", T0 + 35 * S, "eng", "moved rack", T0)
        reads.update(owners=0, folds=0)
        bt, digest, body = todo[4]
        with pytest.raises(Refused) as refused:
            b.insert_batch(bt, digest, body, bt.sealed_ns)
        assert refused.value.reason == "source_owned"
        assert reads["folds"] == 0 and reads["owners"] >= 1
        assert [s.agent for s in b.owners.spans("host-0")] == ["agent-1", "agent-2"]
        assert b.counts() == a.counts()
    finally:
        a.close()
        b.close()
