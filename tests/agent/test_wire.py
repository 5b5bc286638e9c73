"""The batch wire format: round trip, signature, and refusal of malformed bytes."""

from __future__ import annotations

import msgpack
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st

from dcmeter.agent import wire
from dcmeter.agent.samples import MetricSpec, SourceInfo
from dcmeter.agent.wire import GENESIS, Batch, ClockStatus, Dropped, MetricEntry

KEY = Ed25519PrivateKey.generate()
POWER = MetricEntry(MetricSpec("power_w", "W"))
ENERGY = MetricEntry(MetricSpec("energy_import_kwh", "kWh", "counter", 4294967.296))


def make_batch(n: int = 3, seq: int = 1, prev: bytes = GENESIS) -> Batch:
    """A batch of n samples from one meter, alternating power and energy."""
    src = SourceInfo("meter-total", "modbus", "127.0.0.1:502/1", {"point": "total"}, 0.005)
    arrays = wire.pack_arrays(
        [1_700_000_000_000_000_000 + i for i in range(n)],
        [0] * n,
        [i % 2 for i in range(n)],
        [float(i) * 1.5 for i in range(n)],
    )
    return Batch("agent-1", seq, prev, 1_700_000_001_000_000_000, ClockStatus(True, 0.01),
                 [src], [POWER, ENERGY], *arrays, dropped=[Dropped(1, 2, 10, 5, 6)])


def test_round_trip_keeps_every_field() -> None:
    b = make_batch(5)
    raw = wire.seal(b, KEY)
    body, sig = wire.open_envelope(raw)
    wire.verify(KEY.public_key(), body, sig)
    got = wire.decode_body(body)
    assert (got.agent, got.seq, got.prev, got.sealed_ns) == (b.agent, b.seq, b.prev, b.sealed_ns)
    assert got.clock == b.clock and got.dropped == b.dropped
    assert got.sources == b.sources and got.metrics == b.metrics
    assert list(got.ts) == list(b.ts) and list(got.val) == list(b.val)
    assert list(got.src) == list(b.src) and list(got.met) == list(b.met)


def test_device_identity_round_trips_and_an_old_agents_batch_has_none() -> None:
    b = make_batch()
    old_body = wire.encode_body(b)  # no device: the five-entry source of every older agent
    assert msgpack.unpackb(old_body, raw=False)["sources"][0] == [
        "meter-total", "modbus", "127.0.0.1:502/1", {"point": "total"}, 0.005]
    raw = wire.envelope(old_body, KEY)  # an old agent's batch still verifies and decodes
    body, sig = wire.open_envelope(raw)
    wire.verify(KEY.public_key(), body, sig)
    assert wire.decode_body(body).sources[0].device == {}
    device = {"make": "Eastron", "model": "SDM630", "profile": "eastron_sdm630"}
    b.sources[0] = SourceInfo("meter-total", "modbus", "127.0.0.1:502/1",
                              {"point": "total"}, 0.005, device)
    got = wire.decode_body(wire.encode_body(b))
    assert got.sources[0].device == device and got.sources == b.sources


def test_failures_round_trip_and_a_batch_without_them_is_unchanged() -> None:
    b = make_batch()
    old_body = wire.encode_body(b)  # no failures: the body every older agent sealed
    assert "failures" not in msgpack.unpackb(old_body, raw=False)
    assert wire.decode_body(old_body).failures == []
    b.failures = [wire.Failure("meter-dead", 1_700_000_000_500_000_000, "connection refused"),
                  wire.Failure("x" * 128, 2**63 - 1, "r" * 300)]
    raw = wire.seal(b, KEY)
    body, sig = wire.open_envelope(raw)
    wire.verify(KEY.public_key(), body, sig)
    assert msgpack.unpackb(body, raw=False)["failures"][0] == [
        "meter-dead", 1_700_000_000_500_000_000, "connection refused"]
    assert wire.decode_body(body).failures == b.failures
    b.failures = []
    assert wire.encode_body(b) == old_body  # byte-identical without failures


def test_tampered_body_fails_verification() -> None:
    body, sig = wire.open_envelope(wire.seal(make_batch(), KEY))
    forged = body.replace(b"meter-total", b"meter-TOTAL")
    with pytest.raises(wire.BadSignature):
        wire.verify(KEY.public_key(), forged, sig)
    with pytest.raises(wire.BadSignature):
        wire.verify(Ed25519PrivateKey.generate().public_key(), body, sig)


def _body_with(**changes: object) -> bytes:
    m = msgpack.unpackb(wire.encode_body(make_batch()), raw=False)
    m.update(changes)
    return bytes(msgpack.packb(m, use_bin_type=True))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"v": 2}, "unsupported version"),
        ({"seq": 0}, "seq outside"),
        ({"seq": 2**63 - 1}, "seq outside"),
        ({"sealed_ns": 2**63}, "sealed_ns outside"),
        ({"dropped": [[1, 2, 3, 4, 2**63]]}, r"\[0, 2\^63\)"),
        ({"dropped": [[5, 4, 3, 4, 5]]}, "last_seq >= first_seq"),
        ({"next_key": b"short"}, "next_key must be 32 bytes"),
        ({"seq": "1"}, "'seq' has the wrong type"),
        ({"prev": b"short"}, "prev not 32 bytes"),
        ({"val": b"\0" * 7}, "not a multiple of 8"),
        ({"src": b"\x05\0\0\0" * 3}, "beyond the source table"),
        ({"met": b"\x09\0\0\0" * 3}, "beyond the metric table"),
        ({"ts": b"\0" * 16}, "same length"),
        ({"metrics": [["power_w", "W", "rate", None, {}]]}, "kind must be"),
        ({"sources": [["s", "modbus", "a", {"point": 8}, None]]}, "labels must map"),
        ({"val": b"\0\0\0\0\0\0\xf8\x7f" * 3}, "NaN"),
        ({"sources": [["s", "modbus", "a", {}, None, {"model": 5}]]}, "labels must map"),
        ({"sources": [["s", "modbus", "a", {}, None, {"Model": "x"}]]}, "device key"),
        ({"sources": [["s", "modbus", "a", {}, None, {"model": "x" * 1025}]]}, "at most 1024"),
        ({"sources": [["s", "modbus", "a", {}, None, {f"k{i}": "x" for i in range(17)}]]},
         "at most 16"),
        ({"sources": [["s", "modbus", "a", {}, None, {}, "extra"]]}, "expected"),
        ({"failures": [["s", 1, "r"]] * 4097}, "at most 4096"),
        ({"failures": "dead"}, "failures must be a list"),
        ({"failures": [["s" * 129, 1, "r"]]}, r"failures\[0\]"),
        ({"failures": [["", 1, "r"]]}, r"failures\[0\]"),
        ({"failures": [["s", 1, "r" * 301]]}, r"failures\[0\]"),
        ({"failures": [["s", 1, "r"], ["s", 2**63, "r"]]}, r"failures\[1\]"),
        ({"failures": [["s", -1, "r"]]}, r"failures\[0\]"),
        ({"failures": [["s", True, "r"]]}, r"failures\[0\]"),
        ({"failures": [["s", 1]]}, r"failures\[0\]"),
    ],
)
def test_malformed_bodies_are_refused_with_the_fault(
    changes: dict[str, object], message: str
) -> None:
    with pytest.raises(wire.WireError, match=message):
        wire.decode_body(_body_with(**changes))


@pytest.mark.parametrize("raw", [b"", b"\xc1", msgpack.packb([1, 2]), msgpack.packb({"body": b"x"}),
                                 msgpack.packb({"body": b"x", "sig": b"short"})])
def test_broken_envelopes_are_refused(raw: bytes) -> None:
    with pytest.raises(wire.WireError):
        wire.open_envelope(raw)


@given(
    st.lists(
        st.tuples(st.integers(0, 2**62), st.floats(allow_nan=False, allow_infinity=False)),
        max_size=200,
    )
)
def test_any_samples_survive_the_round_trip(samples: list[tuple[int, float]]) -> None:
    n = len(samples)
    b = make_batch(0)
    b.ts, b.src, b.met, b.val = wire.pack_arrays(
        [t for t, _ in samples], [0] * n, [0] * n, [v for _, v in samples]
    )
    got = wire.decode_body(wire.encode_body(b))
    assert list(got.ts) == [t for t, _ in samples]
    assert list(got.val) == [v for _, v in samples]
