"""A Modbus meter's identity: its profile, and Read Device Identification from the simulator."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import structlog

from dcmeter.agent.sources.modbus import ModbusConfig
from dcmeter.sim.meters import MeterDevice, SimGateway, SimMeter

VALUES = {"power_w": 1500.0, "energy_import_kwh": 42.0, "energy_export_kwh": 0.0,
          "voltage_v": 230.0, "current_a": 6.5, "frequency_hz": 50.0}
IDENTITY = {0x00: "Eastron", 0x01: "SDM630-MBUS", 0x02: "V2.1", 0x05: "SDM630 Modbus V2"}


def _config(port: int, device_id: int = 1) -> ModbusConfig:
    return ModbusConfig.model_validate({
        "type": "modbus", "id": "meter-1", "host": "127.0.0.1", "port": port,
        "profile": "eastron_sdm630", "device_id": device_id,
    })


async def _identities(
    served: SimGateway, device_ids: list[int]
) -> list[tuple[Mapping[str, str], Mapping[str, str], Mapping[str, str], int]]:
    """Per device id: device before any read, after two reads, after close and a read, and
    how many readings the first read gave."""
    port = await served.start()
    out = []
    try:
        for device_id in device_ids:
            source = _config(port, device_id).build()
            before = dict(source.info.device)
            first = await source.read()
            await source.read()
            after = dict(source.info.device)
            await source.close()
            await source.read()
            again = dict(source.info.device)
            await source.close()
            out.append((before, after, again, len(first)))
    finally:
        await served.stop()
    return out


def _sim(identity: Mapping[int, str] | None) -> SimMeter:
    values: dict[str, float] = {k: v for k, v in VALUES.items()}
    return SimMeter("eastron_sdm630", lambda: values, identity=identity)


def test_meter_answering_device_identification_reports_it_with_its_profile() -> None:
    ((before, after, again, n),) = asyncio.run(_identities(_sim(IDENTITY), [1]))
    assert before == {}
    assert after == again == {"profile": "eastron_sdm630", "make": "Eastron",
                              "product_id": "SDM630-MBUS", "firmware": "V2.1",
                              "model": "SDM630 Modbus V2"}
    assert n > 0


def test_meter_refusing_device_identification_has_its_profile_and_no_error() -> None:
    with structlog.testing.capture_logs() as logs:
        ((before, after, _, n),) = asyncio.run(_identities(_sim(None), [1]))
    assert (before, after) == ({}, {"profile": "eastron_sdm630"})
    assert n > 0  # the readings are there all the same
    assert [e for e in logs if e["log_level"] in ("warning", "error")] == []


def test_gateway_answers_per_device_id() -> None:
    def meter(device_id: int, identity: Any) -> MeterDevice:
        return MeterDevice("eastron_sdm630", lambda: VALUES, device_id, identity=identity)

    gateway = SimGateway([meter(3, {0x00: "Acme", 0x04: "PM-3"}), meter(4, None)])
    (_, three, _, _), (_, four, _, _) = asyncio.run(_identities(gateway, [3, 4]))
    assert three == {"profile": "eastron_sdm630", "make": "Acme", "model": "PM-3"}
    assert four == {"profile": "eastron_sdm630"}
