"""The snmp source's `pdu` role against snmpsim serving recorded walks, cross-checked with
net-snmp's snmpget/snmpwalk.

The walks (tests/peers/pdu_walks/*.snmprec) were built from the MIB texts (pdu_mibs.py cites
each object). Every expected figure below is the walk's raw value converted BY HAND with the
MIB's unit, written out in the comment beside it; the raw values are read again with snmpget,
so a walk that snmpsim served differently, or a scaling that went wrong, fails here.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from structlog.testing import capture_logs

from dcmeter.agent.samples import Reading
from dcmeter.agent.sources import DeviceError, TargetUnreachable
from dcmeter.agent.sources.pdu_mibs import (
    APC_DEVICE_ENERGY,
    APC_DEVICE_POWER,
    APC_OUTLET_ENERGY,
    APC_OUTLET_POWER,
    PROFILES,
    RARITAN_INLET_DIGITS,
    RARITAN_INLET_VALUE,
    RARITAN_OUTLET_DIGITS,
    RARITAN_OUTLET_VALUE,
    SENTRY_CORD_ENERGY,
    SENTRY_CORD_POWER,
    SENTRY_OUTLET_ENERGY,
    SENTRY_OUTLET_POWER,
    Scale,
    channels,
    scale_with_digits,
    scaled,
)
from dcmeter.agent.sources.snmp import SnmpConfig
from tests.peers.pdu_sim import WALKS, Snmpsim, start_snmpsim
from tests.peers.snmpd import parse


@pytest.fixture(scope="module")
def sim() -> Iterator[Snmpsim]:
    agent = start_snmpsim()
    try:
        yield agent
    finally:
        agent.stop()


def config(agent: Snmpsim, walk: str, **fields: Any) -> SnmpConfig:
    """A pdu config reading the walk served under community `walk`, its profile of that name."""
    data: dict[str, Any] = {
        "type": "snmp", "id": "pdu-1", "host": "127.0.0.1", "port": agent.port,
        "community": walk, "role": "pdu", "profile": walk, "timeout_s": 5.0,
    }
    return SnmpConfig.model_validate({**data, **fields})


def read_once(agent: Snmpsim, walk: str, **fields: Any) -> tuple[list[Reading], Any]:
    """Build the source, read once, close; the readings and the source's info."""

    async def scenario() -> tuple[list[Reading], Any]:
        source = config(agent, walk, **fields).build()
        try:
            return await source.read(), source.info
        finally:
            await source.close()

    return asyncio.run(scenario())


def table(readings: list[Reading]) -> dict[tuple[str, str, str], float]:
    """(metric, 'inlet' | 'outlet', its label) -> value; fails on a duplicate."""
    out: dict[tuple[str, str, str], float] = {}
    for r in readings:
        where = "inlet" if "inlet" in r.labels else "outlet"
        key = (r.metric.name, where, r.labels.get("inlet") or r.labels["outlet_row"])
        assert key not in out, key
        out[key] = r.value
    return out


def raw(agent: Snmpsim, community: str, *oids: str) -> list[int]:
    got = agent.get(community, *oids)
    return [int(got[o]) for o in oids]


# ---------------------------------------------------------------------------------------
# APC PowerNet-MIB rPDU2


def test_apc_readings_equal_the_walk_by_hand(sim: Snmpsim) -> None:
    readings, info = read_once(sim, "apc_rpdu2", outlets="all")
    assert table(readings) == {
        # rPDU2DeviceStatusPower.1 = 187 hundredths of kW = 1.87 kW = 1870 W
        ("power_w", "inlet", "1"): 1870.0,
        # rPDU2DeviceStatusEnergy.1 = 123456 tenths of kWh = 12345.6 kWh
        ("energy_import_kwh", "inlet", "1"): 12345.6,
        # rPDU2OutletMeteredStatusPower (W) and Energy (tenths of kWh) of outlets 1..4
        ("power_w", "outlet", "1"): 412.0,
        ("energy_import_kwh", "outlet", "1"): 3012.5,  # 30125 / 10
        ("power_w", "outlet", "2"): 455.0,
        ("energy_import_kwh", "outlet", "2"): 2887.7,  # 28877 / 10
        ("power_w", "outlet", "3"): 398.0,
        ("energy_import_kwh", "outlet", "3"): 2700.1,  # 27001 / 10
        ("power_w", "outlet", "4"): 0.0,
        # outlet 4's energy is -1 ("not supported"): no reading
    }
    # snmpget reads the same raw values the figures above were worked from.
    assert raw(sim, "apc_rpdu2", f"{APC_DEVICE_POWER}.1", f"{APC_DEVICE_ENERGY}.1") == [
        187, 123456,
    ]
    assert raw(sim, "apc_rpdu2", *(f"{APC_OUTLET_POWER}.{i}" for i in range(1, 5))) == [
        412, 455, 398, 0,
    ]
    assert raw(sim, "apc_rpdu2", *(f"{APC_OUTLET_ENERGY}.{i}" for i in range(1, 5))) == [
        30125, 28877, 27001, -1,
    ]
    names = {r.labels["outlet"]: r.labels["outlet_name"] for r in readings if "outlet" in r.labels}
    assert names == {"1": "server-0001", "2": "server-0002", "3": "server-0003", "4": "spare"}
    assert info.labels == {"kind": "meter", "point": "it_pdu"}
    assert info.device["model"] == "AP8941"
    assert info.device["serial"] == "5A1234E00001"
    assert info.device["firmware"] == "v6.8.2"
    assert info.device["profile"] == "apc_rpdu2"
    assert info.device["sys_object_id"] == "1.3.6.1.4.1.318.1.3.4.5"


def test_apc_counters_are_counters_and_gauges_gauges(sim: Snmpsim) -> None:
    readings, _ = read_once(sim, "apc_rpdu2")
    kinds = {(r.metric.name, r.metric.unit, r.metric.kind, r.metric.modulus) for r in readings}
    # rPDU2 energy is a signed INTEGER, "user resettable": no wrap, a decrease is a reset.
    assert kinds == {("power_w", "W", "gauge", None), ("energy_import_kwh", "kWh", "counter", None)}
    # Without `outlets`, only the inlet is read.
    assert all("inlet" in r.labels for r in readings) and len(readings) == 2


def test_outlet_feeding_one_server_is_point_8(sim: Snmpsim) -> None:
    readings, _ = read_once(
        sim, "apc_rpdu2",
        outlets=[{"index": 3, "point": "it_input", "server": "server-0003"}, {"index": 4}],
    )
    out3 = [r for r in readings if r.labels.get("outlet") == "3"]
    assert {r.metric.name: r.value for r in out3} == {
        "power_w": 398.0, "energy_import_kwh": 2700.1,
    }
    assert all(r.labels["point"] == "it_input" and r.labels["server"] == "server-0003"
               for r in out3)
    out4 = [r for r in readings if r.labels.get("outlet") == "4"]
    assert [r.metric.name for r in out4] == ["power_w"]
    assert "point" not in out4[0].labels and "server" not in out4[0].labels
    assert {r.labels.get("outlet") for r in readings} == {None, "3", "4"}


def test_missing_outlets_and_all_missing(sim: Snmpsim) -> None:
    readings, _ = read_once(sim, "apc_rpdu2", outlets=[{"index": 2}, {"index": 40}])
    assert {r.labels.get("outlet") for r in readings} == {None, "2"}
    with pytest.raises(DeviceError) as caught:
        read_once(sim, "apc_rpdu2", outlets=[{"index": 40}])
    message = str(caught.value)
    assert "\n" not in message
    assert "no selected outlet found ([40])" in message and "[1, 2, 3, 4]" in message


# ---------------------------------------------------------------------------------------
# Raritan PDU2-MIB


def test_raritan_readings_equal_the_walk_by_hand(sim: Snmpsim) -> None:
    readings, info = read_once(sim, "raritan_pdu2", outlets="all")
    assert table(readings) == {
        # inlet 1 of pdu 1: activePower(5) = 23456 with 1 decimal digit = 2345.6 W
        ("power_w", "inlet", "1.1"): 2345.6,
        # activeEnergy(8) = 98765432 Wh, 0 digits = 98765.432 kWh
        ("energy_import_kwh", "inlet", "1.1"): 98765.432,
        ("power_w", "outlet", "1.1"): 702.0,  # 702 W, 0 digits
        ("energy_import_kwh", "outlet", "1.1"): 4123.456,  # 4123456 Wh
        ("power_w", "outlet", "1.2"): 0.0,
        ("energy_import_kwh", "outlet", "1.2"): 0.017,  # 17 Wh
        ("power_w", "outlet", "1.3"): 654.32,  # 65432 with 2 digits
        ("energy_import_kwh", "outlet", "1.3"): 4294967.0,  # 4294967000 Wh
    }
    # rmsCurrent(1) and rmsVoltage(4) rows are in the walk but are not power or energy.
    assert raw(sim, "raritan_pdu2", *(f"{RARITAN_INLET_VALUE}.1.1.{t}" for t in (1, 4, 5, 8))) == [
        10543, 231, 23456, 98765432,
    ]
    assert raw(sim, "raritan_pdu2", f"{RARITAN_INLET_DIGITS}.1.1.5",
               f"{RARITAN_INLET_DIGITS}.1.1.8") == [1, 0]
    assert raw(sim, "raritan_pdu2", *(f"{RARITAN_OUTLET_VALUE}.1.{o}.{t}"
                                      for o in (1, 2, 3) for t in (5, 8))) == [
        702, 4123456, 0, 17, 65432, 4294967000,
    ]
    assert raw(sim, "raritan_pdu2", f"{RARITAN_OUTLET_DIGITS}.1.3.5") == [2]
    assert info.device["model"] == "PX3-5190R" and info.device["serial"] == "QFB1234567"


def test_raritan_energy_wraps_at_2_32_raw_units(sim: Snmpsim) -> None:
    readings, _ = read_once(sim, "raritan_pdu2", outlets=[{"index": 3}])
    energy = [r for r in readings if r.metric.name == "energy_import_kwh"]
    assert len(energy) == 2
    for r in energy:
        # Unsigned32 Wh with 0 digits: wraps at 2**32 Wh = 4294967.296 kWh
        assert (r.metric.kind, r.metric.unit, r.metric.modulus) == ("counter", "kWh", 4294967.296)


# ---------------------------------------------------------------------------------------
# ServerTech Sentry4-MIB


def test_sentry4_readings_equal_the_walk_by_hand(sim: Snmpsim) -> None:
    readings, info = read_once(sim, "servertech_sentry4", outlets="all")
    assert table(readings) == {
        # st4InputCordActivePower (Watts), st4InputCordEnergy (tenth Kilowatt-Hours)
        ("power_w", "inlet", "1.1"): 3120.0,
        ("energy_import_kwh", "inlet", "1.1"): 45678.9,  # 456789 / 10
        ("power_w", "inlet", "1.2"): 2980.0,
        ("energy_import_kwh", "inlet", "1.2"): 40123.4,  # 401234 / 10
        # st4OutletActivePower (Watts), st4OutletEnergy (Watt-Hours)
        ("power_w", "outlet", "1.1.1"): 520.0,
        ("energy_import_kwh", "outlet", "1.1.1"): 1234.567,  # 1234567 Wh
        # outlet AA2's power is -1 (unavailable): no reading
        ("energy_import_kwh", "outlet", "1.1.2"): 987.654,  # 987654 Wh
        ("power_w", "outlet", "1.2.1"): 505.0,
        ("energy_import_kwh", "outlet", "1.2.1"): 1200.001,  # 1200001 Wh
    }
    assert raw(sim, "servertech_sentry4", f"{SENTRY_CORD_POWER}.1.1", f"{SENTRY_CORD_ENERGY}.1.1",
               f"{SENTRY_CORD_POWER}.1.2", f"{SENTRY_CORD_ENERGY}.1.2") == [
        3120, 456789, 2980, 401234,
    ]
    assert raw(sim, "servertech_sentry4", f"{SENTRY_OUTLET_POWER}.1.1.2",
               f"{SENTRY_OUTLET_ENERGY}.1.1.2", f"{SENTRY_OUTLET_ENERGY}.1.2.1") == [
        -1, 987654, 1200001,
    ]
    assert info.device["serial"] == "ABEF0001234" and info.device["firmware"] == "Version 8.0y"


def test_sentry4_outlet_number_on_two_cords_is_one_clear_line(sim: Snmpsim) -> None:
    readings, _ = read_once(sim, "servertech_sentry4", outlets=[{"index": 2}])
    assert {r.labels.get("outlet_row") for r in readings} == {None, "1.1.2"}
    with pytest.raises(DeviceError) as caught:
        read_once(sim, "servertech_sentry4", outlets=[{"index": 1}])
    assert "\n" not in str(caught.value)
    assert "outlet 1 is ambiguous (rows 1.1.1, 1.2.1)" in str(caught.value)


# ---------------------------------------------------------------------------------------
# failures


@pytest.mark.parametrize(
    ("community", "profile", "mib"),
    [
        ("no_pdu_mib", "apc_rpdu2", "PowerNet-MIB rPDU2"),
        ("no_pdu_mib", "raritan_pdu2", "PDU2-MIB"),
        ("no_pdu_mib", "servertech_sentry4", "Sentry4-MIB"),
        ("raritan_pdu2", "servertech_sentry4", "Sentry4-MIB"),  # the wrong profile
    ],
)
def test_pdu_without_the_mib_is_one_clear_line(
    sim: Snmpsim, community: str, profile: str, mib: str
) -> None:
    with pytest.raises(DeviceError) as caught:
        read_once(sim, community, profile=profile)
    message = str(caught.value)
    assert "\n" not in message
    assert f"does not serve {mib}" in message and f"profile {profile!r}" in message
    assert community not in message  # the community (a secret) is never in an error


def test_wrong_community_is_unreachable_without_the_secret(sim: Snmpsim) -> None:
    with pytest.raises(TargetUnreachable) as caught:
        read_once(sim, "apc_rpdu2", community="not-served-here", timeout_s=2.0, retries=0)
    assert "not-served-here" not in str(caught.value)


# ---------------------------------------------------------------------------------------
# config and pure parts


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"role": "pdu"}, "role pdu needs profile"),
        ({"role": "pdu", "profile": "eaton"}, "profile"),
        ({"role": "switch", "profile": "apc_rpdu2", "interfaces": {"if_names": ["lo"]}},
         "profile, outlets: only with role pdu"),
        ({"role": "pdu", "profile": "apc_rpdu2", "outlets": [{"index": 2}, {"index": 2}]},
         "outlets: index 2 listed twice"),
        ({"role": "pdu", "profile": "apc_rpdu2", "outlets": [{"index": 2, "point": "cooling"}]},
         "point"),
        ({"role": "pdu", "profile": "apc_rpdu2", "outlets": "some"}, "outlets"),
    ],
)
def test_bad_pdu_config_is_rejected(fields: dict[str, Any], message: str) -> None:
    base = {"type": "snmp", "id": "p", "host": "h", "community": "c"}
    with pytest.raises(ValidationError) as caught:
        SnmpConfig.model_validate({**base, **fields})
    assert message in str(caught.value)


def test_scaling_is_exact() -> None:
    assert Scale(multiply=10).apply(187) == 1870.0
    assert Scale(divide=10).apply(123456) == 12345.6
    assert scale_with_digits(Scale(divide=1000), 2) == Scale(1, 100_000)
    assert scale_with_digits(Scale(), None) == Scale()  # digits unanswered: 0
    assert scaled(-1, Scale()) is None and scaled(None, Scale()) is None
    assert scaled("12", Scale()) is None


# ---------------------------------------------------------------------------------------
# through the real agent CLI: the TOML of docs/sources.md, `dcmeter agent once --json`

ROOT = Path(__file__).resolve().parents[3]


def dcmeter(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "dcmeter", *args], capture_output=True,
                          text=True, env=env, timeout=120, check=False)


def test_agent_once_reads_a_pdu_from_its_toml(sim: Snmpsim, tmp_path: Path) -> None:
    path = tmp_path / "agent.toml"
    path.write_text(
        f'[agent]\nid = "a"\nstate_dir = "{tmp_path / "state"}"\n\n'
        f'[[sources]]\nid = "pdu-b07"\ntype = "snmp"\nrole = "pdu"\nprofile = "raritan_pdu2"\n'
        f'host = "127.0.0.1"\nport = {sim.port}\ncommunity = "raritan_pdu2"\ntimeout_s = 5\n'
        'outlets = [{ index = 3, point = "it_input", server = "server-0003" }]\n'
    )
    done = dcmeter("agent", "once", "--json", "-c", str(path))
    assert done.returncode == 0, done.stderr
    samples = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    got = {(s["metric"], s["labels"].get("outlet", "inlet")): s for s in samples}
    assert set(got) == {("power_w", "inlet"), ("energy_import_kwh", "inlet"),
                        ("power_w", "3"), ("energy_import_kwh", "3")}
    # 23456 / 10 W; 98765432 Wh = 98765.432 kWh; outlet 3: 65432 / 100 W, 4294967000 Wh
    assert got[("power_w", "inlet")]["value"] == 2345.6
    assert got[("energy_import_kwh", "inlet")]["value"] == 98765.432
    assert got[("power_w", "3")]["value"] == 654.32
    assert got[("energy_import_kwh", "3")]["value"] == 4294967.0
    assert got[("energy_import_kwh", "3")]["kind"] == "counter"
    assert got[("energy_import_kwh", "3")]["modulus"] == 4294967.296
    assert got[("power_w", "inlet")]["labels"]["point"] == "it_pdu"
    assert got[("power_w", "3")]["labels"] == {
        "kind": "meter", "point": "it_input", "server": "server-0003", "outlet": "3",
        "outlet_row": "1.3", "outlet_name": "server-0003",
    }


def test_agent_once_pdu_without_profile_is_one_line_exit_2(tmp_path: Path) -> None:
    path = tmp_path / "agent.toml"
    path.write_text(
        '[agent]\nid = "a"\n\n[[sources]]\nid = "pdu"\ntype = "snmp"\nrole = "pdu"\n'
        'host = "127.0.0.1"\ncommunity = "secret-community"\n'
    )
    done = dcmeter("agent", "once", "-c", str(path))
    assert done.returncode == 2
    assert "Traceback" not in done.stderr and "secret-community" not in done.stderr
    assert "role pdu needs profile" in done.stderr and str(path) in done.stderr


def test_raritan_channels_read_pdu_1_power_and_energy_only() -> None:
    profile = PROFILES["raritan_pdu2"]
    values = {"1.2.5": 100, "1.2.8": 7, "1.2.1": 3012, "2.1.5": 999}  # pdu 2: another unit
    digits = {"1.2.5": 1}  # the energy's digits unanswered: 0
    (ch,) = channels(profile, True, values, values, {"1.2": "web-01"}, digits)
    assert (ch.key, ch.number, ch.name) == ("1.2", 2, "web-01")
    assert ch.power_oid == f"{RARITAN_OUTLET_VALUE}.1.2.5"
    assert ch.energy_oid == f"{RARITAN_OUTLET_VALUE}.1.2.8"
    assert ch.power_scale.apply(100) == 10.0  # 100 with 1 digit = 10.0 W
    assert ch.energy_scale.apply(7) == 0.007  # 7 Wh = 0.007 kWh
    assert ch.energy_modulus_kwh == 4294967.296  # 2**32 Wh


def test_an_outlet_row_that_goes_away_is_walked_again() -> None:
    """A PDU whose outlet 2 disappears (renumbered, module swapped): the read that finds it
    gone carries outlet 3 alone, the next read walks again and logs outlet 2 as not found."""
    full = (WALKS / "apc_rpdu2.snmprec").read_text()
    sim = start_snmpsim(extra={"apc_changing": full})
    walk = sim.directory / "data" / "apc_changing.snmprec"
    fewer = "".join(
        line + "\n" for line in full.splitlines()
        if not line.startswith(tuple(f"{c}.2|" for c in (APC_OUTLET_POWER, APC_OUTLET_ENERGY)))
    )

    async def scenario() -> list[list[Reading]]:
        source = config(sim, "apc_changing", profile="apc_rpdu2",
                        outlets=[{"index": 2}, {"index": 3}]).build()
        try:
            reads = [await source.read()]
            walk.write_text(fewer)
            stamp = walk.stat().st_mtime + 5  # snmpsim re-indexes a file newer than its index
            os.utime(walk, (stamp, stamp))
            reads.append(await source.read())
            reads.append(await source.read())
            return reads
        finally:
            await source.close()

    try:
        with capture_logs() as logs:
            first, gone, walked = asyncio.run(scenario())
        # snmpget: outlet 2's power is gone, outlet 3's still there.
        done = sim.cli("snmpget", "apc_changing", f"{APC_OUTLET_POWER}.2", f"{APC_OUTLET_POWER}.3")
        assert parse(done.stdout) == {
            f"{APC_OUTLET_POWER}.2": "No Such Instance currently exists at this OID",
            f"{APC_OUTLET_POWER}.3": "398",
        }
    finally:
        sim.stop()
    outlets = [sorted({r.labels["outlet"] for r in rs if "outlet" in r.labels})
               for rs in (first, gone, walked)]
    assert outlets == [["2", "3"], ["3"], ["3"]]
    assert [e["missing"] for e in logs if e["event"] == "selected outlets not found"] == [[2]]
