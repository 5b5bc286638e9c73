"""A meter that serves only part of its profile: the refused block fails alone, logged once.

The simulated SDM630 here lacks frequency (input registers 70..71) and export energy
(74..75): the profile's block 70..75 is refused with exception 2. Debian's mbpoll confirms the
served map independently; the source still emits power and import energy.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from conftest import ROOT
from structlog.testing import capture_logs

from dcmeter.agent.sources.modbus import ModbusConfig, ModbusSource
from dcmeter.agent.sources.modbus_profiles import PROFILES, RegisterConfig
from dcmeter.sim.loop import LoopThread
from dcmeter.sim.meters import SimMeter
from dcmeter.sim.serve import sources_toml

VALUES = {
    "power_w": 1234.5,
    "frequency_hz": 50.0,
    "energy_import_kwh": 4321.25,
    "energy_export_kwh": 7.5,
}
MISSING = ("frequency_hz", "energy_export_kwh")
PARTIAL: list[RegisterConfig] = [
    r for r in PROFILES["eastron_sdm630"] if r.metric not in MISSING
]
FAILED_GROUPS = {"input registers 70..71": ["frequency_hz"],
                 "input registers 74..75": ["energy_export_kwh"]}


def source(port: int) -> ModbusSource:
    """An SDM630 source on 127.0.0.1:port."""
    return ModbusConfig.model_validate(
        {"type": "modbus", "id": "sdm", "host": "127.0.0.1", "port": port,
         "profile": "eastron_sdm630", "timeout_s": 2.0}
    ).build()


def mbpoll(port: int, *args: str) -> subprocess.CompletedProcess[str]:
    """Poll 127.0.0.1:port once with mbpoll (float32, high word first, 1-based references)."""
    tool = shutil.which("mbpoll")
    assert tool is not None, "mbpoll is not installed (Debian package mbpoll)"
    return subprocess.run(
        [tool, "-m", "tcp", "-p", str(port), "-a", "1", "-1", "-o", "2", "-t", "3:float", "-B",
         *args, "127.0.0.1"],
        capture_output=True, text=True, timeout=30,
    )


def test_served_map_is_what_mbpoll_sees() -> None:
    with LoopThread() as loop:
        port = loop.serve(SimMeter(PARTIAL, lambda: VALUES))
        block = mbpoll(port, "-r", "71", "-c", "3")  # the profile's block 70..75
        energy = mbpoll(port, "-r", "73")
        power = mbpoll(port, "-0", "-r", str(0x34))
    assert block.returncode != 0
    assert "illegal data address" in (block.stdout + block.stderr).lower()
    assert re.findall(r"^\[(\d+)\]:\s+(\S+)$", energy.stdout, re.MULTILINE) == [("73", "4321.25")]
    assert re.findall(r"^\[(\d+)\]:\s+(\S+)$", power.stdout, re.MULTILINE) == [("52", "1234.5")]


def test_refused_block_fails_alone_logged_once_and_recovers() -> None:
    async def scenario() -> tuple[list[dict[str, float]], list[dict[str, Any]], int]:
        meter = SimMeter(PARTIAL, lambda: VALUES)
        port = await meter.start()
        src = source(port)
        reads: list[dict[str, float]] = []
        try:
            with capture_logs() as logs:
                for _ in range(3):
                    reads.append({r.metric.name: r.value for r in await src.read()})
                requests = len(src._requests)
                await meter.stop()
                full = SimMeter("eastron_sdm630", lambda: VALUES)
                await full.start(port=port)
                try:
                    deadline = time.monotonic() + 60
                    while True:  # the first read after the restart may meet the old socket
                        try:
                            reads.append({r.metric.name: r.value for r in await src.read()})
                            break
                        except Exception:
                            if time.monotonic() > deadline:
                                raise
                            await asyncio.sleep(0.2)
                    reads.append({r.metric.name: r.value for r in await src.read()})
                finally:
                    await full.stop()
        finally:
            await src.close()
        return reads, logs, requests

    reads, logs, requests = asyncio.run(scenario())
    for partial in reads[:3]:
        assert partial == {"power_w": 1234.5, "energy_import_kwh": 4321.25}
    assert reads[3] == reads[4] == VALUES  # float32 holds these values exactly
    # power 52..53 alone, then 70..75 split into its three registers, kept split.
    assert requests == 4
    failed = [e for e in logs if e["event"] == "metric group failed"]
    assert {e["registers"]: e["metrics"] for e in failed} == FAILED_GROUPS
    assert len(failed) == 2  # once each over three reads
    assert all("exception code 2 (illegal data address)" in e["reason"] for e in failed)
    split = [e for e in logs if e["event"].startswith("register block refused")]
    assert [e["registers"] for e in split] == ["input registers 70..75"]
    recovered = [e["registers"] for e in logs if e["event"] == "metric group recovered"]
    assert sorted(recovered) == sorted(FAILED_GROUPS)


def test_agent_once_emits_the_rest_and_names_the_block(tmp_path: Path) -> None:
    with LoopThread() as loop:
        port = loop.serve(SimMeter(PARTIAL, lambda: VALUES))
        cfg = tmp_path / "agent.toml"
        cfg.write_text(
            f'[agent]\nid = "blocks"\nstate_dir = "{tmp_path / "state"}"\n\n'
            + sources_toml([{"id": "sdm", "type": "modbus", "host": "127.0.0.1", "port": port,
                             "profile": "eastron_sdm630", "timeout_s": 5.0}])
        )
        r = subprocess.run(
            [sys.executable, "-m", "dcmeter", "agent", "once", "--json", "-c", str(cfg)],
            capture_output=True, text=True, timeout=120,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
    # The target answered: a partly read meter is not a failed target (see docs/sources.md).
    assert r.returncode == 0, r.stderr
    samples = {s["metric"]: s["value"] for s in map(json.loads, r.stdout.splitlines())}
    assert samples == {"power_w": 1234.5, "energy_import_kwh": 4321.25}
    events = [json.loads(line) for line in r.stderr.splitlines() if line.startswith("{")]
    failed = [e for e in events if e["event"] == "metric group failed"]
    assert {e["registers"]: e["metrics"] for e in failed} == FAILED_GROUPS
    assert all(e["level"] == "warning" and e["source"] == "sdm" for e in failed)
    assert not [e for e in events if e["event"] == "target failed"]
