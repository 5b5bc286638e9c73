"""Faults per source, through the real agent: each is one failed target, logged once.

One agent config mixes healthy and faulty targets of every network protocol, served by the
simulators (and a silent TCP listener): a timeout, a refused port, wrong credentials, an
unsupported command, a counter at its wrap point, NaN values. Whatever fails, the other
targets' samples of the same tick arrive, each failing target gets exactly one log line that
names it and the reason (however many ticks it keeps failing), and no secret is ever logged.
"""

from __future__ import annotations

import json
import math
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import ROOT, free_port

from dcmeter.sim.bmc import PowerReading, SimBmc
from dcmeter.sim.loop import LoopThread
from dcmeter.sim.meters import SimMeter
from dcmeter.sim.serve import sources_toml
from dcmeter.sim.snmp import SimInterface, SimSnmpAgent

BMC_PASSWORD = "bmc-Secret-7731"
WRONG_BMC_PASSWORD = "bmc-Wrong-5150"
COMMUNITY = "community-Secret-2290"
WRONG_COMMUNITY = "community-Wrong-8812"
V3_AUTH, V3_PRIV = "v3auth-Secret-4471", "v3priv-Secret-9034"
WRONG_V3_AUTH = "v3auth-Wrong-6603"
SECRETS = (BMC_PASSWORD, WRONG_BMC_PASSWORD, COMMUNITY, WRONG_COMMUNITY, V3_AUTH, V3_PRIV,
           WRONG_V3_AUTH)
ADL3000_WRAP_KWH = 2**32 * 0.01  # u32 register × 0.01 kWh

# source id -> a word its failure reason must contain
FAILING = {
    "meter-silent": "(modbus): no answer within 1 s (timeout_s): tcp: check host, port and device_id",
    "meter-refused": "cannot connect",
    "bmc-wrong-password": "authentication failed",
    "bmc-no-dcmi": "0xc1",
    "bmc-nan": "not active",
    "switch-wrong-community": "no answer",
    "switch-v3-wrong-auth": "auth_password",
}


def _power(w: float) -> PowerReading:
    return PowerReading(w, w, w, w)


@pytest.fixture(scope="module")
def site() -> Iterator[dict[str, Any]]:
    """The healthy and faulty peers; yields the agent's [[sources]] and the expected values."""
    sdm630 = {"power_w": math.nan, "frequency_hz": 50.0, "energy_import_kwh": 4321.5,
              "energy_export_kwh": math.nan}
    adl3000 = {"energy_import_kwh": ADL3000_WRAP_KWH - 0.01, "energy_export_kwh": 0.0}
    port_ = SimInterface(index=1, name="Eth1/1", alias="uplink", speed_mbps=25_000,
                         in_octets=lambda t: 2**32 + 5, out_octets=lambda t: 777.0, hc=False)
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)  # the kernel completes connections; nobody ever answers
    with LoopThread() as loop:
        ports = {
            "sdm630": loop.serve(SimMeter("eastron_sdm630", lambda: sdm630)),
            "adl3000": loop.serve(SimMeter("acrel_adl3000", lambda: adl3000)),
            "bmc": loop.serve(SimBmc(lambda: _power(412.0), password=BMC_PASSWORD)),
            "bmc-no-dcmi": loop.serve(SimBmc(lambda: _power(1.0), password=BMC_PASSWORD,
                                             dcmi=False)),
            "bmc-nan": loop.serve(SimBmc(lambda: _power(math.nan), password=BMC_PASSWORD)),
            "switch": loop.serve(SimSnmpAgent(community=COMMUNITY, interfaces=[port_],
                                              v3_user=("ops", V3_AUTH, V3_PRIV))),
        }
        host = "127.0.0.1"
        ipmi = {"type": "ipmi", "host": host, "username": "admin", "password": BMC_PASSWORD,
                "timeout_s": 1.5}
        snmp = {"type": "snmp", "host": host, "port": ports["switch"], "retries": 0,
                "timeout_s": 1.0, "interfaces": {"if_alias_pattern": "^uplink"}}
        sources = [
            {"id": "meter-nan", "type": "modbus", "host": host, "port": ports["sdm630"],
             "profile": "eastron_sdm630", "timeout_s": 1.0},
            {"id": "meter-at-wrap", "type": "modbus", "host": host, "port": ports["adl3000"],
             "profile": "acrel_adl3000", "timeout_s": 1.0},
            {"id": "meter-silent", "type": "modbus", "host": host,
             "port": silent.getsockname()[1], "profile": "eastron_sdm630", "timeout_s": 1.0,
             "retries": 0},
            {"id": "meter-refused", "type": "modbus", "host": host, "port": free_port(),
             "profile": "eastron_sdm630", "timeout_s": 1.0},
            {**ipmi, "id": "bmc-ok", "port": ports["bmc"]},
            {**ipmi, "id": "bmc-wrong-password", "port": ports["bmc"],
             "password": WRONG_BMC_PASSWORD},
            {**ipmi, "id": "bmc-no-dcmi", "port": ports["bmc-no-dcmi"]},
            {**ipmi, "id": "bmc-nan", "port": ports["bmc-nan"]},
            {**snmp, "id": "switch-ok", "version": "2c", "community": COMMUNITY},
            {**snmp, "id": "switch-wrong-community", "version": "2c",
             "community": WRONG_COMMUNITY},
            {**snmp, "id": "switch-v3-ok", "version": "3", "username": "ops",
             "auth_password": V3_AUTH, "priv_password": V3_PRIV},
            {**snmp, "id": "switch-v3-wrong-auth", "version": "3", "username": "ops",
             "auth_password": WRONG_V3_AUTH, "priv_password": V3_PRIV},
        ]
        yield {"sources": sources}
    silent.close()


def _write_config(tmp_path: Path, sources: list[dict[str, Any]], interval: int = 1) -> Path:
    cfg = tmp_path / "agent.toml"
    cfg.write_text(
        f'[agent]\nid = "faults"\ninterval_s = {interval}\nstate_dir = "{tmp_path / "state"}"\n\n'
        + sources_toml(sources)
    )
    return cfg


def _dcmeter(*args: str, **kw: Any) -> Any:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "dcmeter", *args], capture_output=True,
                          text=True, env=env, timeout=120, **kw)


def _failures(lines: list[str]) -> list[dict[str, Any]]:
    events = [json.loads(line) for line in lines if line.startswith("{")]
    return [e for e in events if e.get("event") == "target failed"]


def test_one_tick_other_targets_unaffected_and_each_failure_named(
    site: dict[str, Any], tmp_path: Path
) -> None:
    r = _dcmeter("agent", "once", "--json", "-c", str(_write_config(tmp_path, site["sources"])))
    assert r.returncode == 1  # some targets failed
    samples = [json.loads(line) for line in r.stdout.splitlines()]
    got = {(s["source"], s["metric"], s["labels"].get("if_name")): s for s in samples}
    assert {"meter-nan", "meter-at-wrap", "bmc-ok", "switch-ok", "switch-v3-ok"} <= {
        s["source"] for s in samples
    }, r.stderr

    # NaN values are left out, never turned into numbers; the rest of the meter is read.
    assert got[("meter-nan", "energy_import_kwh", None)]["value"] == pytest.approx(4321.5)
    assert ("meter-nan", "power_w", None) not in got
    assert ("meter-nan", "energy_export_kwh", None) not in got
    # A counter one step short of its wrap point is read as it is, with its modulus.
    at_wrap = got[("meter-at-wrap", "energy_import_kwh", None)]
    assert at_wrap["value"] == pytest.approx(ADL3000_WRAP_KWH - 0.01, abs=1e-6)
    assert at_wrap["modulus"] == pytest.approx(ADL3000_WRAP_KWH)
    assert got[("bmc-ok", "power_w", None)]["value"] == 412
    for sid in ("switch-ok", "switch-v3-ok"):
        octets = got[(sid, "if_in_octets", "Eth1/1")]
        # A 32-bit counter past its wrap point: the device's value, with modulus 2^32.
        assert octets["value"] == 5 and octets["modulus"] == 2**32
        assert got[(sid, "if_speed_bps", "Eth1/1")]["value"] == 25e9

    failed = _failures(r.stderr.splitlines())
    assert sorted(f["source"] for f in failed) == sorted(FAILING)
    for f in failed:
        assert FAILING[f["source"]] in f["reason"].lower(), f
    assert not any(sid in FAILING for sid, _, _ in got)
    for secret in SECRETS:
        assert secret not in r.stdout + r.stderr


def test_a_target_failing_tick_after_tick_is_logged_once(
    site: dict[str, Any], tmp_path: Path
) -> None:
    # Ticks 2 s apart: each waits out the silent targets' 1 s timeouts.
    cfg = _write_config(tmp_path, site["sources"], interval=2)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "dcmeter", "agent", "run", "-c", str(cfg)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    time.sleep(9)  # at least three ticks
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out
    lines = out.splitlines()
    # Every line is a JSON event, other libraries' warnings (a skipped tick) included.
    events = [json.loads(line) for line in lines]
    assert all("event" in e and "level" in e for e in events), out
    stopped = next(json.loads(x) for x in lines if '"agent stopped"' in x)
    assert stopped["ticks"] >= 3, out
    failed = _failures(lines)
    assert sorted(f["source"] for f in failed) == sorted(FAILING), out
    for secret in SECRETS:
        assert secret not in out
