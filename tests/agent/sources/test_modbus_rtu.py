"""The modbus source over RTU: a pymodbus server on one end of a socat pseudo-terminal pair.

The pair stands in for an RS-485 line: the simulated meters (several device ids) listen on
one end, the source reads the other, and Debian's mbpoll (libmodbus, an independent RTU
client) cross-checks what the meters serve.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from dcmeter.agent.samples import Reading
from dcmeter.agent.sources import SourceError, TargetUnreachable
from dcmeter.agent.sources.modbus import ModbusConfig, ModbusSource
from dcmeter.sim.meters import MeterDevice, SimGateway

MBPOLL_LINE = re.compile(r"^\[(\d+)\]:\s+(\S+)$", re.MULTILINE)


@dataclass(frozen=True)
class Line:
    """Both ends of a pseudo-terminal pair: `meters` for the simulator, `agent` for readers."""

    meters: str
    agent: str


@pytest.fixture
def line(tmp_path: Path) -> Iterator[Line]:
    """A socat pseudo-terminal pair in tmp_path, stopped after the test."""
    socat = shutil.which("socat")
    assert socat is not None, "socat is not installed (Debian package socat)"
    meters, agent = tmp_path / "line-meters", tmp_path / "line-agent"
    log = (tmp_path / "socat.log").open("w")
    proc = subprocess.Popen(
        [socat, "-d", "-d", f"pty,raw,echo=0,link={meters}", f"pty,raw,echo=0,link={agent}"],
        stdout=subprocess.DEVNULL,
        stderr=log,
    )
    try:
        deadline = time.monotonic() + 10
        while not (meters.exists() and agent.exists()):
            assert proc.poll() is None, (tmp_path / "socat.log").read_text()
            assert time.monotonic() < deadline, "socat made no pseudo-terminals in 10 s"
            time.sleep(0.01)
        yield Line(str(meters), str(agent))
    finally:
        proc.terminate()
        proc.wait(5)
        log.close()


def make_source(port: str, **fields: Any) -> ModbusSource:
    """Build an RTU modbus source on serial port `port` from config fields."""
    data: dict[str, Any] = {"type": "modbus", "id": "meter-1", "transport": "rtu"}
    return ModbusConfig.model_validate({**data, "serial_port": port, **fields}).build()


def by_metric(readings: list[Reading]) -> dict[str, float]:
    """Map metric name -> value."""
    return {r.metric.name: r.value for r in readings}


def approx_all(values: Mapping[str, float]) -> dict[str, Any]:
    """Each value as pytest.approx at float32 precision."""
    return {k: pytest.approx(v, rel=1e-6, abs=1e-9) for k, v in values.items()}


async def mbpoll_rtu(port: str, unit: int, *args: str, baud: int = 9600) -> dict[int, float]:
    """Poll one meter once over RTU with mbpoll; return {reference: value} as it prints them."""
    exe = shutil.which("mbpoll")
    assert exe is not None, "mbpoll is not installed (Debian package mbpoll)"
    proc = await asyncio.create_subprocess_exec(
        exe,
        *("-m", "rtu", "-b", str(baud), "-P", "none", "-a", str(unit), "-1", "-o", "2"),
        *(*args, port),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=15)
    assert proc.returncode == 0, out.decode() + err.decode()
    return {int(ref): float(value) for ref, value in MBPOLL_LINE.findall(out.decode())}


SDM630 = {
    "power_w": -1250.5,
    "frequency_hz": 49.98,
    "energy_import_kwh": 98765.25,
    "energy_export_kwh": 12.5,
}
IEM3155 = {
    "power_w": 17250.0,
    "voltage_v": 230.5,
    "frequency_hz": 50.02,
    "energy_import_kwh": 9876543.21,
    "energy_export_kwh": 12.345,
}
ADW300 = {
    "voltage_v": 231.4,
    "current_a": 123.45,
    "power_w": -41234.0,
    "energy_import_kwh": 1234567.89,
    "energy_export_kwh": 0.5,
}


def test_sdm630_over_rtu_reads_what_mbpoll_reads(line: Line) -> None:
    async def scenario() -> tuple[dict[str, float], dict[int, float]]:
        meter = SimGateway([MeterDevice("eastron_sdm630", lambda: SDM630, device_id=2)])
        await meter.start_rtu(line.meters, baudrate=9600)
        try:
            source = make_source(line.agent, profile="eastron_sdm630", device_id=2)
            try:
                ours = by_metric(await source.read())
            finally:
                await source.close()  # the port is opened exclusively: free it for mbpoll
            # Register 30071 is reference 71 (address 0x46): frequency, import, export.
            theirs = await mbpoll_rtu(line.agent, 2, "-t", "3:float", "-B", "-r", "71", "-c", "3")
        finally:
            await meter.stop()
        return ours, theirs

    ours, theirs = asyncio.run(scenario())
    assert ours == approx_all(SDM630)
    assert theirs == {
        71: pytest.approx(ours["frequency_hz"], rel=1e-5),
        73: pytest.approx(ours["energy_import_kwh"], rel=1e-5),
        75: pytest.approx(ours["energy_export_kwh"], rel=1e-5),
    }


def test_two_meters_on_one_line_read_concurrently_without_interleaving(line: Line) -> None:
    second = {**SDM630, "power_w": 3210.0, "energy_import_kwh": 5.25}

    async def scenario() -> tuple[list[tuple[int, dict[str, float]]], bool, dict[int, float]]:
        gateway = SimGateway(
            [
                MeterDevice("eastron_sdm630", lambda: SDM630, device_id=3),
                MeterDevice("eastron_sdm630", lambda: second, device_id=7),
                MeterDevice("schneider_iem3155", lambda: IEM3155, device_id=11),
            ]
        )
        await gateway.start_rtu(line.meters)
        sources = {
            3: make_source(line.agent, id="m3", profile="eastron_sdm630", device_id=3),
            7: make_source(line.agent, id="m7", profile="eastron_sdm630", device_id=7),
            11: make_source(line.agent, id="m11", profile="schneider_iem3155", device_id=11),
        }
        try:
            order = [unit for _ in range(7) for unit in sources]  # 21 reads, all at once
            results = await asyncio.gather(*(sources[u].read() for u in order))
            shared = sources[3]._link is sources[7]._link is sources[11]._link
        finally:
            for source in sources.values():
                await source.close()
        try:
            theirs = await mbpoll_rtu(line.agent, 7, "-t", "3:float", "-B", "-r", "53")
        finally:
            await gateway.stop()
        return list(zip(order, map(by_metric, results), strict=True)), shared, theirs

    seen, shared, theirs = asyncio.run(scenario())
    expected = {3: SDM630, 7: second, 11: IEM3155}
    assert len(seen) == 21
    for unit, got in seen:
        assert got == approx_all(expected[unit]), unit
    assert shared  # one serial client for the whole line
    assert theirs == {53: 3210.0}


def test_wrong_device_id_is_unreachable_with_a_hint_and_the_line_still_works(line: Line) -> None:
    async def scenario() -> tuple[str, dict[str, float]]:
        meter = SimGateway([MeterDevice("eastron_sdm630", lambda: SDM630, device_id=3)])
        await meter.start_rtu(line.meters)
        wrong = make_source(
            line.agent, id="wrong", profile="eastron_sdm630", device_id=4, timeout_s=0.6
        )
        right = make_source(line.agent, id="right", profile="eastron_sdm630", device_id=3)
        try:
            with pytest.raises(TargetUnreachable) as info:
                await wrong.read()
            return str(info.value), by_metric(await right.read())
        finally:
            await wrong.close()
            await right.close()
            await meter.stop()

    message, readings = asyncio.run(scenario())
    assert message.startswith(f"rtu:{line.agent}/4: no valid answer for input registers")
    assert "check device_id 4" in message
    assert "9600-8N1" in message
    assert readings == approx_all(SDM630)


def test_meters_on_one_port_must_share_line_settings(line: Line) -> None:
    async def scenario() -> str:
        meter = SimGateway([MeterDevice("eastron_sdm630", lambda: SDM630, device_id=3)])
        await meter.start_rtu(line.meters)
        first = make_source(line.agent, id="first", profile="eastron_sdm630", device_id=3)
        other = make_source(
            line.agent, id="other", profile="eastron_sdm630", device_id=4, baudrate=19200
        )
        try:
            await first.read()
            with pytest.raises(SourceError) as info:
                await other.read()
            assert by_metric(await first.read()) == approx_all(SDM630)
            return str(info.value)
        finally:
            await first.close()
            await other.close()
            await meter.stop()

    message = asyncio.run(scenario())
    assert "19200-8N1" in message and "9600-8N1" in message and "source first" in message


def test_aliases_of_one_serial_port_share_its_link(line: Line) -> None:
    # The pty's link and its /dev/pts path are two names of one device, like a by-id alias.
    device = os.path.realpath(line.agent)
    assert device != line.agent

    async def scenario() -> tuple[dict[str, float], dict[str, float], bool]:
        meter = SimGateway(
            [
                MeterDevice("eastron_sdm630", lambda: SDM630, device_id=3),
                MeterDevice("acrel_adw300", lambda: ADW300, device_id=4),
            ]
        )
        await meter.start_rtu(line.meters)
        by_alias = make_source(line.agent, id="a", profile="eastron_sdm630", device_id=3)
        by_device = make_source(device, id="b", profile="acrel_adw300", device_id=4)
        try:
            first, second = await asyncio.gather(by_alias.read(), by_device.read())
            return by_metric(first), by_metric(second), by_alias._link is by_device._link
        finally:
            await by_alias.close()
            await by_device.close()
            await meter.stop()

    first, second, shared = asyncio.run(scenario())
    assert first == approx_all(SDM630)
    assert second == approx_all(ADW300)
    assert shared


def test_missing_serial_port_is_unreachable(tmp_path: Path) -> None:
    source = make_source(str(tmp_path / "ttyUSB9"), profile="eastron_sdm630", timeout_s=1)
    with pytest.raises(TargetUnreachable, match=r"cannot connect.*check serial_port"):
        asyncio.run(source.read())


# One register of each new profile as mbpoll sees it over RTU: (values served, metric,
# mbpoll type, 1-based reference, metric = raw * factor). The ADL3000-E is checked below.
PROBES: dict[str, tuple[dict[str, float], str, str, int, float]] = {
    # Register 3060 (address 3059), float32 kW; mbpoll has no 64-bit type for the energy.
    "schneider_iem3155": (IEM3155, "power_w", "4:float", 3060, 1000.0),
    # Address 26, uint16 x 0.01 A.
    "acrel_adw300": (ADW300, "current_a", "4", 27, 0.01),
}


@pytest.mark.parametrize("profile", sorted(PROBES))
def test_new_profiles_round_trip_over_rtu(line: Line, profile: str) -> None:
    values, metric, mb_type, reference, factor = PROBES[profile]

    async def scenario() -> tuple[dict[str, float], dict[int, float]]:
        meter = SimGateway([MeterDevice(profile, lambda: values, device_id=21)])
        await meter.start_rtu(line.meters, baudrate=19200)
        try:
            source = make_source(line.agent, profile=profile, device_id=21, baudrate=19200)
            try:
                ours = by_metric(await source.read())
            finally:
                await source.close()
            theirs = await mbpoll_rtu(
                line.agent, 21, "-t", mb_type, "-B", "-r", str(reference), baud=19200
            )
        finally:
            await meter.stop()
        return ours, theirs

    ours, theirs = asyncio.run(scenario())
    assert ours == approx_all(values)
    assert theirs == {reference: pytest.approx(ours[metric] / factor, rel=1e-6)}


def test_ct_pt_secondary_meter_over_rtu_matches_mbpoll_times_ratios(line: Line) -> None:
    # An Acrel ADL3000-E behind 200/5 A CTs (40) and 10 kV/100 V PTs (100): its energy
    # registers hold secondary kWh x 100; the source multiplies by 0.01 x CT x PT.
    ct, pt = 40.0, 100.0
    primary = {"energy_import_kwh": 1234.56 * ct * pt, "energy_export_kwh": 7.5 * ct * pt}

    async def scenario() -> tuple[dict[str, float], dict[int, float]]:
        device = MeterDevice("acrel_adl3000", lambda: primary, 5, ct_ratio=ct, pt_ratio=pt)
        meter = SimGateway([device])
        await meter.start_rtu(line.meters)
        try:
            source = make_source(
                line.agent, profile="acrel_adl3000", device_id=5, ct_ratio=ct, pt_ratio=pt
            )
            try:
                ours = by_metric(await source.read())
            finally:
                await source.close()
            # Addresses 0x000A and 0x0014, 32-bit, high word first: references 11 and 21.
            theirs = await mbpoll_rtu(line.agent, 5, "-t", "4:int", "-B", "-r", "11")
            theirs.update(await mbpoll_rtu(line.agent, 5, "-t", "4:int", "-B", "-r", "21"))
        finally:
            await meter.stop()
        return ours, theirs

    ours, theirs = asyncio.run(scenario())
    assert theirs == {11: 123456.0, 21: 750.0}  # secondary, in 0.01 kWh
    assert ours["energy_import_kwh"] == pytest.approx(theirs[11] * 0.01 * ct * pt, rel=1e-12)
    assert ours["energy_export_kwh"] == pytest.approx(theirs[21] * 0.01 * ct * pt, rel=1e-12)
    assert ours == {k: pytest.approx(v, rel=1e-12) for k, v in primary.items()}
