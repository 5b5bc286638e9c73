"""10,000 generated hostile batches against one real collector on a socket.

Truncations, wrong types in every body field, mismatched and huge arrays, NaN, forged,
re-signed and replayed batches, unknown agents, times far in the future, wrong content
types: each answered with its documented status and reason (docs/wire-format.md), none
stored, one rejection line per refusal, and valid batches interleaved keep flowing.
"""

from __future__ import annotations

import math
import os
import struct
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

import httpx
import msgpack
from conftest import Collector
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from dcmeter.agent import wire
from dcmeter.agent.samples import MetricSpec, SourceInfo
from dcmeter.agent.wire import Batch, ClockStatus, MetricEntry

CT = {"content-type": "application/x-msgpack"}
AGENT = "agent-1"
HOSTILE = int(os.environ.get("HOSTILE_N", "10000"))  # fewer for a quick local run
VALID_EVERY = 50  # a valid batch before every 50th hostile one
SRC = SourceInfo("meter-total", "modbus", "127.0.0.1:502/1", {"point": "total"})
POWER = MetricEntry(MetricSpec("power_w", "W"))
T0 = 1_700_000_000 * 10**9
DAY_NS = 24 * 3600 * 10**9
OTHER_KEY = Ed25519PrivateKey.generate()  # a key the collector never enrolled


@dataclass(frozen=True)
class Case:
    """One hostile request and the answer the documentation promises for it."""

    kind: str
    raw: bytes
    status: int
    reason: str | None  # the JSON "reason"; None for 415 (FastAPI's own error body)
    headers: tuple[tuple[str, str], ...] = tuple(CT.items())


def make_batch(seq: int, n: int = 3, agent: str = AGENT, ts0: int = T0) -> Batch:
    """A valid batch of `n` power samples, one second apart, from `ts0` + seq minutes."""
    base = ts0 + seq % 100_000 * 60 * 10**9
    arrays = wire.pack_arrays(
        [base + i * 10**9 for i in range(n)], [0] * n, [0] * n,
        [1000.0 + seq + i for i in range(n)],
    )
    return Batch(agent, seq, bytes(32), base + n * 10**9, ClockStatus(True, 0.01), [SRC],
                 [POWER], *arrays)


def body_map(seq: int) -> dict[str, Any]:
    """A valid body as a plain map, to spoil one field of."""
    m: dict[str, Any] = msgpack.unpackb(wire.encode_body(make_batch(seq)), raw=False)
    return m


def signed(m: dict[str, Any], key: Ed25519PrivateKey) -> bytes:
    """Pack `m` as a body and sign it properly: only the body's content is at fault."""
    return wire.envelope(msgpack.packb(m, use_bin_type=True), key)


# Values of every msgpack type; each field below draws from the types it must not have.
NIL = st.none()
BOOL = st.booleans()
INT = st.integers(-(2**63), 2**64 - 1)
FLOAT = st.floats(allow_nan=True, allow_infinity=True)
TEXT = st.text(max_size=8)
BIN = st.binary(max_size=40)
LIST = st.lists(st.integers(0, 3), max_size=3)
MAP = st.dictionaries(st.text(max_size=3), st.integers(0, 3), max_size=2)


def _not_len(k: int) -> st.SearchStrategy[bytes]:
    return st.binary(max_size=40).filter(lambda b: len(b) % k != 0)


WRONG: dict[str, st.SearchStrategy[Any]] = {
    "v": st.one_of(NIL, BOOL, INT.filter(lambda x: x != 1), FLOAT, TEXT, BIN, LIST, MAP),
    "agent": st.one_of(NIL, BOOL, INT, FLOAT, st.just(""), BIN, LIST, MAP),
    "seq": st.one_of(NIL, BOOL, st.integers(-(2**63), 0), FLOAT, TEXT, BIN, LIST, MAP),
    "prev": st.one_of(NIL, BOOL, INT, FLOAT, TEXT,
                      st.binary(max_size=64).filter(lambda b: len(b) != 32), LIST, MAP),
    "sealed_ns": st.one_of(NIL, BOOL, st.integers(-(2**63), -1), FLOAT, TEXT, BIN, LIST, MAP),
    "clock": st.one_of(NIL, BOOL, INT, FLOAT, TEXT, BIN, LIST,
                       st.fixed_dictionaries({"synced": st.one_of(INT, TEXT, BIN, LIST)}),
                       st.fixed_dictionaries({"max_error_s": st.one_of(TEXT, BIN, LIST, MAP)}),
                       st.fixed_dictionaries({"stepped_s": st.one_of(
                           BOOL, TEXT, BIN, st.sampled_from([math.nan, math.inf])),
                       })),
    "sources": st.one_of(NIL, BOOL, INT, FLOAT, TEXT, BIN, MAP,
                         st.lists(st.one_of(INT, TEXT, LIST, MAP), min_size=1, max_size=3)),
    "metrics": st.one_of(NIL, BOOL, INT, FLOAT, TEXT, BIN, MAP,
                         st.lists(st.one_of(INT, TEXT, LIST, MAP), min_size=1, max_size=3),
                         st.just([["power_w", "W", "rate", None, {}]]),
                         st.just([["power_w", "W", "counter", -1.0, {}]])),
    "ts": st.one_of(NIL, BOOL, INT, FLOAT, TEXT, LIST, MAP, _not_len(8)),
    "src": st.one_of(NIL, BOOL, INT, FLOAT, TEXT, LIST, MAP, _not_len(4)),
    "met": st.one_of(NIL, BOOL, INT, FLOAT, TEXT, LIST, MAP, _not_len(4)),
    "val": st.one_of(NIL, BOOL, INT, FLOAT, TEXT, LIST, MAP, _not_len(8)),
    "dropped": st.one_of(NIL, BOOL, INT, FLOAT, TEXT, BIN, MAP,
                         st.lists(st.one_of(TEXT, LIST, st.lists(FLOAT, min_size=5,
                                                                 max_size=5)),
                                  min_size=1, max_size=2)),
}


@st.composite
def wrong_type(draw: st.DrawFn, seq: int) -> Case:
    """One body field replaced by a value it may not hold, or left out."""
    m = body_map(seq)
    name = draw(st.sampled_from(sorted(WRONG)))
    if draw(st.integers(0, 9)) == 0:
        del m[name]
    else:
        m[name] = draw(WRONG[name])
    return Case(f"wrong type: {name}", signed(m, KEYS[AGENT]), 400, "malformed")


@st.composite
def bad_arrays(draw: st.DrawFn, seq: int) -> Case:
    """Columns of unequal length, indices beyond the tables, NaN or infinite values."""
    m = body_map(seq)
    how = draw(st.sampled_from(["short", "src index", "met index", "nan"]))
    if how == "short":
        col, width = draw(st.sampled_from([("ts", 8), ("src", 4), ("met", 4), ("val", 8)]))
        m[col] = m[col][: width * draw(st.integers(0, 2))]
    elif how in ("src index", "met index"):
        col = how.split()[0]
        idx = draw(st.integers(1, 2**32 - 1))
        m[col] = m[col][:4] + struct.pack("<I", idx) + m[col][8:]
    else:
        bad = draw(st.sampled_from([math.nan, math.inf, -math.inf]))
        m["val"] = m["val"][:8] + struct.pack("<d", bad) + m["val"][16:]
    return Case(f"arrays: {how}", signed(m, KEYS[AGENT]), 400, "malformed")


@st.composite
def truncated(draw: st.DrawFn, seq: int) -> Case:
    """A valid envelope, or its body (then properly signed), cut at a random offset."""
    raw = wire.seal(make_batch(seq), KEYS[AGENT])
    if draw(st.booleans()):
        return Case("truncated envelope", raw[: draw(st.integers(0, len(raw) - 1))], 400,
                    "malformed")
    body = wire.encode_body(make_batch(seq))
    cut = body[: draw(st.integers(0, len(body) - 1))]
    return Case("truncated body", wire.envelope(cut, KEYS[AGENT]), 400, "malformed")


@st.composite
def declared_huge(draw: st.DrawFn, seq: int) -> Case:
    """msgpack headers that declare huge arrays, strings or maps the bytes do not hold."""
    n = draw(st.integers(2**20, 2**32 - 1))
    header = draw(st.sampled_from([b"\xdd", b"\xdf", b"\xc6", b"\xdb"])) + struct.pack(">I", n)
    where = draw(st.sampled_from(["envelope", "body", "ts"]))
    if where == "envelope":
        return Case("declared huge envelope", header + b"\0" * 16, 400, "malformed")
    if where == "body":
        return Case("declared huge body", wire.envelope(header + b"\0" * 16, KEYS[AGENT]), 400,
                    "malformed")
    body = wire.encode_body(make_batch(seq))
    at = body.index(b"\xa2ts") + 3  # the ts bin's header follows its key
    spoiled = body[:at] + b"\xc6" + struct.pack(">I", n) + body[at + 2:]
    return Case("declared huge ts", wire.envelope(spoiled, KEYS[AGENT]), 400, "malformed")


@st.composite
def actual_huge(draw: st.DrawFn, seq: int) -> Case:
    """More bytes than the collector's max_bytes (1 MiB): refused unread, 413."""
    extra = draw(st.integers(1, 4096))
    filler = draw(st.sampled_from([b"\0", b"\xff", b"\x91"]))
    return Case("too large", filler * ((1 << 20) + extra), 413, "too_large")


@st.composite
def forged(draw: st.DrawFn, seq: int) -> Case:
    """Signatures that are not the agent's over this body: 403."""
    batch = make_batch(seq)
    body = wire.encode_body(batch)
    how = draw(st.sampled_from(["random", "other key", "bit flip", "other body"]))
    if how == "random":
        sig = draw(st.binary(min_size=64, max_size=64))
    elif how == "other key":
        sig = OTHER_KEY.sign(body)
    elif how == "bit flip":
        sig = bytearray(KEYS[AGENT].sign(body))
        bit = draw(st.integers(0, 511))
        sig[bit // 8] ^= 1 << (bit % 8)
        sig = bytes(sig)
    else:  # the agent's genuine signature of another batch
        sig = KEYS[AGENT].sign(wire.encode_body(make_batch(seq + 1)))
    raw = msgpack.packb({"body": body, "sig": sig}, use_bin_type=True)
    return Case(f"forged: {how}", raw, 403, "bad_signature")


@st.composite
def envelope_shape(draw: st.DrawFn, seq: int) -> Case:
    """Envelopes that are not {body, sig(64)[, rotate]}."""
    body = wire.encode_body(make_batch(seq))
    sig = KEYS[AGENT].sign(body)
    env = draw(st.sampled_from([
        {"body": body},
        {"body": body, "sig": sig[:63]},
        {"body": body, "sig": sig, "extra": 1},
        {"body": body.decode("latin-1"), "sig": sig},
        {"body": body, "sig": sig, "rotate": {"key": bytes(31), "sig": bytes(64)}},
        [body, sig],
    ]))
    return Case("envelope shape", msgpack.packb(env, use_bin_type=True), 400, "malformed")


@st.composite
def unknown_agent(draw: st.DrawFn, seq: int) -> Case:
    """A well-formed batch from an agent the collector never enrolled: 401."""
    name = draw(st.text(min_size=1, max_size=12).filter(lambda s: s != AGENT))
    key = draw(st.sampled_from([KEYS[AGENT], OTHER_KEY]))
    return Case("unknown agent", wire.seal(make_batch(seq, agent=name), key), 401,
                "unknown_agent")


@st.composite
def future(draw: st.DrawFn, seq: int) -> Case:
    """Sample or seal times more than 24 h ahead of the collector's clock: 400."""
    ahead = draw(st.integers(DAY_NS + 3600 * 10**9, 2**62))
    batch = make_batch(seq, ts0=time.time_ns() + ahead)
    if draw(st.booleans()):  # only the seal time is in the future
        batch = make_batch(seq)
        batch.sealed_ns = time.time_ns() + ahead
    return Case("future times", wire.seal(batch, KEYS[AGENT]), 400, "time_out_of_range")


@st.composite
def content_type(draw: st.DrawFn, seq: int) -> Case:
    """A valid batch under another content type: 415, unread."""
    ctype = draw(st.sampled_from(["application/json", "text/plain", "application/msgpack", ""]))
    return Case("content type", wire.seal(make_batch(seq), KEYS[AGENT]), 415, None,
                (("content-type", ctype),))


KEYS: dict[str, Ed25519PrivateKey] = {}
KINDS = [wrong_type, bad_arrays, truncated, declared_huge, forged, envelope_shape,
         unknown_agent, future, content_type]


def test_hostile_batches_store_nothing_and_the_collector_keeps_serving(
    collector: Collector,
) -> None:
    KEYS[AGENT] = key = collector.keys[AGENT]
    http = httpx.Client(base_url=collector.url, timeout=30)
    legit: list[Batch] = []
    prev = wire.GENESIS
    answered: Counter[tuple[str, int]] = Counter()
    refusals = 0

    def post(raw: bytes, headers: dict[str, str] = CT) -> httpx.Response:
        return http.post("/api/v1/batches", content=raw, headers=headers)

    def post_valid() -> None:
        nonlocal prev
        b = make_batch(len(legit) + 1)
        b.prev = prev
        body = wire.encode_body(b)
        r = post(wire.envelope(body, key))
        assert r.status_code == 200 and r.json()["status"] == "stored", r.text
        assert r.json()["chain"] == "ok"
        legit.append(b)
        prev = wire.batch_hash(body)

    post_valid()  # seq 1: what replays and conflicts aim at
    first = wire.seal(legit[0], key)
    # The same seq with other content, signed by the agent: 409; the stored bytes: duplicate.
    conflicting = make_batch(1, n=4)
    replays = st.sampled_from([
        Case("replay", first, 200, None),
        Case("seq conflict", wire.seal(conflicting, key), 409, "seq_conflict"),
    ])
    seqs = st.integers(10**6, 10**9)  # seqs no valid batch of this test reaches
    # 1 MiB bodies are few (about 1 %): each is a megabyte on the wire.
    huge = seqs.flatmap(actual_huge)
    rare = st.integers(0, 9).flatmap(lambda i: huge if i == 0 else replays)
    hostile = st.one_of(*[seqs.flatmap(kind) for kind in KINDS], rare)
    count = 0

    @settings(max_examples=HOSTILE, derandomize=True, database=None, deadline=None,
              phases=[Phase.generate], suppress_health_check=list(HealthCheck))
    @given(case=hostile)
    def one(case: Case) -> None:
        nonlocal count, refusals
        count += 1
        if count % VALID_EVERY == 0:
            post_valid()
        r = post(case.raw, dict(case.headers))
        assert r.status_code == case.status, (case.kind, r.status_code, r.text)
        if case.status == 200:
            assert r.json()["status"] == "duplicate", case.kind
        elif case.reason is not None:
            assert r.json()["reason"] == case.reason, (case.kind, r.text)
            assert r.json()["detail"], case.kind  # says what was wrong
            refusals += 1
        answered[(case.kind.split(":")[0], case.status)] += 1

    started = time.monotonic()
    one()
    took = time.monotonic() - started
    print(f"\n{count} hostile batches and {len(legit)} valid in {took:.1f} s:"
          f" {(count + len(legit)) / took:.0f} requests/s")
    for (kind, status), n in sorted(answered.items()):
        print(f"  {status} {kind}: {n}")

    assert count == HOSTILE
    # Every kind was exercised, with a fair share each.
    assert {k for k, _ in answered} >= {
        "wrong type", "arrays", "truncated envelope", "truncated body", "declared huge ts",
        "forged", "envelope shape", "unknown agent", "future times", "content type",
        "too large", "replay", "seq conflict"}
    # Alive and serving throughout, and still taking good batches afterwards.
    health = http.get("/api/v1/health")
    assert health.status_code == 200 and health.json()["status"] == "ok"
    post_valid()
    # Nothing of any hostile input was stored: exactly the valid batches' samples.
    expected = sorted(
        ("meter-total", "power_w", t, v) for b in legit for t, v in zip(b.ts, b.val, strict=True)
    )
    assert sorted(collector.store.samples()) == expected
    counts = collector.store.counts()
    assert counts["batches"] == len(legit) and counts["samples"] == len(expected)
    # One rejection line per refusal (a 415 is refused before the batch is read).
    assert counts["rejected"] == refusals
    http.close()
