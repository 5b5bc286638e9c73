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


def _start_stable(
    tmp_path: Path, base_port: int
) -> tuple[subprocess.Popen[str], Path, Path, Path]:
    """Start `dcmeter simulate --base-port` writing its agent config, site file and ports."""
    cfg = tmp_path / "sim.toml"
    cfg.write_text(SIM_TOML)
    agent_cfg, site, ports = tmp_path / "agent.toml", tmp_path / "site.toml", tmp_path / "p.json"
    for path in (agent_cfg, site, ports):
        path.unlink(missing_ok=True)
    proc = subprocess.Popen(
        [sys.executable, "-m", "dcmeter", "simulate", "-c", str(cfg), "--base-port",
         str(base_port), "--agent-config", str(agent_cfg), "--site-file", str(site),
         "--ports-file", str(ports)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=_env(),
    )
    deadline = time.monotonic() + 60
    while not (agent_cfg.exists() and site.exists() and ports.exists()):
        assert proc.poll() is None, proc.communicate()[0]
        assert time.monotonic() < deadline, "simulate did not come up"
        time.sleep(0.1)
    while "devices on" not in (proc.stdout.readline() if proc.stdout else "devices on"):
        assert time.monotonic() < deadline, "simulate did not say it is up"
    return proc, agent_cfg, site, ports


def _stop(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=60)


def _free_block(count: int) -> int:
    """A base port whose `count` ports are free for TCP and UDP a moment ago."""
    import socket

    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            base = int(s.getsockname()[1])
        if base + count > 65535:
            continue
        try:
            for port in range(base, base + count):
                for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
                    with socket.socket(type=kind) as probe:
                        probe.bind(("127.0.0.1", port))
        except OSError:
            continue
        return base
    raise AssertionError("no block of free ports")


def test_written_agent_config_and_site_file_run_as_is_on_stable_ports(tmp_path: Path) -> None:
    from dcmeter.agent import config as agent_config
    from dcmeter.collectors.evaluation.site import load_site

    devices = 2 + 3 + 1 + 1  # two meters, three BMCs, one switch, one storage system
    base = _free_block(devices)
    expected = (
        [("meter-total", "modbus"), ("meter-it", "modbus")]
        + [(f"server-{i:04d}", "ipmi") for i in (1, 2, 3)]
        + [("switch-001", "snmp"), ("storage-001", "snmp")]
    )
    proc, agent_cfg, site_file, ports_file = _start_stable(tmp_path, base)
    try:
        rows = json.loads(ports_file.read_text())
        assert [(r["name"], r["protocol"], r["port"]) for r in rows] == [
            (name, protocol, base + i) for i, (name, protocol) in enumerate(expected)
        ]
        cfg = agent_config.load(agent_cfg)  # what `agent run -c` loads
        assert cfg.agent.id == "sim-agent" and cfg.collector is not None
        assert cfg.agent.state_dir == tmp_path / "agent.toml.state"
        r = subprocess.run(
            [sys.executable, "-m", "dcmeter", "agent", "once", "--json", "-c", str(agent_cfg)],
            capture_output=True, text=True, env=_env(), timeout=120,
        )
        assert r.returncode == 0, r.stderr
        samples = [json.loads(line) for line in r.stdout.splitlines()]
        assert {s["source"] for s in samples} == {name for name, _ in expected}
        it_point = next(s["labels"]["point"] for s in samples if s["source"] == "meter-it")
        site = load_site(site_file)
        assert site.energy.total == ["meter-total"] and site.energy.it == ["meter-it"]
        assert site.energy.green == []
        assert site.energy.it_point == it_point == "it_pdu"
        # A second simulator on the same ports is one clear error naming the first device.
        taken = subprocess.run(
            [sys.executable, "-m", "dcmeter", "simulate", "-c", str(tmp_path / "sim.toml"),
             "--base-port", str(base)],
            capture_output=True, text=True, env=_env(), timeout=60,
        )
        assert taken.returncode == 2
        assert f"meter-total (modbus) cannot listen on 127.0.0.1 port {base}/tcp" in taken.stderr
        assert "--base-port" in taken.stderr and "Traceback" not in taken.stderr
    finally:
        _stop(proc)
    first = ports_file.read_text()
    proc, agent_cfg, _, ports_file = _start_stable(tmp_path, base)  # restarted: same ports
    try:
        assert ports_file.read_text() == first
    finally:
        _stop(proc)


def _buffered_sources(buffer: Path) -> int:
    """How many sources the agent's buffer knows (0 while it does not exist yet)."""
    import sqlite3

    if not buffer.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{buffer}?mode=ro", uri=True, timeout=5) as db:
            return int(db.execute("SELECT count(*) FROM sources").fetchone()[0])
    except sqlite3.Error:
        return 0


def test_agent_run_accepts_the_written_config(tmp_path: Path) -> None:
    proc, agent_cfg, _, _ = _start_stable(tmp_path, _free_block(7))
    try:
        agent = subprocess.Popen(
            [sys.executable, "-m", "dcmeter", "agent", "run", "-c", str(agent_cfg)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=_env(),
        )
        try:
            # The agent buffers in the state dir the config names: every device's samples.
            buffer = tmp_path / "agent.toml.state" / "buffer.sqlite"
            deadline = time.monotonic() + 120
            while _buffered_sources(buffer) < 7:
                assert agent.poll() is None, agent.communicate()[0]
                assert time.monotonic() < deadline, "the agent buffered no tick of every device"
                time.sleep(0.5)
        finally:
            agent.send_signal(signal.SIGTERM)
            out = agent.communicate(timeout=60)[0]
        assert agent.returncode == 0, out
        assert "configuration error" not in out
    finally:
        _stop(proc)


def test_example_site_file_matches_the_simulated_meters() -> None:
    from dcmeter.collectors.evaluation.site import load_site
    from dcmeter.sim.serve import IT_POINT

    site = load_site(ROOT / "config" / "site.toml")
    assert (site.energy.total, site.energy.it) == (["meter-total"], ["meter-it"])
    assert site.energy.it_point == IT_POINT == "it_pdu"
