"""The simulator's Redfish BMCs (sim/redfish.py) and metered PDUs (sim/pdu.py) against the real
`redfish` and `snmp` (role pdu) sources and against curl and net-snmp's snmpget.

The model of these tests, worked by hand. Two servers, idle 180 W, max 650 W, load
u(t) = base + amp·sin(ω(t − T0)), period 600 s (ω = 2π/600), read at t = T0 + 150 s, a quarter
period, where sin = 1 and ∫₀¹⁵⁰ sin(ωx) dx = (1 − cos(π/2))/ω = 600/(2π) = 300/π s:
  server-0001: base 0.5, amp 0.3: u = 0.8, P₁ = 180 + 470·0.8 = 556 W;
      ∫u = 75 + 0.3·300/π = 75 + 90/π s; E₁ = 180·150 + 470·(75 + 90/π) = 62250 + 42300/π J
  server-0002: base 0.4, amp 0.2: u = 0.6, P₂ = 180 + 470·0.6 = 462 W;
      ∫u = 60 + 60/π s; E₂ = 27000 + 470·(60 + 60/π) = 55200 + 28200/π J
One PDU (pdu-001, number 1) with both, pdu_loss_w = 40 W:
  inlet P = 556 + 462 + 40 = 1058 W -> rPDU2DeviceStatusPower round(105.8) = 106 hundredths of
  kW -> the source's 1060 W; inlet energy 1520.35 + 1 + (E₁ + E₂ + 40·150)/3.6e6 kWh
  = 1521.35 + (123450 + 70500/π)/3.6e6 = 1521.35 + 0.0405254… = 1521.3905… -> floor(15213.905)
  = 15213 tenths -> 1521.3 kWh; outlet 1: 556 W, energy 40.25 + (62250 + 42300/π)/3.6e6
  = 40.25 + 0.020981… -> 402 tenths -> 40.2 kWh; outlet 2: 462 W, 80.5 + 0.017827… -> 805
  -> 80.5 kWh.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from dcmeter.agent.sources import DeviceError
from dcmeter.agent.sources.redfish import RedfishConfig
from dcmeter.agent.sources.snmp import SnmpConfig
from dcmeter.sim.pdu import SimPdu, apc_objects, resolution_allowance_w
from dcmeter.sim.redfish import SimRedfish
from dcmeter.sim.site import Device, Swing
from dcmeter.sim.snmp import SimSnmpAgent

T0 = 1_700_000_000.0
T = T0 + 150.0
PI = math.pi
S1 = Device("server-0001", "compute", 180.0, 650.0, Swing(T0, 0.5, 0.3, 600.0))
S2 = Device("server-0002", "compute", 180.0, 650.0, Swing(T0, 0.4, 0.2, 600.0))
E1_J = 62250 + 42300 / PI  # by hand, above
E2_J = 55200 + 28200 / PI
PDU = SimPdu("pdu-001", 1, (S1, S2), 40.0, T0)
APC = "1.3.6.1.4.1.318.1.1.26"


@pytest.fixture()
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    """One background event loop serving the simulated devices, as `dcmeter simulate` does."""
    lp = asyncio.new_event_loop()
    thread = threading.Thread(target=lp.run_forever, daemon=True)
    thread.start()
    try:
        yield lp
    finally:
        lp.call_soon_threadsafe(lp.stop)
        thread.join(10)


def on(loop: asyncio.AbstractEventLoop, coro: Any) -> Any:
    return asyncio.run_coroutine_threadsafe(coro, loop).result(30)


def test_the_model_is_the_hand_worked_one() -> None:
    assert S1.power_w(T) == pytest.approx(556.0, abs=1e-9)
    assert S2.power_w(T) == pytest.approx(462.0, abs=1e-9)
    assert S1.energy_j(T) == pytest.approx(E1_J, rel=1e-12)
    assert S2.energy_j(T) == pytest.approx(E2_J, rel=1e-12)
    assert PDU.inlet_power_w(T) == pytest.approx(1058.0, abs=1e-9)
    assert PDU.inlet_energy_kwh(T) == pytest.approx(
        1521.35 + (123450 + 70500 / PI) / 3.6e6, rel=1e-14)
    # 0.1 kWh over a window of 1 h is 100 W; over 36 s, 10 kW.
    assert resolution_allowance_w(3600) == pytest.approx(100.0)
    assert resolution_allowance_w(36) == pytest.approx(10_000.0)


@pytest.fixture()
def redfish(loop: asyncio.AbstractEventLoop) -> Iterator[tuple[SimRedfish, str]]:
    bmc = SimRedfish("server-0001", S1.power_w, S1.energy_j, username="admin",
                     password="s3cret", energy_start_kwh=12.5, clock=lambda: T)
    port = on(loop, bmc.start("127.0.0.1", 0))
    try:
        yield bmc, f"http://127.0.0.1:{port}"
    finally:
        on(loop, bmc.stop())


def _read(config: RedfishConfig) -> tuple[dict[str, float], dict[str, Any], int]:
    async def scenario() -> tuple[dict[str, float], dict[str, Any], int]:
        source = config.build()
        try:
            readings = await source.read()
            return ({r.metric.name: r.value for r in readings}, dict(source.info.device),
                    source.sessions_opened)
        finally:
            await source.close()
    return asyncio.run(scenario())


def test_the_redfish_source_reads_the_model(redfish: tuple[SimRedfish, str]) -> None:
    bmc, url = redfish
    cfg = {"type": "redfish", "id": "server-0001", "url": url, "username": "admin",
           "password": "s3cret", "timeout_s": 5.0}
    values, device, sessions = _read(RedfishConfig.model_validate(cfg))
    assert values["power_w"] == pytest.approx(556.0, abs=1e-9)
    assert values["energy_import_kwh"] == pytest.approx(12.5 + E1_J / 3.6e6, rel=1e-14)
    assert device["make"] == "dcmeter simulator" and device["model"] == "simulated server"
    assert device["serial"] == "SIM-server-0001" and device["profile"] == "EnvironmentMetrics"
    assert device["firmware"] == "1.0.0 (dcmeter simulator)"
    assert sessions == 1 and bmc.sessions == {}  # logged in once, the session deleted at close
    # The classic Power resource, and basic auth, give the same power.
    values, device, sessions = _read(RedfishConfig.model_validate(
        {**cfg, "resource": "power", "auth": "basic"}))
    assert values == {"power_w": pytest.approx(556.0, abs=1e-9)}
    assert device["profile"] == "Power" and sessions == 0


def test_a_wrong_password_is_one_line(redfish: tuple[SimRedfish, str]) -> None:
    _, url = redfish
    cfg = RedfishConfig.model_validate({"type": "redfish", "id": "s", "url": url,
                                        "username": "admin", "password": "wrong"})
    with pytest.raises(DeviceError) as err:
        _read(cfg)
    assert str(err.value) == (f"{url}: login refused (HTTP 401 from POST "
                              "/redfish/v1/SessionService/Sessions): check username and password")
    assert "wrong" not in str(err.value)


def _curl(*args: str) -> subprocess.CompletedProcess[str]:
    assert shutil.which("curl"), "curl not found: install Debian package 'curl'"
    return subprocess.run(["curl", "-sS", "--max-time", "10", *args], capture_output=True,
                          text=True, timeout=30, check=True)


def test_curl_reads_the_model_and_keeps_to_sessions(redfish: tuple[SimRedfish, str]) -> None:
    bmc, url = redfish
    env = f"{url}/redfish/v1/Chassis/1/EnvironmentMetrics"
    root = json.loads(_curl(f"{url}/redfish/v1/").stdout)  # unauthenticated, DSP0266 §9.3
    assert root["RedfishVersion"] and root["Links"]["Sessions"]["@odata.id"]
    assert _curl("-o", "/dev/null", "-w", "%{http_code}", env).stdout == "401"
    body = json.loads(_curl("-u", "admin:s3cret", env).stdout)
    assert body["PowerWatts"]["Reading"] == pytest.approx(556.0, abs=1e-9)
    assert body["EnergykWh"]["Reading"] == pytest.approx(12.5 + E1_J / 3.6e6, rel=1e-14)
    power = json.loads(_curl("-u", "admin:s3cret", f"{url}/redfish/v1/Chassis/1/Power").stdout)
    assert power["PowerControl"][0]["PowerConsumedWatts"] == pytest.approx(556.0, abs=1e-9)
    # A session: 201 with X-Auth-Token and Location; the token reads; DELETE ends it.
    head = _curl("-i", "-X", "POST", "-H", "Content-Type: application/json", "--data",
                 '{"UserName": "admin", "Password": "s3cret"}',
                 f"{url}/redfish/v1/SessionService/Sessions").stdout
    lines = {k.strip().lower(): v.strip() for k, _, v in
             (line.partition(":") for line in head.split("\n\n")[0].splitlines()[1:])}
    assert head.startswith("HTTP/1.1 201"), head
    token, where = lines["x-auth-token"], lines["location"]
    auth = ("-H", f"X-Auth-Token: {token}")
    body = json.loads(_curl(*auth, env).stdout)
    assert body["PowerWatts"]["Reading"] == pytest.approx(556.0, abs=1e-9)
    code = _curl(*auth, "-X", "DELETE", "-o", "/dev/null", "-w", "%{http_code}", f"{url}{where}")
    assert code.stdout == "204" and bmc.sessions == {}
    assert _curl(*auth, "-o", "/dev/null", "-w", "%{http_code}", env).stdout == "401"


@pytest.fixture()
def pdu_port(loop: asyncio.AbstractEventLoop) -> Iterator[int]:
    agent = SimSnmpAgent(community="public", sys_name="pdu-001", boot_t=T0,
                         extra=apc_objects(PDU), clock=lambda: T)
    port = on(loop, agent.start("127.0.0.1", 0))
    try:
        yield port
    finally:
        on(loop, agent.stop())


def test_snmpget_reads_the_rpdu2_registers_scaled_by_hand(
    pdu_port: int, tmp_path: Any
) -> None:
    assert shutil.which("snmpget"), "snmpget not found: install Debian package 'snmp'"
    oids = {f"{APC}.4.3.1.5.1": "106", f"{APC}.4.3.1.9.1": "15213",  # inlet: 1060 W, 1521.3 kWh
            f"{APC}.9.4.3.1.7.1": "556", f"{APC}.9.4.3.1.11.1": "402",  # outlet 1: W, 40.2 kWh
            f"{APC}.9.4.3.1.7.2": "462", f"{APC}.9.4.3.1.11.2": "805",  # outlet 2: W, 80.5 kWh
            f"{APC}.9.4.3.1.3.1": '"server-0001"', f"{APC}.2.1.9.1": '"SIM-PDU-0001"'}
    env = {**os.environ, "SNMP_PERSISTENT_DIR": str(tmp_path), "SNMPCONFPATH": str(tmp_path),
           "MIBS": ""}
    out = subprocess.run(
        ["snmpget", "-v2c", "-c", "public", "-On", "-Oe", "-OQ", "-t", "5", "-r", "1",
         f"udp:127.0.0.1:{pdu_port}", *oids], capture_output=True, text=True, env=env,
        timeout=60, check=True).stdout
    got = dict(line.split(" = ", 1) for line in out.strip().splitlines())
    assert got == {f".{k}": v for k, v in oids.items()}


def test_the_pdu_source_reads_inlet_and_outlets(pdu_port: int) -> None:
    cfg = SnmpConfig.model_validate({
        "type": "snmp", "id": "pdu-001", "host": "127.0.0.1", "port": pdu_port,
        "community": "public", "role": "pdu", "profile": "apc_rpdu2", "outlets": "all",
        "timeout_s": 5.0})

    async def scenario() -> tuple[list[Any], dict[str, Any]]:
        source = cfg.build()
        try:
            return await source.read(), dict(source.info.device)
        finally:
            await source.close()

    readings, device = asyncio.run(scenario())
    got = {(r.labels.get("inlet") or f"outlet {r.labels['outlet']}", r.metric.name): r.value
           for r in readings}
    assert got == {("1", "power_w"): 1060.0, ("1", "energy_import_kwh"): 1521.3,
                   ("outlet 1", "power_w"): 556.0, ("outlet 1", "energy_import_kwh"): 40.2,
                   ("outlet 2", "power_w"): 462.0, ("outlet 2", "energy_import_kwh"): 80.5}
    names = {r.labels["outlet_name"] for r in readings if "outlet" in r.labels}
    assert names == {"server-0001", "server-0002"}
    assert device["serial"] == "SIM-PDU-0001" and device["profile"] == "apc_rpdu2"
    assert device["model"] == "AP8941 (dcmeter simulator)" and device["firmware"] == "v6.9.6"


def test_a_raritan_pdu2_pdu_reads_in_watt_hours(loop: asyncio.AbstractEventLoop) -> None:
    """pdu_profile = "raritan_pdu2": the same PDU in PDU2-MIB, 0 decimal digits. By hand:
    inlet 1058 W; energy floor(1521.3905252… kWh × 1000) = 1521390 Wh -> 1521.39 kWh; outlet 1
    556 W, floor(40.2710318…·1000) = 40271 Wh -> 40.271 kWh; outlet 2 462 W, 80517 Wh -> 80.517.
    """
    from dataclasses import replace

    from dcmeter.sim.pdu import pdu_objects

    agent = SimSnmpAgent(community="public", sys_name="pdu-001", boot_t=T0,
                         extra=pdu_objects(replace(PDU, profile="raritan_pdu2")), clock=lambda: T)
    port = on(loop, agent.start("127.0.0.1", 0))
    cfg = SnmpConfig.model_validate({
        "type": "snmp", "id": "pdu-001", "host": "127.0.0.1", "port": port,
        "community": "public", "role": "pdu", "profile": "raritan_pdu2", "outlets": "all",
        "timeout_s": 5.0})

    async def scenario() -> list[Any]:
        source = cfg.build()
        try:
            return await source.read()
        finally:
            await source.close()

    try:
        readings = asyncio.run(scenario())
    finally:
        on(loop, agent.stop())
    got = {(r.labels.get("inlet") or f"outlet {r.labels['outlet']}", r.metric.name): r.value
           for r in readings}
    assert got == {("1.1", "power_w"): 1058.0, ("1.1", "energy_import_kwh"): 1521.39,
                   ("outlet 1", "power_w"): 556.0, ("outlet 1", "energy_import_kwh"): 40.271,
                   ("outlet 2", "power_w"): 462.0, ("outlet 2", "energy_import_kwh"): 80.517}


def test_the_written_files_name_every_new_device(tmp_path: Any) -> None:
    """bmc_protocol = "both", 3 servers over 2 PDUs (⌈3/2⌉ = 2 per PDU: pdu-002 gets one), a
    [calibration] bench: the ports' order, the agent config the agent loads, the site file
    the collector loads with one [[reconcile]] set per PDU over its Redfish BMCs."""
    from dcmeter.agent.config import load
    from dcmeter.collectors.evaluation.site import load_site
    from dcmeter.sim.serve import SimEndpoints, Simulation, agent_config_toml, site_toml
    from dcmeter.sim.site import SimSite, SimSiteConfig

    site = SimSite.build(SimSiteConfig(servers=3, switches=1, storage=0, pdus=2,
                                       bmc_protocol="both", pdu_loss_w=12.5), T0)
    settings = SimEndpoints(agent_config=tmp_path / "agent.toml", reconcile_window_s=1800)
    sim = Simulation(site, settings)

    async def start_stop() -> list[Any]:
        try:
            return await sim.start()
        finally:
            await sim.stop()

    endpoints = asyncio.run(start_stop())
    assert [(e.name, e.protocol) for e in endpoints] == [
        ("meter-total", "modbus"), ("meter-it", "modbus"),
        ("server-0001", "ipmi"), ("server-0002", "ipmi"), ("server-0003", "ipmi"),
        ("switch-001", "snmp"),
        ("server-0001-redfish", "redfish"), ("server-0002-redfish", "redfish"),
        ("server-0003-redfish", "redfish"), ("pdu-001", "snmp"), ("pdu-002", "snmp")]
    (tmp_path / "agent.toml").write_text(agent_config_toml(endpoints, settings, None, sim.pdus))
    agent = load(tmp_path / "agent.toml")
    kinds = {s.id: (s.type, getattr(s, "outlets", None)) for s in agent.sources}
    assert kinds["server-0002-redfish"][0] == "redfish"
    assert kinds["pdu-001"] == ("snmp", [])  # the inlet alone: the reconciliation's meter
    outlets = kinds["pdu-001-outlets"][1]
    assert [(o.index, o.server, o.point) for o in outlets] == [
        (1, "server-0001", "it_input"), (2, "server-0002", "it_input")]
    (tmp_path / "site.toml").write_text(site_toml(endpoints, sim.pdus, "both", 1800))
    sets = load_site(tmp_path / "site.toml").reconcile
    # 0.1 kWh over 1800 s = 0.5 h: 200 W.
    assert [(r.name, r.meter, r.below, r.loss.fixed_w, r.allowance.fixed_w) for r in sets] == [
        ("pdu-001 inlet", "pdu-001", ["server-0001-redfish", "server-0002-redfish"], 12.5, 200.0),
        ("pdu-002 inlet", "pdu-002", ["server-0003-redfish"], 12.5, 200.0)]
