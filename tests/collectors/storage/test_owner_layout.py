"""The owner check of a steady agent's batches is skipped inside the spans worked out for its
layout (ownership.py): a move of one of its sources must void that, on both backends."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from dcmeter.agent import wire
from dcmeter.agent.samples import MetricSpec, SourceInfo
from dcmeter.agent.wire import GENESIS, Batch, ClockStatus, MetricEntry
from dcmeter.collectors.storage.ownership import Refused
from dcmeter.collectors.storage.store import Store

S = 10**9
T = 1_800_000_000 * S
SOURCES = [SourceInfo(f"m{i}", "modbus", f"10.0.0.{i}:502/1", {"point": "it_pdu"})
           for i in range(3)]


def put(store: Store, agent: str, seq: int, prev: bytes, at: int) -> bytes:
    """Store `agent`'s batch `seq`: one power sample of each source at `at` ns; its hash."""
    arrays = wire.pack_arrays([at] * 3, [0, 1, 2], [0] * 3, [1.0, 2.0, 3.0])
    b = Batch(agent, seq, prev, at, ClockStatus(True, 0.01), SOURCES,
              [MetricEntry(MetricSpec("power_w", "W"))], *arrays)
    body = wire.encode_body(b)
    digest = wire.batch_hash(body)
    assert store.insert_batch(b, digest, body, at)[0] == "stored"
    return digest


def test_a_moved_source_is_refused_to_a_steady_agent_whose_layout_passed_before(
    store_location: Callable[[str], Path | str],
) -> None:
    store = Store(store_location("s"))
    try:
        prev = put(store, "rack-a", 1, GENESIS, T)
        prev = put(store, "rack-a", 2, prev, T + 60 * S)  # the same layout: passes unchecked
        store.move_source("m1", "rack-b", T + 100 * S, "engineer", "re-wired", T + 90 * S)
        prev = put(store, "rack-a", 3, prev, T + 90 * S)  # still rack-a's before T + 100 s
        with pytest.raises(Refused) as got:
            put(store, "rack-a", 4, prev, T + 120 * S)  # m1 is rack-b's from T + 100 s
        assert got.value.reason == "source_owned" and "'m1'" in got.value.detail
        assert [b["seq"] for b in store.batches("rack-a")] == [1, 2, 3]
    finally:
        store.close()
