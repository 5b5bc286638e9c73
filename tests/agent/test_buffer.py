"""The agent buffer: ticks committed whole, batches chained, deleted only on ack, bounded."""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from dcmeter.agent import wire
from dcmeter.agent.buffer import Buffer, envelope_body
from dcmeter.agent.samples import MetricSpec, Reading, SourceInfo
from dcmeter.agent.wire import GENESIS, ClockStatus

KEY = Ed25519PrivateKey.generate()
SRC = SourceInfo("meter-total", "modbus", "127.0.0.1:502/1", {"point": "total"})
POWER = MetricSpec("power_w", "W")


def sealer(body: bytes) -> bytes:
    return wire.envelope(body, KEY)


def tick(t: int, n: int = 3) -> list[tuple[SourceInfo, Reading]]:
    return [(SRC, Reading(POWER, float(t * 10 + i), t * 1_000_000_000 + i)) for i in range(n)]


def seal(buf: Buffer, max_samples: int = 50_000) -> int | None:
    return buf.seal(sealer, ClockStatus(True, 0.0), 1, max_samples)


def test_batches_are_numbered_and_hash_chained(tmp_path: Path) -> None:
    buf = Buffer(tmp_path / "b.sqlite", "agent-1")
    for t in range(3):
        buf.append(tick(t))
        assert seal(buf) == t + 1
    assert seal(buf) is None  # nothing left to seal
    prev = GENESIS
    for seq, raw in buf.pending():
        body = envelope_body(raw)
        b = wire.decode_body(body)
        assert b.seq == seq and b.prev == prev and len(b) == 3
        prev = wire.batch_hash(body)


def test_everything_committed_survives_a_reopen_and_ack_deletes(tmp_path: Path) -> None:
    path = tmp_path / "b.sqlite"
    buf = Buffer(path, "agent-1")
    buf.append(tick(1))
    seal(buf)
    buf.append(tick(2))  # committed, not sealed
    buf.close()
    buf = Buffer(path, "agent-1")
    assert buf.counts() == {"samples": 3, "batches": 1, "rejected": 0, "dropped": 0}
    assert seal(buf) == 2  # the sequence continues after a restart
    buf.ack(1)
    assert [s for s, _ in buf.pending()] == [2]


def test_batch_size_is_bounded(tmp_path: Path) -> None:
    buf = Buffer(tmp_path / "b.sqlite", "agent-1")
    buf.append(tick(1, n=10))
    assert seal(buf, max_samples=4) == 1
    assert seal(buf, max_samples=4) == 2
    assert seal(buf, max_samples=4) == 3
    sizes = [len(wire.decode_body(envelope_body(r))) for _, r in buf.pending()]
    assert sizes == [4, 4, 2]


def test_full_buffer_drops_oldest_and_reports_exactly_what(tmp_path: Path) -> None:
    buf = Buffer(tmp_path / "b.sqlite", "agent-1", max_bytes=1)  # every batch is "too much"
    buf.append(tick(1))
    seal(buf)  # batch 1 is dropped at once
    assert buf.counts()["batches"] == 0 and buf.counts()["dropped"] == 1
    buf.max_bytes = 1 << 20
    buf.append(tick(2))
    seal(buf)
    (seq, raw), = buf.pending()
    b = wire.decode_body(envelope_body(raw))
    assert seq == 2
    assert [(d.first_seq, d.last_seq, d.samples) for d in b.dropped] == [(1, 1, 3)]
    assert b.dropped[0].first_ts_ns == 1_000_000_000
    assert buf.counts()["dropped"] == 0  # reported once


def test_refused_batch_is_set_aside_not_deleted(tmp_path: Path) -> None:
    buf = Buffer(tmp_path / "b.sqlite", "agent-1")
    buf.append(tick(1))
    seal(buf)
    buf.reject(1, 409, "seq conflict")
    assert buf.pending() == []
    assert buf.counts()["rejected"] == 1


def test_failures_ride_in_the_next_batch_cut_and_bounded(tmp_path: Path) -> None:
    buf = Buffer(tmp_path / "b.sqlite", "agent-1")
    buf.note_failures([("meter-dead", 5, "connection refused " + "x" * 400)])
    buf.append(tick(1))
    assert seal(buf) == 1
    (raw,) = [r for _, r in buf.pending()]
    got = wire.decode_body(envelope_body(raw)).failures
    assert [(f.source, f.ts_ns, len(f.reason)) for f in got] == [("meter-dead", 5, 300)]
    # Failures alone make a batch only when none waits (batch 1 still waits here).
    buf.note_failures([("meter-dead", 6, "refused")])
    assert seal(buf) is None
    buf.ack(1)
    assert seal(buf) == 2
    (raw,) = [r for _, r in buf.pending()]
    b = wire.decode_body(envelope_body(raw))
    assert len(b) == 0 and [(f.ts_ns, f.reason) for f in b.failures] == [(6, "refused")]
    assert seal(buf) is None  # sent once
    # Beyond MAX_FAILURES waiting, the oldest go.
    buf.note_failures([("m", t, "r") for t in range(wire.MAX_FAILURES + 10)])
    buf.ack(2)
    assert seal(buf) == 3
    (raw,) = [r for _, r in buf.pending()]
    kept = wire.decode_body(envelope_body(raw)).failures
    assert len(kept) == wire.MAX_FAILURES and kept[0].ts_ns == 10
