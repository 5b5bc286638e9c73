"""Agent key rotation against a real collector: every batch stays verifiable, old and new key."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import httpx
import pytest
from conftest import SITE_TOML, Collector, serve
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from dcmeter.agent import config as agent_config
from dcmeter.agent import keys, pubkey, wire
from dcmeter.agent.buffer import envelope_body
from dcmeter.agent.daemon import Agent, make_shipper
from dcmeter.agent.rotation import Signer, start_rotation
from dcmeter.agent.samples import MetricSpec, Reading, SourceInfo
from dcmeter.agent.wire import GENESIS, Batch, ClockStatus, pack_arrays
from dcmeter.cli.main import main
from dcmeter.collectors.commands import cli as collector_cli
from dcmeter.collectors.intake import ingest as ingest_module
from dcmeter.collectors.intake.agent_keys import verify_stored

SRC = SourceInfo("meter-total", "modbus", "127.0.0.1:502/1", {"point": "total"})
POWER = MetricSpec("power_w", "W")
MSGPACK = {"content-type": "application/x-msgpack"}


def pem(key: Ed25519PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def make_agent(tmp: Path, url: str, key: Ed25519PrivateKey, agent_id: str = "agent-1") -> Agent:
    """A real agent (daemon object) with no sources; the test appends readings itself."""
    state = tmp / "state"
    state.mkdir(exist_ok=True)
    (state / "agent.key").write_bytes(pem(key))
    os.chmod(state / "agent.key", 0o600)
    cfg = tmp / "agent.toml"
    cfg.write_text(
        f'[agent]\nid = "{agent_id}"\nstate_dir = "{state}"\n'
        f'[collector]\nurl = "{url}"\nbackoff_initial_s = 0.05\nbackoff_max_s = 0.1\n'
    )
    return Agent(agent_config.load(cfg))


def tick(agent: Agent, t: int) -> None:
    """Commit three readings and seal them, as a tick does."""
    agent.buffer.append(
        [(SRC, Reading(POWER, float(t * 10 + i), (t + 1) * 10**9 + i)) for i in range(3)]
    )
    agent.seal()


def ship(agent: Agent) -> bool:
    """Ship what is pending with a fresh shipper (an httpx client lives on one event loop)."""

    async def go() -> bool:
        shipper = make_shipper(agent.buffer, agent.cfg)
        assert shipper is not None
        try:
            return await shipper.ship_pending()
        finally:
            await shipper.close()

    return asyncio.run(go())


def batch(
    seq: int, prev: bytes, agent: str = "agent-1", next_key: bytes | None = None
) -> bytes:
    """An encoded body with one sample; `next_key` announces a rotation in it."""
    return wire.encode_body(
        Batch(agent, seq, prev, 10**18, ClockStatus(), [SRC], [wire.MetricEntry(POWER)],
              *pack_arrays([seq * 10**9], [0], [0], [1.0]), next_key=next_key)
    )


def test_rotation_mid_stream_keeps_every_batch_verifiable(
    collector: Collector, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old = collector.keys["agent-1"]
    agent = make_agent(tmp_path, collector.url, old)
    for t in range(3):
        tick(agent, t)
    assert ship(agent)
    state = agent.cfg.agent.state_dir
    assert main(["agent", "key", "rotate", "-c", str(agent.cfg.path)]) == 0
    new_text = capsys.readouterr().out.strip().splitlines()[0]
    assert (state / "agent.key.next").exists()
    assert agent.signer.key.public_key() == old.public_key()  # not switched before announcing
    for t in range(3, 6):
        tick(agent, t)
    assert ship(agent)
    # Batch 4 announced the key and was signed by the old one; 5 and 6 by the new one.
    assert pubkey.public_text(agent.signer.key.public_key()) == new_text
    assert not (state / "agent.key.next").exists()
    assert keys.load(state / "agent.key.retired-4").public_key() == old.public_key()
    assert agent.buffer.counts()["batches"] == 0
    assert agent.buffer.counts()["rejected"] == 0
    stored = collector.store.batches("agent-1")
    assert [b["seq"] for b in stored] == [1, 2, 3, 4, 5, 6]
    assert {b["chain"] for b in stored} == {"ok"}
    rows = collector.store.agent_keys("agent-1")
    assert [(r[1], r[2], r[5]) for r in rows] == [
        (pubkey.public_text(old.public_key()), 1, "enrolled"), (new_text, 5, "rotation"),
    ]
    audit = verify_stored(collector.store)
    assert (audit.verified, audit.failed, audit.faults) == (6, 0, [])
    agent.buffer.close()

    # The command an auditor runs, on a config naming the same store.
    cfg = tmp_path / "collector.toml"
    (tmp_path / "site.toml").write_text(SITE_TOML)
    cfg.write_text(
        f'[collector]\nstore = "collector.sqlite"\nsite = "site.toml"\n[[agents]]\n'
        f'id = "agent-1"\npublic_key = "{pubkey.public_text(old.public_key())}"\n'
    )
    assert main(["collector", "verify", "-c", str(cfg)]) == 0
    assert "6 batches verified, 0 failed" in capsys.readouterr().out

    # A stored batch whose bytes were altered no longer verifies: exit 1.
    with collector.store._tx() as db:  # tampering needs a back door on purpose
        raw = db.execute("SELECT raw FROM batches WHERE seq = 5").fetchone()[0]
        body, _ = wire.open_envelope(raw)
        forged = wire.envelope(body, Ed25519PrivateKey.generate())
        db.execute("UPDATE batches SET raw = ? WHERE seq = 5", (forged,))
    assert main(["collector", "verify", "-c", str(cfg), "--agent", "agent-1"]) == 1
    out = capsys.readouterr().out
    assert "FAILED agent agent-1 seq 5" in out and "5 batches verified, 1 failed" in out


def test_new_key_before_the_statement_and_statements_by_unknown_keys_are_refused(
    collector: Collector,
) -> None:
    old, new, stranger = collector.keys["agent-1"], Ed25519PrivateKey.generate(), (
        Ed25519PrivateKey.generate())
    url = collector.url + "/api/v1/batches"
    b1 = batch(1, GENESIS)
    with httpx.Client() as http:
        assert http.post(url, content=wire.envelope(b1, old), headers=MSGPACK).status_code == 200
        b2 = batch(2, wire.batch_hash(b1))
        # Signed by the next key before any statement announced it.
        r = http.post(url, content=wire.envelope(b2, new), headers=MSGPACK)
        assert (r.status_code, r.json()["reason"]) == (403, "bad_signature")
        # A statement signed by a key the collector does not hold, on a batch signed by it.
        r = http.post(url, content=wire.envelope(b2, stranger, new.public_key()),
                      headers=MSGPACK)
        assert r.status_code == 403
        # A valid batch whose rotation statement is signed by another key.
        good = wire.envelope(b2, old, new.public_key())
        env = wire.open_signed(good)
        forged_rot = wire.envelope(b2, stranger, new.public_key())
        import msgpack

        mixed = msgpack.packb(
            {"body": env[0], "sig": env[1],
             "rotate": msgpack.unpackb(forged_rot)["rotate"]}, use_bin_type=True,
        )
        r = http.post(url, content=mixed, headers=MSGPACK)
        assert r.status_code == 403 and "rotation" in r.json()["detail"]
        assert len(collector.store.agent_keys("agent-1")) == 1
        assert [b["seq"] for b in collector.store.batches("agent-1")] == [1]
        # The genuine statement is accepted; then the new key signs, the old one no longer.
        assert http.post(url, content=good, headers=MSGPACK).status_code == 200
        b3 = batch(3, wire.batch_hash(b2))
        r = http.post(url, content=wire.envelope(b3, old), headers=MSGPACK)
        assert r.status_code == 403
        assert http.post(url, content=wire.envelope(b3, new), headers=MSGPACK).status_code == 200
        # A retry of the statement batch is a duplicate, still verified by the old key.
        r = http.post(url, content=good, headers=MSGPACK)
        assert (r.status_code, r.json()["status"]) == (200, "duplicate")
    assert verify_stored(collector.store).verified == 3


def test_a_crash_after_sealing_the_statement_completes_the_switch(tmp_path: Path) -> None:
    old = keys.load_or_create(tmp_path)
    nxt, made = start_rotation(tmp_path)
    assert made and not start_rotation(tmp_path)[1]  # a second rotate keeps the pending key
    signer = Signer(tmp_path)
    announced = signer.next_key()
    assert announced == nxt.public_key().public_bytes_raw()
    # Sealed with the key in its body; the process dies before sealed(7).
    raw = signer.envelope(batch(7, GENESIS, next_key=announced))
    assert wire.decode_body(envelope_body(raw)).next_key == announced
    after = Signer(tmp_path, lambda: [(7, raw)])
    assert after.key.public_key() == nxt.public_key()
    assert keys.load(tmp_path / "agent.key.retired-7").public_key() == old.public_key()
    # Without the announcement in the buffer the rotation is still pending: announced again.
    again = tmp_path / "again"
    again.mkdir()
    keys.load_or_create(again)
    start_rotation(again)
    assert Signer(again, lambda: [(7, wire.envelope(batch(7, GENESIS), old))]).next_key()
    # An older agent's buffer: the statement in the envelope completes the switch too.
    legacy = tmp_path / "legacy"
    legacy.mkdir()
    legacy_old = keys.load_or_create(legacy)
    legacy_next, _ = start_rotation(legacy)
    env = wire.envelope(batch(3, GENESIS), legacy_old, legacy_next.public_key())
    assert Signer(legacy, lambda: [(3, env)]).key.public_key() == legacy_next.public_key()


def test_enrol_without_restart(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ingest_module, "RELOAD_EVERY_S", 0.2)
    (tmp_path / "site.toml").write_text(SITE_TOML)
    cfg = tmp_path / "collector.toml"
    cfg.write_text('[collector]\nstore = "c.sqlite"\nsite = "site.toml"\nkeys_dir = "agents"\n'
                   "auth = false\n")
    server, store = collector_cli.build(cfg)
    key = Ed25519PrivateKey.generate()
    body = batch(1, GENESIS, "rack-9")
    try:
        with serve(server.config.app) as url, httpx.Client() as http:
            post = f"{url}/api/v1/batches"
            assert http.post(post, content=wire.envelope(body, key),
                             headers=MSGPACK).status_code == 401
            pub = tmp_path / "rack-9.pub"
            pub.write_text(pubkey.public_text(key.public_key()) + "\n")
            args = ["collector", "enroll", "-c", str(cfg), "--agent", "rack-9"]
            assert main([*args, "--key-file", str(pub)]) == 0
            assert pubkey.fingerprint(key.public_key()) in capsys.readouterr().out
            assert (tmp_path / "agents" / "rack-9.pub").exists()
            other = pubkey.public_text(Ed25519PrivateKey.generate().public_key())
            assert main([*args, "--key", other]) == 1
            assert "--replace" in capsys.readouterr().err
            assert main([*args, "--key", "ed25519:nope"]) == 2
            assert "ed25519:BASE64" in capsys.readouterr().err
            import time

            time.sleep(0.3)
            r = http.post(post, content=wire.envelope(body, key), headers=MSGPACK)
            assert r.status_code == 200, r.text
    finally:
        store.close()
