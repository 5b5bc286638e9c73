"""The modbus source against a real Modbus TCP server (pymodbus) and Debian's mbpoll."""

from __future__ import annotations

import asyncio
import math
import re
import shutil
import socket
import time
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from dcmeter.agent.samples import Reading
from dcmeter.agent.sources import DeviceError, TargetUnreachable
from dcmeter.agent.sources.modbus import ModbusConfig, ModbusSource, plan_requests
from dcmeter.agent.sources.modbus_profiles import PROFILES, RegisterConfig
from dcmeter.sim.meters import MeterDevice, SimGateway, SimMeter, encode_registers


def make_source(port: int, **fields: Any) -> ModbusSource:
    """Build a modbus source for 127.0.0.1:port from config fields."""
    data: dict[str, Any] = {"type": "modbus", "id": "meter-1", "host": "127.0.0.1", "port": port}
    return ModbusConfig.model_validate({**data, **fields}).build()


async def read_from_sim(
    served: str | list[RegisterConfig], values: Mapping[str, float], **fields: Any
) -> list[Reading]:
    """Serve `values` from a simulated meter and read them once through a ModbusSource."""
    meter = SimMeter(served, lambda: values)
    port = await meter.start()
    try:
        if "profile" not in fields and "registers" not in fields:
            if isinstance(served, str):
                fields["profile"] = served
            else:
                fields["registers"] = [r.model_dump() for r in served]
        source = make_source(port, **fields)
        try:
            return await source.read()
        finally:
            await source.close()
    finally:
        await meter.stop()


def by_metric(readings: list[Reading]) -> dict[str, float]:
    """Map metric name -> value."""
    return {r.metric.name: r.value for r in readings}


def reg(**fields: Any) -> RegisterConfig:
    """A register config from keyword fields (config-file keys)."""
    return RegisterConfig.model_validate({"metric": "x_w", "unit": "W", **fields})


# (type, scale, values in the metric's unit): extremes of each type, negatives, scaling.
TYPE_CASES = [
    ("u16", 1.0, [0.0, 65535.0]),
    ("u16", 0.1, [6553.5]),
    ("i16", 1.0, [-32768.0, 32767.0]),
    ("i16", 0.1, [-123.4]),
    ("u32", 1.0, [4294967295.0]),
    ("u32", 0.001, [4294967.295]),
    ("i32", 1.0, [-2147483648.0, 2147483647.0]),
    ("i32", 0.01, [-1234.56]),
    ("u64", 1.0, [2.0**63 + 2.0**40]),
    ("u64", 0.001, [1234567890123.456]),
    ("i64", 1.0, [-(2.0**63), -(2.0**53) + 1]),
    ("i64", 0.001, [-98765432.1]),
    ("float32", 1.0, [-1234.5, 3.0e38]),
    ("float32", 1000.0, [-4200.0]),
    ("float64", 1.0, [-123456.789012345, 1.0e-300]),
    ("float64", 0.5, [-7.25]),
]


@pytest.mark.parametrize("word_order", ["big", "little"])
@pytest.mark.parametrize(("type_", "scale", "values"), TYPE_CASES)
def test_every_type_and_word_order_decodes(
    type_: str, scale: float, values: list[float], word_order: str
) -> None:
    register = reg(address=100, register="holding", type=type_, word_order=word_order, scale=scale)
    current: dict[str, float] = {}

    async def scenario() -> list[float]:
        meter = SimMeter([register], lambda: current)
        port = await meter.start()
        source = make_source(port, registers=[register.model_dump()])
        seen = []
        try:
            for value in values:  # the meter computes registers at read time
                current["x_w"] = value
                (reading,) = await source.read()
                seen.append(reading.value)
        finally:
            await source.close()
            await meter.stop()
        return seen

    seen = asyncio.run(scenario())
    rel = 1e-6 if type_ == "float32" else 1e-12
    assert seen == [pytest.approx(v, rel=rel) for v in values]


def test_encoding_follows_the_modbus_convention() -> None:
    # Big word order puts the high word first; bytes are big-endian within each word.
    assert encode_registers(reg(address=0, type="float32"), 1.0) == [0x3F80, 0x0000]
    assert encode_registers(reg(address=0, type="float32", word_order="little"), 1.0) == [
        0x0000,
        0x3F80,
    ]
    assert encode_registers(reg(address=0, type="u32"), 0x12345678) == [0x1234, 0x5678]
    assert encode_registers(reg(address=0, type="i16"), -2) == [0xFFFE]
    assert encode_registers(reg(address=0, type="i64", scale=0.001), -0.001) == [0xFFFF] * 4
    assert encode_registers(reg(address=0, type="u64", word_order="little"), 1) == [1, 0, 0, 0]


PROFILE_VALUES: dict[str, dict[str, float]] = {
    "eastron_sdm630": {
        "power_w": -1250.5,
        "frequency_hz": 49.98,
        "energy_import_kwh": 98765.25,
        "energy_export_kwh": 12.5,
    },
    "eastron_sdm120": {
        "power_w": 2300.0,
        "frequency_hz": 50.02,
        "energy_import_kwh": 4321.75,
        "energy_export_kwh": 0.0,
    },
    "schneider_pm5100": {"power_w": 42000.0, "energy_import_kwh": 123456789.012},
    "schneider_iem3155": {
        "power_w": -17250.0,
        "voltage_v": 230.5,
        "frequency_hz": 49.9,
        "energy_import_kwh": 9876543.21,
        "energy_export_kwh": 12.345,
    },
    "acrel_adw300": {
        "voltage_v": 231.4,
        "current_a": 123.45,
        "power_w": -41234.0,
        "energy_import_kwh": 1234567.89,
        "energy_export_kwh": 0.5,
    },
    "acrel_adl3000": {"energy_import_kwh": 123456.78, "energy_export_kwh": 0.5},
}


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_each_profile_reads_back_what_the_meter_serves(profile: str) -> None:
    values = PROFILE_VALUES[profile]
    before = time.time_ns()
    readings = asyncio.run(read_from_sim(profile, values))
    after = time.time_ns()

    got = by_metric(readings)
    assert got == {name: pytest.approx(v, rel=1e-6, abs=1e-9) for name, v in values.items()}
    for r in readings:
        assert before <= r.ts_ns <= after
        assert r.metric.name.endswith(("_w", "_kwh", "_hz", "_v", "_a"))
    kinds = {r.metric.name: r.metric.kind for r in readings}
    assert kinds.get("power_w", "gauge") == "gauge"
    assert kinds["energy_import_kwh"] == "counter"


def test_every_profile_has_test_values() -> None:
    assert set(PROFILE_VALUES) == set(PROFILES)


def test_pm5100_energy_counter_declares_its_64_bit_modulus() -> None:
    readings = asyncio.run(read_from_sim("schneider_pm5100", PROFILE_VALUES["schneider_pm5100"]))
    energy = next(r for r in readings if r.metric.name == "energy_import_kwh")
    assert energy.metric.unit == "kWh"
    assert energy.metric.modulus == pytest.approx(2.0**64 * 0.001)


def test_integer_counter_wraps_like_a_register() -> None:
    counter = reg(
        metric="energy_import_kwh", unit="kWh", address=0, type="u32", scale=0.001, kind="counter"
    )
    modulus = 2**32 * 0.001
    readings = asyncio.run(read_from_sim([counter], {"energy_import_kwh": modulus + 5.0}))
    (reading,) = readings
    assert reading.value == pytest.approx(5.0)
    assert reading.metric.modulus == pytest.approx(modulus)


def test_nan_from_meter_is_left_out() -> None:
    registers = [
        reg(metric="power_w", address=0, register="input", type="float32"),
        reg(metric="frequency_hz", unit="Hz", address=2, register="input", type="float32"),
    ]
    readings = asyncio.run(read_from_sim(registers, {"power_w": math.nan, "frequency_hz": 50.0}))
    assert by_metric(readings) == {"frequency_hz": 50.0}


def test_source_identity() -> None:
    source = make_source(1502, profile="eastron_sdm630", device_id=7, labels={"point": "it_ups"})
    assert source.info.protocol == "modbus"
    assert source.info.address == "127.0.0.1:1502/7"
    assert source.info.labels == {"kind": "meter", "point": "it_ups"}


# --- cross-check with an independent client --------------------------------------------

MBPOLL = shutil.which("mbpoll")
MBPOLL_LINE = re.compile(r"^\[(\d+)\]:\s+(\S+)$", re.MULTILINE)


async def mbpoll(port: int, *args: str, unit: int = 1) -> dict[int, float]:
    """Poll the meter once with mbpoll; return {reference: value} as it prints them."""
    assert MBPOLL is not None, "mbpoll is not installed (Debian package mbpoll)"
    proc = await asyncio.create_subprocess_exec(
        MBPOLL,
        *("-m", "tcp", "-p", str(port), "-a", str(unit), "-1", "-o", "2", *args, "127.0.0.1"),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=10)
    assert proc.returncode == 0, err.decode()
    return {int(ref): float(value) for ref, value in MBPOLL_LINE.findall(out.decode())}


def test_mbpoll_reads_what_the_source_reads() -> None:
    values = {
        "power_w": -1250.5,
        "frequency_hz": 49.98,
        "energy_import_kwh": 98765.2,
        "energy_export_kwh": 12.5,
    }
    counter_i32 = reg(metric="energy_export_kwh", unit="kWh", address=10, type="i32")
    little_i32 = counter_i32.model_copy(update={"word_order": "little"})

    async def scenario() -> None:
        meter = SimMeter("eastron_sdm630", lambda: values)
        port = await meter.start()
        source = make_source(port, profile="eastron_sdm630")
        try:
            ours = by_metric(await source.read())
            # 1-based references: register 30071 is reference 71, address 0x46.
            theirs = await mbpoll(port, "-t", "3:float", "-B", "-r", "71", "-c", "3")
            power = await mbpoll(port, "-t", "3:float", "-B", "-0", "-r", str(0x34))
        finally:
            await source.close()
            await meter.stop()
        assert theirs == {
            71: pytest.approx(ours["frequency_hz"], rel=1e-5),
            73: pytest.approx(ours["energy_import_kwh"], rel=1e-5),
            75: pytest.approx(ours["energy_export_kwh"], rel=1e-5),
        }
        assert power == {0x34: pytest.approx(ours["power_w"], rel=1e-5)}

        # Schneider numbering: register 3060 (kW) is reference 3060 for mbpoll, address 3059.
        pm_values = {"power_w": 42000.0, "energy_import_kwh": 1.0}
        pm = SimMeter("schneider_pm5100", lambda: pm_values)
        port = await pm.start()
        source = make_source(port, profile="schneider_pm5100")
        try:
            ours = by_metric(await source.read())
            kw = await mbpoll(port, "-t", "4:float", "-B", "-r", "3060")
        finally:
            await source.close()
            await pm.stop()
        assert kw == {3060: pytest.approx(ours["power_w"] / 1000, rel=1e-5)}

        # mbpoll's default 32-bit order is low word first, our "little".
        for register, flags in ((counter_i32, ["-B"]), (little_i32, [])):
            meter = SimMeter([register], lambda: {"energy_export_kwh": -7654321.0})
            port = await meter.start()
            source = make_source(port, registers=[register.model_dump()])
            try:
                ours = by_metric(await source.read())
                theirs = await mbpoll(port, "-t", "4:int", *flags, "-0", "-r", "10")
            finally:
                await source.close()
                await meter.stop()
            assert theirs == {10: ours["energy_export_kwh"]} == {10: -7654321.0}

    asyncio.run(scenario())


# --- failures -------------------------------------------------------------------------


def free_port() -> int:
    """A loopback TCP port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_closed_port_is_unreachable_quickly() -> None:
    source = make_source(free_port(), profile="eastron_sdm630", timeout_s=2)
    started = time.monotonic()
    with pytest.raises(TargetUnreachable, match="cannot connect"):
        asyncio.run(source.read())
    assert time.monotonic() - started < 1.0


def test_silent_device_is_unreachable_within_the_timeout() -> None:
    async def scenario() -> float:
        writers: list[asyncio.StreamWriter] = []

        async def swallow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writers.append(writer)
            await reader.read()  # accept requests, never answer

        server = await asyncio.start_server(swallow, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        source = make_source(port, profile="eastron_sdm630", timeout_s=0.4, retries=1)
        started = time.monotonic()
        try:
            with pytest.raises(TargetUnreachable, match="no valid answer"):
                await source.read()
        finally:
            await source.close()
            for writer in writers:
                writer.close()
                await writer.wait_closed()
            server.close()
            await server.wait_closed()
        return time.monotonic() - started

    assert asyncio.run(scenario()) < 2.0


def test_unmapped_address_is_a_device_error() -> None:
    unmapped = reg(address=0x0100, register="input", type="float32")
    with pytest.raises(DeviceError, match=r"exception code 2 .*input registers 256\.\.257"):
        asyncio.run(read_from_sim("eastron_sdm630", {}, registers=[unmapped.model_dump()]))


def test_wrong_register_table_is_a_device_error() -> None:
    as_holding = reg(metric="power_w", address=0x0034, register="holding", type="float32")
    with pytest.raises(DeviceError, match="exception code 2"):
        asyncio.run(
            read_from_sim(
                "eastron_sdm630",
                PROFILE_VALUES["eastron_sdm630"],
                registers=[as_holding.model_dump()],
            )
        )


def test_reconnects_after_the_meter_comes_back() -> None:
    values = PROFILE_VALUES["eastron_sdm120"]

    async def scenario() -> list[float]:
        meter = SimMeter("eastron_sdm120", lambda: values)
        port = await meter.start()
        source = make_source(port, profile="eastron_sdm120", timeout_s=0.4)
        powers = []
        try:
            powers.append(by_metric(await source.read())["power_w"])
            await meter.stop()
            with pytest.raises(TargetUnreachable):
                await source.read()
            await meter.start(port=port)
            powers.append(by_metric(await source.read())["power_w"])
        finally:
            await source.close()
            await meter.stop()
        return powers

    assert asyncio.run(scenario()) == [2300.0, 2300.0]


# --- configuration ----------------------------------------------------------------------


def test_bad_profile_name_lists_the_valid_ones() -> None:
    with pytest.raises(ValidationError) as info:
        ModbusConfig.model_validate(
            {"type": "modbus", "id": "m", "host": "10.0.0.5", "profile": "sdm630"}
        )
    message = str(info.value)
    for name in PROFILES:
        assert name in message


def test_config_needs_a_profile_or_registers() -> None:
    with pytest.raises(ValidationError, match="profile or at least one"):
        ModbusConfig.model_validate({"type": "modbus", "id": "m", "host": "10.0.0.5"})


def test_custom_register_replaces_the_profile_entry_of_the_same_metric() -> None:
    config = ModbusConfig.model_validate(
        {
            "type": "modbus",
            "id": "m",
            "host": "10.0.0.5",
            "profile": "eastron_sdm630",
            "registers": [
                {
                    "metric": "power_w",
                    "address": 0x0500,
                    "register": "input",
                    "type": "float32",
                    "unit": "W",
                },
                {
                    "metric": "current_a",
                    "address": 0x0006,
                    "register": "input",
                    "type": "float32",
                    "unit": "A",
                },
            ],
        }
    )
    by_name = {r.metric: r for r in config.register_map()}
    assert by_name["power_w"].address == 0x0500
    assert by_name["current_a"].address == 0x0006
    assert len(config.register_map()) == len(PROFILES["eastron_sdm630"]) + 1


def test_register_config_rejects_nonsense() -> None:
    with pytest.raises(ValidationError):
        reg(address=65535, type="u32")  # runs past the address space
    with pytest.raises(ValidationError):
        reg(address=0, type="u16", modulus=100.0)  # a gauge cannot wrap
    with pytest.raises(ValidationError):
        reg(address=0, type="u16", registr="input")  # misspelt key


def test_requests_group_contiguous_registers_of_one_table() -> None:
    registers = [
        reg(metric="a_w", address=0, register="input", type="float32"),
        reg(metric="b_w", address=2, register="input", type="float32"),
        reg(metric="c_w", address=2, register="holding", type="float32"),
        reg(metric="d_w", address=10, register="input", type="float32"),
        reg(metric="e_w", address=200, register="input", type="float64"),
        reg(metric="f_w", address=204, register="input", type="u16"),
    ]
    plan = [
        (r.table, r.start, r.count, [m.metric for m in r.members]) for r in plan_requests(registers)
    ]
    assert plan == [
        ("holding", 2, 2, ["c_w"]),
        ("input", 0, 4, ["a_w", "b_w"]),
        ("input", 10, 2, ["d_w"]),
        ("input", 200, 5, ["e_w", "f_w"]),
    ]
    many = [reg(metric=f"m{i}_w", address=2 * i, type="float32") for i in range(100)]
    counts = [r.count for r in plan_requests(many)]
    assert counts == [124, 76]
    assert [r.count for r in plan_requests(many, max_count=30)] == [30] * 6 + [20]


# --- new profiles cross-checked with mbpoll ---------------------------------------------

# One register of each new profile as mbpoll sees it: (mbpoll type, 1-based reference, how
# the raw value relates to the metric: metric = raw * factor).
PROFILE_PROBES: dict[str, tuple[str, str, int, float]] = {
    # Schneider register 3060 (address 3059), float32 kW.
    "schneider_iem3155": ("power_w", "4:float", 3060, 1000.0),
    # Acrel ADW300 address 62 (reference 63), int32 x 0.01 kWh.
    "acrel_adw300": ("energy_import_kwh", "4:int", 63, 0.01),
    # Acrel ADL3000-E address 0x000A (reference 11), 32-bit x 0.01 kWh.
    "acrel_adl3000": ("energy_import_kwh", "4:int", 11, 0.01),
}


@pytest.mark.parametrize("profile", sorted(PROFILE_PROBES))
def test_new_profiles_agree_with_mbpoll(profile: str) -> None:
    metric, mb_type, reference, factor = PROFILE_PROBES[profile]
    values = PROFILE_VALUES[profile]

    async def scenario() -> tuple[dict[str, float], dict[int, float]]:
        meter = SimMeter(profile, lambda: values, device_id=9)
        port = await meter.start()
        source = make_source(port, profile=profile, device_id=9)
        try:
            ours = by_metric(await source.read())
            theirs = await mbpoll(port, "-t", mb_type, "-B", "-r", str(reference), unit=9)
        finally:
            await source.close()
            await meter.stop()
        return ours, theirs

    ours, theirs = asyncio.run(scenario())
    assert ours[metric] == pytest.approx(values[metric], rel=1e-6)
    assert theirs == {reference: pytest.approx(ours[metric] / factor, rel=1e-6)}


# --- several meters behind one TCP gateway ----------------------------------------------

GATEWAY_METERS = {
    3: ("eastron_sdm630", PROFILE_VALUES["eastron_sdm630"]),
    7: ("schneider_iem3155", PROFILE_VALUES["schneider_iem3155"]),
    12: (
        "eastron_sdm630",
        {"power_w": 777.0, "frequency_hz": 50.01, "energy_import_kwh": 5.5, "energy_export_kwh": 0.0},
    ),
}


def test_meters_behind_one_gateway_share_one_connection() -> None:
    async def scenario() -> tuple[list[tuple[int, dict[str, float]]], int, int, int]:
        gateway = SimGateway(
            [MeterDevice(profile, lambda v=v: v, unit) for unit, (profile, v) in GATEWAY_METERS.items()]
        )
        port = await gateway.start()
        sources = {
            unit: make_source(port, id=f"meter-{unit}", profile=profile, device_id=unit)
            for unit, (profile, _) in GATEWAY_METERS.items()
        }
        try:
            order = [unit for _ in range(7) for unit in sources]  # 21 reads, all at once
            results = await asyncio.gather(*(sources[u].read() for u in order))
            during = gateway.connections
            cross = await mbpoll(port, "-t", "3:float", "-B", "-r", "53", unit=12)
        finally:
            for source in sources.values():
                await source.close()
        deadline = time.monotonic() + 5
        while gateway.connections and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        after = gateway.connections
        await gateway.stop()
        return list(zip(order, map(by_metric, results), strict=True)), during, after, int(cross[53])

    seen, during, after, mbpoll_power = asyncio.run(scenario())
    assert len(seen) == 21
    for unit, got in seen:
        expected = GATEWAY_METERS[unit][1]
        assert got == {k: pytest.approx(v, rel=1e-6, abs=1e-9) for k, v in expected.items()}
    assert during == 1  # one TCP connection for the three meters
    assert after == 0  # closed with its last user
    assert mbpoll_power == 777


def test_unknown_id_behind_a_gateway_is_a_device_error_naming_device_id() -> None:
    async def scenario() -> None:
        gateway = SimGateway([MeterDevice("eastron_sdm630", lambda: PROFILE_VALUES["eastron_sdm630"], 3)])
        port = await gateway.start()
        wrong = make_source(port, id="wrong", profile="eastron_sdm630", device_id=4)
        right = make_source(port, id="right", profile="eastron_sdm630", device_id=3)
        try:
            with pytest.raises(DeviceError, match=r"exception code 11 .*check device_id"):
                await wrong.read()
            # The shared connection still serves the meter that is there.
            assert by_metric(await right.read())["power_w"] == -1250.5
        finally:
            await wrong.close()
            await right.close()
            await gateway.stop()

    asyncio.run(scenario())


# --- CT/PT ratios -----------------------------------------------------------------------

# A meter behind 400/5 A current transformers (CT ratio 80) and 10 kV/100 V voltage
# transformers (PT ratio 100) that reports secondary values.
CT, PT = 80.0, 100.0
SECONDARY_MAP = [
    reg(metric="current_a", unit="A", address=0, type="u16", scale=0.001),
    reg(metric="voltage_v", unit="V", address=1, type="u16", scale=0.01),
    reg(metric="power_w", unit="W", address=2, type="float64"),
    reg(metric="energy_import_kwh", unit="kWh", address=6, type="u32", scale=0.01, kind="counter"),
    reg(metric="frequency_hz", unit="Hz", address=8, type="float32"),
    reg(metric="power_factor", unit="1", address=10, type="i16", scale=0.001),
    # Already primary: the meter multiplies this one itself.
    reg(metric="energy_export_kwh", unit="kWh", address=11, type="u32", kind="counter", primary=True),
]
# Primary values, each a whole number of register steps on the secondary side.
PRIMARY = {
    "current_a": 4.321 * CT,
    "voltage_v": 57.73 * PT,
    "power_w": 1234.5678 * CT * PT,
    "energy_import_kwh": 98765.43 * CT * PT,
    "frequency_hz": 50.0,
    "power_factor": 0.987,
    "energy_export_kwh": 4242.0,
}


def test_ct_pt_ratios_turn_secondary_registers_into_primary_values() -> None:
    async def scenario() -> tuple[list[Reading], list[Reading], dict[int, float]]:
        meter = SimMeter(SECONDARY_MAP, lambda: PRIMARY, ct_ratio=CT, pt_ratio=PT)
        port = await meter.start()
        registers = [r.model_dump() for r in SECONDARY_MAP]
        scaled = make_source(port, registers=registers, ct_ratio=CT, pt_ratio=PT)
        raw = make_source(port, id="raw", registers=registers)
        try:
            primary, secondary = await scaled.read(), await raw.read()
            words = await mbpoll(port, "-t", "4", "-0", "-r", "0", "-c", "2")
        finally:
            await scaled.close()
            await raw.close()
            await meter.stop()
        return primary, secondary, words

    primary, secondary, words = asyncio.run(scenario())
    got, sec = by_metric(primary), by_metric(secondary)
    # The meter holds secondary values (checked by an independent client) ...
    assert words == {0: 4321, 1: 5773}
    assert sec["current_a"] == pytest.approx(4.321, rel=1e-12)
    assert sec["voltage_v"] == pytest.approx(57.73, rel=1e-12)
    # ... and the source multiplies each by its ratio: current by CT, voltage by PT, power
    # and energy by both, frequency and power factor not at all, primary registers not at all.
    assert got["current_a"] == pytest.approx(sec["current_a"] * CT, rel=1e-12)
    assert got["voltage_v"] == pytest.approx(sec["voltage_v"] * PT, rel=1e-12)
    for name in ("power_w", "energy_import_kwh"):
        assert got[name] == pytest.approx(sec[name] * CT * PT, rel=1e-12)
    for name in ("frequency_hz", "power_factor", "energy_export_kwh"):
        assert got[name] == sec[name]
    assert got == {k: pytest.approx(v, rel=1e-12) for k, v in PRIMARY.items()}
    # The wrap of a secondary counter is in primary units too.
    moduli = {r.metric.name: r.metric.modulus for r in primary}
    assert moduli["energy_import_kwh"] == pytest.approx(2**32 * 0.01 * CT * PT)
    assert moduli["energy_export_kwh"] == 2.0**32
    assert {r.metric.name: r.metric.modulus for r in secondary}["energy_import_kwh"] == pytest.approx(2**32 * 0.01)


def test_secondary_counter_wraps_at_its_scaled_modulus() -> None:
    # ADL3000-E energy: u32 x 0.01 kWh on the secondary side, x CT x PT on the primary side.
    modulus = 2**32 * 0.01 * CT * PT
    values = {"energy_import_kwh": modulus + 2.5 * CT * PT, "energy_export_kwh": 0.0}

    async def scenario() -> list[Reading]:
        meter = SimMeter("acrel_adl3000", lambda: values, ct_ratio=CT, pt_ratio=PT)
        port = await meter.start()
        source = make_source(port, profile="acrel_adl3000", ct_ratio=CT, pt_ratio=PT)
        try:
            return await source.read()
        finally:
            await source.close()
            await meter.stop()

    energy = next(r for r in asyncio.run(scenario()) if r.metric.name == "energy_import_kwh")
    assert energy.value == pytest.approx(2.5 * CT * PT, rel=1e-12)
    assert energy.metric.modulus == pytest.approx(modulus)


def test_ratios_on_a_primary_profile_are_rejected() -> None:
    base = {"type": "modbus", "id": "m", "host": "10.0.0.5", "profile": "schneider_iem3155"}
    with pytest.raises(ValidationError, match="ct_ratio applies to no register"):
        ModbusConfig.model_validate({**base, "ct_ratio": 40})
    with pytest.raises(ValidationError, match="pt_ratio applies to no register"):
        ModbusConfig.model_validate({**base, "profile": "acrel_adw300", "pt_ratio": 100})
    with pytest.raises(ValidationError, match="greater than 0"):
        ModbusConfig.model_validate({**base, "profile": "acrel_adl3000", "ct_ratio": 0})
    # A secondary profile takes both; a voltage-only map takes a PT ratio but no CT ratio.
    ModbusConfig.model_validate({**base, "profile": "acrel_adl3000", "ct_ratio": 40, "pt_ratio": 100})
    volts = [{"metric": "voltage_v", "unit": "V", "address": 0, "type": "u16"}]
    del base["profile"]
    ModbusConfig.model_validate({**base, "registers": volts, "pt_ratio": 100})
    with pytest.raises(ValidationError, match="ct_ratio applies to no register"):
        ModbusConfig.model_validate({**base, "registers": volts, "ct_ratio": 40})


def config_errors(**fields: Any) -> list[tuple[tuple[int | str, ...], str]]:
    """(location, message) of each error validating a modbus config made of `fields`."""
    with pytest.raises(ValidationError) as info:
        ModbusConfig.model_validate({"type": "modbus", "id": "m", "profile": "eastron_sdm630", **fields})
    return [(e["loc"], e["msg"]) for e in info.value.errors()]


def test_transport_keys_are_checked() -> None:
    assert config_errors() == [(("host",), "Field required")]
    assert config_errors(host="10.0.0.5", serial_port="/dev/ttyUSB0", baudrate=19200) == [
        (("serial_port",), "applies only to transport = 'rtu'"),
        (("baudrate",), "applies only to transport = 'rtu'"),
    ]
    assert config_errors(transport="rtu") == [(("serial_port",), "Field required")]
    rtu = {"transport": "rtu", "serial_port": "/dev/ttyUSB0"}
    assert config_errors(**rtu, host="10.0.0.5", port=502) == [
        (("host",), "applies only to transport = 'tcp'"),
        (("port",), "applies only to transport = 'tcp'"),
    ]
    ((loc, msg),) = config_errors(**rtu, device_id=0)
    assert "broadcast" in msg
    ((loc, msg),) = config_errors(**rtu, parity="X")
    assert loc == ("parity",) and "'N', 'E' or 'O'" in msg
    ((loc, msg),) = config_errors(transport="udp", host="10.0.0.5")
    assert loc == ("transport",)
    config = ModbusConfig.model_validate(
        {"type": "modbus", "id": "m", "profile": "eastron_sdm630", **rtu, "device_id": 5, "parity": "E", "baudrate": 19200}
    )
    source = config.build()
    assert source.info.address == "rtu:/dev/ttyUSB0/5"
    assert (config.baudrate, config.parity, config.stopbits, config.bytesize) == (19200, "E", 1, 8)


def test_commented_modbus_examples_in_agent_toml_are_valid() -> None:
    text = (Path(__file__).resolve().parents[3] / "config" / "agent.toml").read_text()
    start = text.index("# ---- Modbus examples")
    end = text.index("# ---- end of Modbus examples")
    # Example lines are "#key = value"; prose lines are "# text" or "#".
    code = [line[1:] for line in text[start:end].splitlines() if re.match(r"#\S", line)]
    entries = tomllib.loads("\n".join(code))["sources"]
    configs = [ModbusConfig.model_validate(entry) for entry in entries]
    assert {c.transport for c in configs} == {"tcp", "rtu"}
    assert len({c.endpoint() for c in configs if c.transport == "rtu"}) == 1  # one shared line
    assert any(c.ct_ratio != 1 and c.pt_ratio != 1 for c in configs)
