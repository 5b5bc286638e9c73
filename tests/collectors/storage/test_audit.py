"""The audit trail (issue 14, item 2): a real `dcmeter collector serve` process driven over
HTTP, and the `collector token` and `collector enroll` commands as processes; every audit
line is read back from their output, exactly, and no secret appears anywhere."""

from __future__ import annotations

import base64
import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import ROOT, SITE_TOML, free_port
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from dcmeter.agent import pubkey, wire
from dcmeter.agent.samples import MetricSpec, SourceInfo
from dcmeter.agent.wire import GENESIS, Batch, ClockStatus, MetricEntry
from dcmeter.collectors.evaluation.jsonl import parse_rfc3339

AUDIT = "dcmeter.collector.audit"
SITE = SITE_TOML.replace('"meter-it"', '"bmc-1"').replace('"meter-total"', '"bmc-1"') \
    + '[ai]\nservers = ["bmc-1"]\n'
START = "2026-06-01T00:00:00Z"
T0 = parse_rfc3339(START)
BMC = SourceInfo("bmc-1", "ipmi", "127.0.0.1:623", {"point": "it_input", "kind": "compute"})
PDU = SourceInfo("pdu-2", "snmp", "127.0.0.1:161", {"point": "it_pdu", "kind": "pdu"})
POWER = MetricEntry(MetricSpec("power_w", "W"))
CT = {"content-type": "application/x-msgpack"}
BOGUS = "dcm_" + "x" * 43  # a well-formed token no store holds
RUN = {"start": "2026-06-01T00:01:40Z", "end": "2026-06-01T00:06:40Z", "phase": "infer",
       "model": "resnet-50", "repetition": 1, "flops": 1.8e13, "precision": "fp16",
       "quality": 0.77, "exit_status": 0}


def dcmeter(*argv: str) -> subprocess.CompletedProcess[str]:
    """Run `dcmeter ARGV` as a process; its output as text."""
    return subprocess.run([sys.executable, "-m", "dcmeter", *argv], capture_output=True,
                          text=True, cwd=ROOT, timeout=120)


def audit_lines(text: str) -> list[dict[str, Any]]:
    """The audit lines among JSON log lines (other lines ignored)."""
    out = []
    for line in text.splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and entry.get("logger") == AUDIT:
            out.append(entry)
    return out


def only(lines: list[dict[str, Any]], event: str, **match: Any) -> dict[str, Any]:
    """The one line of `event` whose fields include `match`."""
    found = [e for e in lines if e["event"] == event
             and all(e.get(k) == v for k, v in match.items())]
    assert len(found) == 1, (event, match, lines)
    return found[0]


def secret(key: Ed25519PrivateKey) -> str:
    """The private key's raw bytes in base64: never to be seen in a log."""
    raw = key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                            serialization.NoEncryption())
    return base64.b64encode(raw).decode()


@dataclass
class Site:
    """A collector's folder: config, keys_dir, and where its process writes its log."""

    cfg: Path
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@pytest.fixture
def site(tmp_path: Path, store_location: Callable[[str], Path | str]) -> Site:
    """A collector config with keys_dir, an AI site file and a store on `--store`."""
    (tmp_path / "site.toml").write_text(SITE)
    port = free_port()
    cfg = tmp_path / "collector.toml"
    cfg.write_text(f'[collector]\nhost = "127.0.0.1"\nport = {port}\n'
                   f'store = "{store_location("c")}"\nsite = "site.toml"\nkeys_dir = "keys"\n')
    return Site(cfg, port, tmp_path / "collector.log")


@pytest.fixture
def serving(site: Site) -> Iterator[subprocess.Popen[bytes]]:
    """`dcmeter collector serve` as a process, its stdout and stderr in `site.log`."""
    with site.log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "dcmeter", "collector", "serve", "-c",
                                 str(site.cfg)], stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, site.log.read_text()[-3000:]
            try:
                if httpx.get(f"{site.url}/api/v1/health").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "collector did not start"
            time.sleep(0.1)
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)


def power_batch(agent: str, source: SourceInfo, seq: int, prev: bytes,
                next_key: bytes | None = None) -> Batch:
    """`source`'s power every 10 s over 2100 s from T0 (1200 W)."""
    ts = [int((T0 + 10.0 * i) * 1e9) for i in range(211)]
    arrays = wire.pack_arrays(ts, [0] * len(ts), [0] * len(ts), [1200.0] * len(ts))
    if seq > 1:  # later batches: one sample past the first's, so none repeats
        ts = [int((T0 + 2100 + seq) * 1e9)]
        arrays = wire.pack_arrays(ts, [0], [0], [1200.0])
    return Batch(agent, seq, prev, ts[-1], ClockStatus(synced=True), [source], [POWER],
                 *arrays, next_key=next_key)


def ship(url: str, batch: Batch, key: Ed25519PrivateKey) -> bytes:
    """Post a batch, which must be stored; its body's hash (the next batch's prev)."""
    body = wire.encode_body(batch)
    r = httpx.post(f"{url}/api/v1/batches", content=wire.envelope(body, key), headers=CT)
    assert r.status_code == 200 and r.json()["status"] == "stored", r.text
    return wire.batch_hash(body)


def test_token_and_enroll_commands_print_their_audit_lines(site: Site) -> None:
    key = Ed25519PrivateKey.generate()
    made = dcmeter("collector", "token", "create", "-c", str(site.cfg), "--role", "reader",
                   "--name", "ops-read")
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip()
    assert made.stdout == token + "\n"  # stdout: the token alone, so $(…) still works
    (line,) = audit_lines(made.stderr)
    assert {k: line[k] for k in ("event", "token_name", "role", "level")} == {
        "event": "token created", "token_name": "ops-read", "role": "reader", "level": "info"}
    assert line["by"] and token not in made.stderr

    gone = dcmeter("collector", "token", "revoke", "-c", str(site.cfg), "ops-read")
    assert gone.returncode == 0, gone.stderr
    (line,) = audit_lines(gone.stderr + gone.stdout)
    assert (line["event"], line["token_name"]) == ("token revoked", "ops-read")
    # Nothing logged for a refusal that changed nothing.
    again = dcmeter("collector", "token", "revoke", "-c", str(site.cfg), "ops-read")
    assert again.returncode == 1 and audit_lines(again.stderr + again.stdout) == []

    pub = pubkey.public_text(key.public_key())
    enrolled = dcmeter("collector", "enroll", "-c", str(site.cfg), "--agent", "agent-9",
                       "--key", pub)
    assert enrolled.returncode == 0, enrolled.stderr
    (line,) = audit_lines(enrolled.stderr)
    assert {k: line[k] for k in ("event", "agent", "key", "from_seq", "via", "replaced")} == {
        "event": "agent enrolled", "agent": "agent-9", "key": pubkey.fingerprint(key.public_key()),
        "from_seq": None, "via": "enroll_command", "replaced": None}
    assert line["file"].endswith("keys/agent-9.pub")
    assert secret(key) not in enrolled.stderr + enrolled.stdout


def test_the_collector_log_holds_every_act_once_and_no_secret(
    site: Site, serving: subprocess.Popen[bytes]
) -> None:
    one, two, three = (Ed25519PrivateKey.generate() for _ in range(3))
    # Enrolled while the collector runs: it reads keys_dir again at the first unknown agent.
    for agent, key in (("agent-1", one), ("agent-2", two)):
        r = dcmeter("collector", "enroll", "-c", str(site.cfg), "--agent", agent,
                    "--key", pubkey.public_text(key.public_key()))
        assert r.returncode == 0, r.stderr
    tokens = {}
    for role, name in (("engineer", "eng-1"), ("reader", "read-1")):
        r = dcmeter("collector", "token", "create", "-c", str(site.cfg), "--role", role,
                    "--name", name)
        assert r.returncode == 0, r.stderr
        tokens[role] = r.stdout.strip()

    prev = ship(site.url, power_batch("agent-1", BMC, 1, GENESIS), one)
    # Batch 2 announces agent-1's next key; batch 3 is signed with it.
    nxt = three.public_key().public_bytes(serialization.Encoding.Raw,
                                          serialization.PublicFormat.Raw)
    prev = ship(site.url, power_batch("agent-1", BMC, 2, prev, next_key=nxt), one)
    ship(site.url, power_batch("agent-1", BMC, 3, prev), three)
    # agent-2's first batch: within 5 s of agent-1's reload it may be refused once.
    deadline = time.monotonic() + 60
    body = wire.encode_body(power_batch("agent-2", PDU, 1, GENESIS))
    while (r := httpx.post(f"{site.url}/api/v1/batches", content=wire.envelope(body, two),
                           headers=CT)).status_code == 401:
        assert time.monotonic() < deadline, r.text
        time.sleep(0.5)
    assert r.status_code == 200, r.text

    eng = httpx.Client(base_url=f"{site.url}/api/v1", timeout=120,
                       headers={"Authorization": f"Bearer {tokens['engineer']}"})
    with eng:
        w = eng.post("/windows", json={"kind": "ai", "start": START, "note": "resnet"})
        assert w.status_code == 201, w.text
        wid = w.json()["id"]
        assert eng.post(f"/windows/{wid}/runs", json=RUN).status_code == 201
        assert eng.post(f"/windows/{wid}/runs", json=RUN).status_code == 200
        clash = eng.post(f"/windows/{wid}/runs", json={**RUN, "flops": 2e13})
        assert clash.status_code == 409
        stop = eng.post(f"/windows/{wid}/stop", json={"end": "2026-06-01T00:35:00Z"})
        assert stop.status_code == 200 and stop.json()["closed_by"] == "eng-1", stop.text
        again = eng.post(f"/windows/{wid}/reevaluate", json={"reason": "audit test"})
        assert again.status_code == 201, again.text
        moved = eng.post("/sources/pdu-2/owner", json={"agent": "agent-1", "reason": "rack 7"})
        assert moved.status_code == 200, moved.text
        result = eng.get(f"/windows/{wid}").json()
        assert result["window"]["closed_by"] == "eng-1"
        assert result["window"]["opened_by"] == "eng-1"
        en = eng.get(f"/windows/{wid}/report?lang=en").text
        zh = eng.get(f"/windows/{wid}/report?lang=zh").text
        assert "<td>Stopped by</td><td>eng-1</td>" in en.replace("\n", "")
        assert "<td>停止人</td><td>eng-1</td>" in zh.replace("\n", "")

    with httpx.Client(base_url=f"{site.url}/api/v1", timeout=60) as anyone:
        for _ in range(50):
            r = anyone.get("/windows", headers={"Authorization": f"Bearer {BOGUS}"})
            assert r.status_code == 401
        assert anyone.get("/windows").status_code == 401
        weak = anyone.post("/windows", json={"kind": "ai"},
                           headers={"Authorization": f"Bearer {tokens['reader']}"})
        assert weak.status_code == 403

    serving.send_signal(signal.SIGTERM)
    assert serving.wait(60) == 0
    text = site.log.read_text()
    lines = audit_lines(text)

    for agent, key, via in (("agent-1", one, "reload"), ("agent-2", two, "reload")):
        got = only(lines, "agent enrolled", agent=agent, key=pubkey.fingerprint(key.public_key()))
        assert (got["from_seq"], got["via"], got["by"]) == (1, via, "collector")
    got = only(lines, "agent key rotated", agent="agent-1")
    assert (got["from_seq"], got["key"], got["by"], got["batch"]) == (
        3, pubkey.fingerprint(three.public_key()), "agent-1", "stored")
    for source, agent in (("bmc-1", "agent-1"), ("pdu-2", "agent-2")):
        got = only(lines, "source bound", source=source)
        assert (got["agent"], got["via"], got["by"]) == (agent, "first_delivery", agent)
    got = only(lines, "source owner changed", source="pdu-2")
    assert (got["agent"], got["previous"], got["via"], got["by"], got["reason"],
            got["client"]) == ("agent-1", "agent-2", "moved", "eng-1", "rack 7", "127.0.0.1")

    got = only(lines, "window opened", window=wid)
    assert (got["kind"], got["start"], got["scope"], got["note"], got["by"],
            got["client"]) == ("ai", START, None, "resnet", "eng-1", "127.0.0.1")
    got = only(lines, "window stopped", window=wid)
    assert (got["start"], got["end"], got["by"], got["client"]) == (
        START, "2026-06-01T00:35:00Z", "eng-1", "127.0.0.1")
    got = only(lines, "window re-evaluated", window=wid)
    assert (got["revision"], got["reason"], got["by"]) == (2, "audit test", "eng-1")
    runs = [e for e in lines if e["event"] == "run posted"]
    assert [(e["window"], e["phase"], e["model"], e["repetition"], e["status"], e["by"])
            for e in runs] == [(wid, "infer", "resnet-50", 1, s, "eng-1")
                               for s in ("stored", "duplicate", "conflict")]

    # 50 refusals of one kind from one client: one line, the rest counted (at the latest in
    # the line written at stop); together they account for every refusal.
    bogus = [e for e in lines if e["event"] == "request refused"
             and e["reason"] == "unknown_token"]
    assert 1 <= len(bogus) <= 3, bogus
    first = bogus[0]
    assert (first["status"], first["method"], first["path"], first["client"],
            first["left_out"]) == (401, "GET", "/api/v1/windows", "127.0.0.1", 0)
    assert sum(e["left_out"] + (0 if e.get("final") else 1) for e in bogus) == 50
    assert bogus[-1].get("final") is True and bogus[-1]["left_out"] >= 1
    got = only(lines, "request refused", reason="no_token")
    assert (got["status"], got["left_out"]) == (401, 0)
    got = only(lines, "request refused", reason="role_too_weak")
    assert (got["status"], got["method"], got["by"]) == (403, "POST", "read-1")

    assert all(e["logger"] == AUDIT and e["timestamp"] for e in lines)
    for value in (*tokens.values(), BOGUS, secret(one), secret(two), secret(three)):
        assert value not in text

