"""`dcmeter simulate`: one process serving a whole site, read by the agent and independent clients."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

from conftest import ROOT

SIM_TOML = """
[simulate]
host = "127.0.0.1"

[site]
servers = 3
switches = 1
ports_per_switch = 3
storage = 1
"""


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT)}


def _start(tmp_path: Path) -> tuple[subprocess.Popen[str], list[dict[str, object]], Path]:
    cfg = tmp_path / "sim.toml"
    cfg.write_text(SIM_TOML)
    ports, agent_cfg = tmp_path / "ports.json", tmp_path / "agent.toml"
    proc = subprocess.Popen(
        [sys.executable, "-m", "dcmeter", "simulate", "-c", str(cfg),
         "--ports-file", str(ports), "--agent-config", str(agent_cfg)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=_env(),
    )
    deadline = time.monotonic() + 60
    while not (agent_cfg.exists() and ports.exists()):
        assert proc.poll() is None, proc.communicate()[0]
        assert time.monotonic() < deadline, "simulate did not come up"
        time.sleep(0.1)
    time.sleep(0.2)  # the files are written one after the other
    return proc, json.loads(ports.read_text()), agent_cfg


def test_simulated_site_is_read_by_every_source_and_by_independent_clients(tmp_path: Path) -> None:
    proc, ports, agent_cfg = _start(tmp_path)
    try:
        assert sorted(str(e["protocol"]) for e in ports) == ["ipmi"] * 3 + ["modbus"] * 2 + ["snmp"] * 2
        r = subprocess.run(
            [sys.executable, "-m", "dcmeter", "agent", "once", "--json", "-c", str(agent_cfg)],
            capture_output=True, text=True, env=_env(), timeout=120,
        )
        assert r.returncode == 0, r.stdout + r.stderr
        samples = [json.loads(line) for line in r.stdout.splitlines()]
        metrics: dict[str, set[str]] = defaultdict(set)
        for s in samples:
            metrics[s["source"]].add(s["metric"])
        assert {"energy_import_kwh", "power_w"} <= metrics["meter-total"]
        assert {"energy_import_kwh", "power_w"} <= metrics["meter-it"]
        for name in ("server-0001", "server-0002", "server-0003"):
            assert "power_w" in metrics[name]
        assert {"if_in_octets", "if_out_octets", "if_speed_bps"} <= metrics["switch-001"]
        assert "cpu_util_pct" in metrics["storage-001"]
        # Only the two ports aliased "uplink" are selected on the switch.
        ports_seen = {s["labels"]["if_name"] for s in samples if s["metric"] == "if_in_octets"}
        assert ports_seen == {"Eth1/1", "Eth1/2"}
        server_w = [s["value"] for s in samples if s["metric"] == "power_w" and s["source"].startswith("server-")]
        assert all(180 <= w <= 650 for w in server_w)
        it_w = next(s["value"] for s in samples if s["source"] == "meter-it" and s["metric"] == "power_w")
        # The IT meter sees the servers plus the switch and the storage system.
        assert sum(server_w) < it_w < sum(server_w) + 380 + 900 + 1

        bmc = next(e for e in ports if e["protocol"] == "ipmi")
        raw = subprocess.run(
            ["ipmitool", "-I", "lanplus", "-C", "3", "-H", "127.0.0.1", "-p", str(bmc["port"]),
             "-U", "admin", "-P", "secret", "raw", "0x2c", "0x02", "0xdc", "0x01", "0x00", "0x00"],
            capture_output=True, text=True, timeout=30,
        )
        assert raw.returncode == 0, raw.stderr
        data = bytes(int(x, 16) for x in raw.stdout.split())
        assert data[0] == 0xDC and 180 <= int.from_bytes(data[1:3], "little") <= 650
        switch = next(e for e in ports if e["name"] == "switch-001")
        walk = subprocess.run(
            ["snmpwalk", "-v2c", "-c", "public", "-On", f"127.0.0.1:{switch['port']}",
             "1.3.6.1.2.1.31.1.1.1.18"],
            capture_output=True, text=True, timeout=30,
        )
        assert walk.returncode == 0, walk.stderr
        assert walk.stdout.count('"uplink"') == 2 and walk.stdout.count('"server"') == 1
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out
    assert "7 devices" in out


def test_a_bad_simulate_file_is_one_clear_error(tmp_path: Path) -> None:
    cfg = tmp_path / "sim.toml"
    cfg.write_text("[site]\nservers = -1\n")
    r = subprocess.run(
        [sys.executable, "-m", "dcmeter", "simulate", "-c", str(cfg)],
        capture_output=True, text=True, env=_env(), timeout=60,
    )
    assert r.returncode == 2
    assert f"{cfg}: key site.servers: bad value -1" in r.stderr
    assert "Traceback" not in r.stderr
