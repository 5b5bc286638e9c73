"""SIGKILL the agent at random moments while it polls, seals and ships: every sample arrives once.

After each kill the test reads what the dead agent had committed (unsealed samples and
sealed batches in its buffer). Everything ever committed must reach the collector, exactly
once, in an unbroken hash chain.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from conftest import ROOT, Collector, MeterThread
from cryptography.hazmat.primitives import serialization

from dcmeter.agent import wire
from dcmeter.agent.buffer import Buffer, envelope_body
from dcmeter.agent.shipper import Shipper

KILLS = 50
Key = tuple[str, str, int]  # (source, metric, ts_ns)


def committed(buffer: Path) -> set[Key]:
    """Every sample a stopped agent has committed: unsealed rows plus sealed batches."""
    db = sqlite3.connect(buffer)
    try:
        src = {i: json.loads(k)[0] for i, k in db.execute("SELECT idx, key FROM sources")}
        met = {i: json.loads(k)[0] for i, k in db.execute("SELECT idx, key FROM metrics")}
        keys = {(src[s], met[m], t) for t, s, m in db.execute("SELECT ts, src, met FROM samples")}
        for (raw,) in db.execute("SELECT raw FROM batches"):
            b = wire.decode_body(envelope_body(raw))
            keys |= {
                (b.sources[s].id, b.metrics[m].spec.name, t)
                for t, s, m in zip(b.ts, b.src, b.met, strict=True)
            }
        return keys
    finally:
        db.close()


def write_config(tmp: Path, c: Collector, ports: list[int]) -> Path:
    state = tmp / "state"
    state.mkdir()
    pem = c.keys["agent-1"].private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    (state / "agent.key").write_bytes(pem)
    os.chmod(state / "agent.key", 0o600)
    cfg = tmp / "agent.toml"
    cfg.write_text(
        f"""
[agent]
id = "agent-1"
interval_s = 1
state_dir = "{state}"
[collector]
url = "{c.url}"
backoff_initial_s = 0.05
backoff_max_s = 0.5
[[sources]]
id = "meter-total"
type = "modbus"
port = {ports[0]}
host = "127.0.0.1"
profile = "eastron_sdm630"
timeout_s = 0.5
[[sources]]
id = "meter-it"
type = "modbus"
host = "127.0.0.1"
port = {ports[1]}
profile = "schneider_pm5100"
timeout_s = 0.5
"""
    )
    return cfg


def test_sigkill_loses_and_duplicates_nothing(
    tmp_path: Path, collector: Collector, meters: MeterThread
) -> None:
    def values() -> dict[str, float]:
        t = time.time()
        return {"power_w": 1000.0 + t % 7, "energy_import_kwh": t / 3600,
                "energy_export_kwh": 0.0, "frequency_hz": 50.0}

    ports = [meters.add("eastron_sdm630", values), meters.add("schneider_pm5100", values)]
    cfg = write_config(tmp_path, collector, ports)
    # A slow collector widens the moments between sealing, sending and the acknowledgement,
    # so that kills land there too: stored but not acknowledged means sent again.
    collector.batch_delay_s[0] = 0.6
    buffer = tmp_path / "state" / "buffer.sqlite"
    rng = random.Random(20261122)
    seen: set[Key] = set()
    kills_with_pending = 0
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "dcmeter", "agent", "run", "-c", str(cfg)]
    for _ in range(KILLS):
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        time.sleep(rng.uniform(0.5, 2.5))
        proc.send_signal(signal.SIGKILL)
        _, err = proc.communicate(timeout=10)
        assert proc.returncode == -signal.SIGKILL, err.decode()[-2000:]
        left = committed(buffer)
        kills_with_pending += bool(left - seen)
        seen |= left

    # A last, clean run: stop with SIGTERM, then ship what it left with the agent's shipper.
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    # It runs at least 3 s and until the collector holds more than 100 samples (a deadline,
    # not a fixed time: on a loaded machine the kills above may leave little time to poll).
    started = time.monotonic()
    deadline = started + 120
    while len(collector.store.samples()) <= 100 or time.monotonic() - started < 3:
        assert proc.poll() is None, proc.communicate()[1].decode()[-2000:]
        assert time.monotonic() < deadline, "the agent stored no more than 100 samples"
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=15) == 0
    seen |= committed(buffer)
    buf = Buffer(buffer, "agent-1")
    shipper = Shipper(buf, collector.url)

    async def drain() -> bool:
        try:
            return await shipper.ship_pending()
        finally:
            await shipper.close()

    assert asyncio.run(drain())
    assert buf.counts() == {"samples": 0, "batches": 0, "rejected": 0, "dropped": 0}
    buf.close()

    stored = Counter((s, m, t) for s, m, t, _ in collector.store.samples())
    duplicated = [k for k, n in stored.items() if n > 1]
    assert not duplicated, f"{len(duplicated)} samples stored twice"
    missing = seen - set(stored)
    assert not missing, f"{len(missing)} committed samples never reached the collector"
    batches = collector.store.batches("agent-1")
    assert [b["seq"] for b in batches] == list(range(1, len(batches) + 1))
    assert {b["chain"] for b in batches} == {"ok"}
    assert len(stored) > 100  # the agent really polled between kills
    print(
        f"{KILLS} kills ({kills_with_pending} left unshipped samples behind): "
        f"{len(batches)} batches, {len(stored)} samples, each stored once"
    )
