"""Hostile agents and networks against the hash chain and the key history (issue 12, item 2).

A real collector on a socket, the agent's real Ed25519 keys, real HTTP; one test per
finding: a batch sealed outside its samples' window escaping the evidence, a retired key
forging a never-delivered earlier batch, `collector verify` not checking links, a stripped
rotation statement, rotating back to a former key, integers past int64, a body decoded
before its agent is known, and a retired private key kept after its rotation was on record.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import httpx
import msgpack
import pytest
from conftest import Collector
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from structlog.testing import capture_logs

from dcmeter.agent import config as agent_config
from dcmeter.agent import pubkey, wire
from dcmeter.agent.daemon import Agent, make_shipper
from dcmeter.agent.samples import MetricSpec, Reading, SourceInfo
from dcmeter.agent.wire import GENESIS, Batch, ClockStatus, MetricEntry, pack_arrays
from dcmeter.cli.main import main
from dcmeter.collectors.intake.agent_keys import KeyHistory, verify_stored

CT = {"content-type": "application/x-msgpack"}
SRC = SourceInfo("meter-total", "modbus", "127.0.0.1:502/1", {"point": "total"})
POWER = MetricSpec("power_w", "W")
MIN_NS = 60 * 10**9


def body(
    seq: int, prev: bytes, ts_ns: int, *, sealed_ns: int | None = None, value: float = 100.0,
    clock: ClockStatus | None = None, next_key: bytes | None = None, agent: str = "agent-1",
) -> bytes:
    """An encoded body of three power samples a second apart from `ts_ns`."""
    arrays = pack_arrays([ts_ns + i * 10**9 for i in range(3)], [0] * 3, [0] * 3, [value] * 3)
    return wire.encode_body(Batch(
        agent, seq, prev, ts_ns + 3 * 10**9 if sealed_ns is None else sealed_ns,
        clock or ClockStatus(True, 0.01), [SRC], [MetricEntry(POWER)], *arrays,
        **({} if next_key is None else {"next_key": next_key}),
    ))


def raw_key(key: Ed25519PrivateKey) -> bytes:
    """The raw 32 bytes of a key's public half."""
    return key.public_key().public_bytes_raw()


def post(c: Collector, raw: bytes) -> httpx.Response:
    """POST one envelope to the collector."""
    return httpx.post(f"{c.url}/api/v1/batches", content=raw, headers=CT, timeout=30)


def refused(r: httpx.Response, status: int, reason: str) -> bool:
    """Whether the answer is the documented refusal."""
    return r.status_code == status and r.json()["reason"] == reason and bool(r.json()["detail"])


def rfc3339(ns: int) -> str:
    """An RFC 3339 UTC time for the windows API."""
    return datetime.fromtimestamp(ns // 10**9, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_a_batch_sealed_outside_the_window_still_counts_as_its_evidence(
    collector: Collector,
) -> None:
    """Finding: the chain and clock evidence covered only batches *sealed* in the window;
    a batch with `sealed_ns = 1` (or sealed much later) holding samples inside it escaped."""
    key = collector.keys["agent-1"]
    t0 = (time.time_ns() - 3 * 3600 * 10**9) // MIN_NS * MIN_NS  # 3 h ago, whole minute
    prev = GENESIS
    for seq in (1, 2):
        b = body(seq, prev, t0 + seq * MIN_NS)
        assert post(collector, wire.envelope(b, key)).json()["chain"] == "ok"
        prev = wire.batch_hash(b)
    # Batch 3 names a wrong predecessor, reports an unsynchronised, stepped clock, and says
    # it was sealed in 1970; batch 4, also off the chain, says it was sealed just now.
    sly = body(3, b"\1" * 32, t0 + 3 * MIN_NS, sealed_ns=1,
               clock=ClockStatus(False, 0.01, stepped_s=30.0))
    late = body(4, b"\2" * 32, t0 + 4 * MIN_NS, sealed_ns=time.time_ns())
    for b in (sly, late):
        r = post(collector, wire.envelope(b, key))
        assert r.status_code == 200 and r.json()["chain"] == "break", r.text
    with collector.http() as http:
        base = f"{collector.url}/api/v1/windows"
        w = http.post(base, json={"kind": "infrastructure", "start": rfc3339(t0)}).json()
        stop = http.post(f"{base}/{w['id']}/stop", json={"end": rfc3339(t0 + 3600 * 10**9)})
        assert stop.status_code == 200, stop.text
        result = http.get(f"{base}/{w['id']}").json()
    chain, clock = result["quality"]["chain"], result["quality"]["clock"]
    agent = chain["agents"]["agent-1"]
    assert agent["breaks"] == [3, 4] and chain["ok"] is False
    assert (agent["batches"], agent["first_seq"], agent["last_seq"]) == (4, 1, 4)
    assert result["quality"]["valid"] is False
    assert any("hash chain broken at batch(es) 3, 4" in i for i in result["quality"]["issues"])
    assert clock["agents"]["agent-1"]["unsynced"] == 1
    assert clock["agents"]["agent-1"]["steps"] == [{"seq": 3, "stepped_s": 30.0}]
    assert chain["batches_sampled"] == chain["batches_sealed"]


def test_a_retired_key_cannot_forge_a_never_delivered_earlier_batch(collector: Collector) -> None:
    """Finding: a batch arriving after its successor was stored "ok" without checking that
    it hashes to the successor's `prev`, so a retired key could fill a never-delivered seq."""
    old, new = collector.keys["agent-1"], Ed25519PrivateKey.generate()
    t = time.time_ns() - 3600 * 10**9
    b1 = body(1, GENESIS, t)
    b2 = body(2, wire.batch_hash(b1), t + MIN_NS, value=100.0)  # never delivered (yet)
    b3 = body(3, wire.batch_hash(b2), t + 2 * MIN_NS)  # announces the new key
    b4 = body(4, wire.batch_hash(b3), t + 3 * MIN_NS)
    assert post(collector, wire.envelope(b1, old)).json()["chain"] == "ok"
    announce = wire.envelope(b3, old, new.public_key())
    assert post(collector, announce).json()["chain"] == "gap"
    assert post(collector, wire.envelope(b4, new)).json()["chain"] == "ok"
    # The retired key is the key in force up to seq 3 and at no seq from 4 on.
    history = KeyHistory(collector.store)
    assert history.at("agent-1", 3) == old.public_key()
    assert all(history.at("agent-1", s) == new.public_key() for s in (4, 5, 10**6))

    # The attack: the retired key signs a never-delivered EARLIER seq, with other values ...
    forged2 = body(2, wire.batch_hash(b1), t + MIN_NS, value=5000.0)
    assert refused(post(collector, wire.envelope(forged2, old)), 409, "chain_mismatch")
    # ... and a later one.
    b5 = body(5, wire.batch_hash(b4), t + 4 * MIN_NS)
    assert refused(post(collector, wire.envelope(b5, old)), 403, "bad_signature")
    assert [b["seq"] for b in collector.store.batches("agent-1")] == [1, 3, 4]
    assert collector.ingest.rejected["chain_mismatch"] == 1
    assert sorted(collector.store.rejection_totals()[0]) == [
        (403, "bad_signature", 1), (409, "chain_mismatch", 1)]

    # The genuine batch 2, late: it hashes to 3's prev, so 3's link is verified now.
    assert post(collector, wire.envelope(b2, old)).json()["chain"] == "ok"
    chains = {b["seq"]: b["chain"] for b in collector.store.batches("agent-1")}
    assert chains == {1: "ok", 2: "ok", 3: "ok", 4: "ok"}
    summary = collector.store.chain_summary(0, time.time_ns())
    assert summary[0]["gaps"] == [] and summary[0]["breaks"] == []
    audit = verify_stored(collector.store)
    assert (audit.verified, audit.failed, audit.links, audit.breaks, audit.gaps) == (
        4, 0, 4, 0, [])


def test_collector_verify_checks_links_and_lists_gaps(
    collector: Collector, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    store_location: Callable[[str], Path | str],
) -> None:
    """Finding: `dcmeter collector verify` checked signatures only, never the links."""
    key = collector.keys["agent-1"]
    t = time.time_ns() - 3600 * 10**9
    b1 = body(1, GENESIS, t)
    b2 = body(2, b"\7" * 32, t + MIN_NS)  # signed by the agent, chained to nothing
    b5 = body(5, b"\0" * 32, t + 4 * MIN_NS)  # 3 and 4 never arrive
    for b in (b1, b2, b5):
        assert post(collector, wire.envelope(b, key)).status_code == 200
    audit = verify_stored(collector.store)
    assert audit.faults == [
        "agent agent-1 seq 2: hash chain broken: prev is not the SHA-256 of the stored"
        " batch 1's body"
    ]
    assert audit.gaps == ["agent agent-1: seq 3-4 not stored"]
    assert (audit.verified, audit.failed, audit.links, audit.breaks) == (3, 0, 1, 1)
    location = store_location("collector")  # the collector fixture's store
    cfg = tmp_path / "collector.toml"
    cfg.write_text(
        f'[collector]\nstore = "{location}"\nsite = "site.toml"\n'
        f'[[agents]]\nid = "agent-1"\npublic_key = "{pubkey.public_text(key.public_key())}"\n'
    )
    assert main(["collector", "verify", "-c", str(cfg)]) == 1
    out = capsys.readouterr().out
    assert "FAILED agent agent-1 seq 2: hash chain broken" in out
    assert "GAP agent agent-1: seq 3-4 not stored" in out
    assert "3 batches verified, 0 failed; 1 links verified, 1 broken; 1 gaps" in out


def test_the_rotation_statement_cannot_be_stripped(collector: Collector) -> None:
    """Finding: the rotation statement sat beside the signed body; delivered without it
    first, the batch was stored, the genuine envelope was then a "duplicate", the new key was
    never recorded and every later batch was refused (403) forever."""
    first, second, third = (collector.keys["agent-1"], Ed25519PrivateKey.generate(),
                            Ed25519PrivateKey.generate())
    t = time.time_ns() - 3600 * 10**9
    # Older agents (the statement in the envelope): strip it and deliver the bare batch
    # first; the genuine envelope, a duplicate now, still records the key.
    b1 = body(1, GENESIS, t)
    legacy = wire.envelope(b1, first, second.public_key())
    assert post(collector, wire.envelope(b1, first)).json()["status"] == "stored"
    assert post(collector, legacy).json()["status"] == "duplicate"
    b2 = body(2, wire.batch_hash(b1), t + MIN_NS)
    r = post(collector, wire.envelope(b2, second))  # the new key is on record
    assert r.status_code == 200 and r.json()["status"] == "stored", r.text

    # New agents name the key in the body: taking it out breaks the signature.
    b3 = body(3, wire.batch_hash(b2), t + 2 * MIN_NS, next_key=raw_key(third))
    genuine = wire.envelope(b3, second)
    assert wire.open_signed(genuine)[2] is None  # the announcement is in the body only
    m = msgpack.unpackb(b3, raw=False)
    del m["next_key"]
    stripped = msgpack.packb({"body": msgpack.packb(m, use_bin_type=True),
                              "sig": second.sign(b3)}, use_bin_type=True)
    assert refused(post(collector, stripped), 403, "bad_signature")
    assert post(collector, genuine).json()["status"] == "stored"
    b4 = body(4, wire.batch_hash(b3), t + 3 * MIN_NS)
    assert post(collector, wire.envelope(b4, third)).json()["status"] == "stored"
    rows = [(r[2], r[5]) for r in collector.store.agent_keys("agent-1")]
    assert rows == [(1, "enrolled"), (2, "rotation"), (4, "rotation")]
    audit = verify_stored(collector.store)  # the stored envelope now carries the statement
    assert (audit.verified, audit.failed, audit.breaks) == (4, 0, 0), audit.faults


def test_rotating_back_to_a_former_key_is_refused(collector: Collector) -> None:
    """Finding: rotating back to an earlier key answered 200 and was silently ignored."""
    first, second = collector.keys["agent-1"], Ed25519PrivateKey.generate()
    t = time.time_ns() - 3600 * 10**9
    b1 = body(1, GENESIS, t)
    assert post(collector, wire.envelope(b1, first, second.public_key())).status_code == 200
    prev = wire.batch_hash(b1)
    legacy = wire.envelope(body(2, prev, t + MIN_NS), second, first.public_key())
    assert refused(post(collector, legacy), 409, "key_reused")
    back = body(2, prev, t + MIN_NS, next_key=raw_key(first))
    assert refused(post(collector, wire.envelope(back, second)), 409, "key_reused")
    same = body(2, prev, t + MIN_NS, next_key=raw_key(second))  # "rotating" to itself
    assert refused(post(collector, wire.envelope(same, second)), 409, "key_reused")
    assert [b["seq"] for b in collector.store.batches("agent-1")] == [1]
    assert len(collector.store.agent_keys("agent-1")) == 2
    assert collector.ingest.rejected["key_reused"] == 3
    # A fresh key is fine.
    fresh = body(2, prev, t + MIN_NS, next_key=raw_key(Ed25519PrivateKey.generate()))
    assert post(collector, wire.envelope(fresh, second)).json()["status"] == "stored"


def signed_map(m: dict[str, object], key: Ed25519PrivateKey) -> bytes:
    """Pack `m` as a body and sign it properly: only the content is at fault."""
    return wire.envelope(msgpack.packb(m, use_bin_type=True), key)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("seq", 2**63), ("seq", 2**64 - 1), ("seq", 2**63 - 1), ("sealed_ns", 2**63),
        ("dropped", [[1, 2, 3, 4, 2**63]]), ("dropped", [[2**63, 2**63, 1, 4, 5]]),
        ("dropped", [[1, 2, 2**64 - 1, 4, 5]]), ("dropped", [[1, 2, -3, 4, 5]]),
        ("dropped", [[5, 4, 3, 4, 5]]), ("dropped", [[1, 2, 3, 9, 5]]),
    ],
)
def test_integers_past_int64_are_malformed_not_500(
    collector: Collector, field: str, value: object
) -> None:
    """Finding: seq >= 2^63 and `dropped` >= 2^63 answered 500 (the store's int64)."""
    key = collector.keys["agent-1"]
    m = msgpack.unpackb(body(1, GENESIS, time.time_ns() - 3600 * 10**9), raw=False)
    m[field] = value
    assert refused(post(collector, signed_map(m, key)), 400, "malformed")
    assert collector.store.counts()["batches"] == 0
    assert collector.store.counts()["rejected"] == 1


def test_an_unenrolled_agent_is_refused_before_its_body_is_decoded(
    collector: Collector,
) -> None:
    """Finding: a batch from an unknown agent was fully decoded before the key lookup (a
    16 MB body: 0.85 s on the event loop); now agent and seq are peeked, then key and
    signature are checked on the raw bytes, and only then is the body decoded."""
    key = collector.keys["agent-1"]
    t = time.time_ns() - 3600 * 10**9
    m = msgpack.unpackb(body(1, GENESIS, t, agent="stranger"), raw=False)
    m["val"] = b"\0\0\0\0\0\0\xf8\x7f" * 3  # NaN: refused by decoding, which never happens
    assert refused(post(collector, signed_map(m, key)), 401, "unknown_agent")
    m["agent"] = "agent-1"  # enrolled, but the signature is a stranger's: 403, undecoded
    assert refused(post(collector, signed_map(m, Ed25519PrivateKey.generate())), 403,
                   "bad_signature")
    assert refused(post(collector, signed_map(m, key)), 400, "malformed")  # now decoded
    # The peek reads the map entry by entry: agent and seq may come anywhere in it ...
    good = msgpack.unpackb(body(1, GENESIS, t), raw=False)
    moved = {k: good[k] for k in reversed(list(good))}
    # ... and a body naming an agent twice (peeked one, decoded another) is malformed.
    entries = [*good.items(), ("agent", "other")]
    assert len(entries) < 16  # a fixmap
    dup = bytes([0x80 | len(entries)]) + b"".join(
        msgpack.packb(k, use_bin_type=True) + msgpack.packb(v, use_bin_type=True)
        for k, v in entries
    )
    assert refused(post(collector, wire.envelope(dup, key)), 400, "malformed")
    assert collector.store.counts()["batches"] == 0
    assert post(collector, signed_map(moved, key)).json()["status"] == "stored"
    assert collector.ingest.rejected == {"unknown_agent": 1, "bad_signature": 1,
                                         "malformed": 2}


def pem(key: Ed25519PrivateKey) -> bytes:
    """The PKCS#8 PEM an agent keeps its key in."""
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def test_the_retired_key_is_deleted_once_the_rotation_is_acknowledged(
    collector: Collector, tmp_path: Path
) -> None:
    """Finding: the agent kept `agent.key.retired-<seq>` on disk for ever, a key that could
    still sign seqs before the rotation."""
    state = tmp_path / "state"
    state.mkdir()
    (state / "agent.key").write_bytes(pem(collector.keys["agent-1"]))
    os.chmod(state / "agent.key", 0o600)
    cfg = tmp_path / "agent.toml"
    cfg.write_text(f'[agent]\nid = "agent-1"\nstate_dir = "{state}"\n'
                   f'[collector]\nurl = "{collector.url}"\nbackoff_initial_s = 0.05\n'
                   "backoff_max_s = 0.1\n")
    agent = Agent(agent_config.load(cfg))

    def tick(n: int) -> None:
        t = time.time_ns() - 3600 * 10**9 + n * MIN_NS
        agent.buffer.append([(SRC, Reading(POWER, 100.0 + n, t))])
        agent.seal()

    def ship() -> bool:
        async def go() -> bool:
            shipper = make_shipper(agent.buffer, agent.cfg, agent.signer.acknowledged)
            assert shipper is not None
            try:
                return await shipper.ship_pending()
            finally:
                await shipper.close()
        return asyncio.run(go())

    tick(1)
    assert ship()
    assert main(["agent", "key", "rotate", "-c", str(cfg)]) == 0
    tick(2)  # batch 2 announces the new key; the agent switches once it is committed
    retired = state / "agent.key.retired-2"
    assert retired.exists()  # not acknowledged yet
    with capture_logs() as logs:
        assert ship()
        tick(3)
        assert ship()
    assert not retired.exists()
    deleted = [e for e in logs if e["event"].startswith("retired agent key deleted")]
    assert len(deleted) == 1 and deleted[0]["file"] == "agent.key.retired-2"
    assert [b["seq"] for b in collector.store.batches("agent-1")] == [1, 2, 3]
    assert not list(state.glob("agent.key.retired-*"))
    agent.buffer.close()
