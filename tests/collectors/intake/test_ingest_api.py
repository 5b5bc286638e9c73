"""POST /api/v1/batches on a real socket: stored once, every refusal precise, nothing kept."""

from __future__ import annotations

import httpx
import msgpack
import pytest
from conftest import Collector
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from dcmeter.agent import wire
from dcmeter.agent.samples import MetricSpec, SourceInfo
from dcmeter.agent.wire import GENESIS, Batch, ClockStatus, MetricEntry

CT = {"content-type": "application/x-msgpack"}
SRC = SourceInfo("meter-total", "modbus", "127.0.0.1:502/1", {"point": "total"})


def batch(seq: int, prev: bytes = GENESIS, n: int = 4, agent: str = "agent-1") -> Batch:
    arrays = wire.pack_arrays(
        [seq * 10**10 + i for i in range(n)], [0] * n, [0] * n, [100.0 + i for i in range(n)]
    )
    return Batch(
        agent,
        seq,
        prev,
        seq,
        ClockStatus(),
        [SRC],
        [MetricEntry(MetricSpec("power_w", "W"))],
        *arrays,
    )


def post(c: Collector, raw: bytes, headers: dict[str, str] = CT) -> httpx.Response:
    return httpx.post(f"{c.url}/api/v1/batches", content=raw, headers=headers)


def test_batch_is_stored_once_and_a_retry_is_a_duplicate(collector: Collector) -> None:
    raw = wire.seal(batch(1), collector.keys["agent-1"])
    r = post(collector, raw)
    assert r.status_code == 200 and r.json()["status"] == "stored" and r.json()["chain"] == "ok"
    r = post(collector, raw)
    assert r.status_code == 200 and r.json()["status"] == "duplicate"
    assert collector.store.counts()["samples"] == 4


def test_chain_is_followed_and_a_break_flagged(collector: Collector) -> None:
    key = collector.keys["agent-1"]
    b1 = batch(1)
    body1 = wire.encode_body(b1)
    post(collector, wire.seal(b1, key))
    assert post(collector, wire.seal(batch(2, wire.batch_hash(body1)), key)).json()["chain"] == "ok"
    assert post(collector, wire.seal(batch(3, b"\1" * 32), key)).json()["chain"] == "break"
    assert post(collector, wire.seal(batch(5, b"\1" * 32), key)).json()["chain"] == "gap"


def refusals(c: Collector) -> list[tuple[str, bytes, int, str]]:
    key = c.keys["agent-1"]
    good = wire.seal(batch(1), key)
    body, _ = wire.open_envelope(good)
    forged_sig = msgpack.packb({"body": body, "sig": bytes(64)}, use_bin_type=True)
    other_key = wire.seal(batch(1), Ed25519PrivateKey.generate())
    unknown = wire.seal(batch(1, agent="stranger"), key)
    return [
        ("bad signature", forged_sig, 403, "bad_signature"),
        ("signed by another key", other_key, 403, "bad_signature"),
        ("unknown agent", unknown, 401, "unknown_agent"),
        ("broken msgpack", good[:-7], 400, "malformed"),
        ("not msgpack at all", b"hello", 400, "malformed"),
        ("too large", b"\0" * ((1 << 20) + 1), 413, "too_large"),
    ]


@pytest.mark.parametrize("case", range(6))
def test_refused_batches_store_nothing(collector: Collector, case: int) -> None:
    name, raw, status, reason = refusals(collector)[case]
    r = post(collector, raw)
    assert r.status_code == status, name
    assert r.json()["reason"] == reason
    counts = collector.store.counts()
    assert counts["batches"] == 0 and counts["samples"] == 0, name
    assert counts["rejected"] == 1 and collector.ingest.rejected[reason] == 1


def test_reused_seq_with_other_content_is_a_conflict(collector: Collector) -> None:
    key = collector.keys["agent-1"]
    assert post(collector, wire.seal(batch(1, n=4), key)).status_code == 200
    r = post(collector, wire.seal(batch(1, n=5), key))
    assert r.status_code == 409 and r.json()["reason"] == "seq_conflict"
    assert collector.store.counts()["samples"] == 4  # the first content stays, alone


def test_wrong_content_type_is_415(collector: Collector) -> None:
    raw = wire.seal(batch(1), collector.keys["agent-1"])
    assert post(collector, raw, {"content-type": "application/json"}).status_code == 415
    assert collector.store.counts()["batches"] == 0


def test_failures_are_stored_and_out_of_bounds_ones_refused(collector: Collector) -> None:
    key = collector.keys["agent-1"]
    b = batch(1)
    b.failures = [wire.Failure("meter-dead", 5 * 10**9, "connection refused")]
    assert post(collector, wire.seal(b, key)).json()["status"] == "stored"
    (f,) = collector.store.source_failures()
    assert (f.agent, f.source, f.count, f.reason, f.failing) == (
        "agent-1", "meter-dead", 1, "connection refused", True)
    for bad in ([wire.Failure("meter-dead", 6, "x" * 301)],
                [wire.Failure("m" * 129, 6, "r")],
                [wire.Failure("meter-dead", 6, "r")] * 4097):
        b = batch(2, wire.batch_hash(wire.encode_body(batch(1))))
        b.failures = bad
        r = post(collector, wire.seal(b, key))
        assert r.status_code == 400 and r.json()["reason"] == "malformed", r.text
    assert collector.store.counts()["batches"] == 1


@pytest.mark.parametrize(("ahead_h", "status"), [(25, 400), (23, 200)])
def test_the_latest_sample_anywhere_in_the_batch_is_held_to_24_h_ahead(
    collector: Collector, ahead_h: int, status: int
) -> None:
    # The time rule reads the batch's latest sample wherever it lies (here the middle one of
    # three), not its first or last: 25 h ahead of the collector's clock is refused, 23 h is
    # not (the limit is 24 h, intake/ingest.py MAX_AHEAD_NS).
    import time

    now = time.time_ns()
    b = batch(1, n=3)
    b.ts, b.src, b.met, b.val = wire.pack_arrays(
        [now, now + ahead_h * 3600 * 10**9, now], [0] * 3, [0] * 3, [1.0, 2.0, 3.0])
    b.sealed_ns = now
    r = post(collector, wire.seal(b, collector.keys["agent-1"]))
    assert r.status_code == status, r.text
    if status == 400:
        assert r.json()["reason"] == "time_out_of_range"
        assert collector.store.counts()["samples"] == 0
