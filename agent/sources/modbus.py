"""`modbus` source: electricity meters over Modbus TCP (pymodbus, imported only when used)."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from pydantic import Field, field_validator, model_validator

from agent.samples import Reading, SourceInfo, now_ns
from agent.sources import DeviceError, TargetUnreachable
from agent.sources.base import SourceConfigBase
from agent.sources.modbus_profiles import PROFILES, RegisterConfig

if TYPE_CHECKING:
    from pymodbus.client import AsyncModbusTcpClient
    from pymodbus.pdu import ModbusPDU

# The Modbus limit for one read of holding or input registers (FC03/FC04).
MAX_REGISTERS_PER_READ = 125

# Modbus exception codes (Modbus Application Protocol v1.1b3, section 7).
EXCEPTION_NAMES: dict[int, str] = {
    1: "illegal function",
    2: "illegal data address",
    3: "illegal data value",
    4: "device failure",
    5: "acknowledge",
    6: "device busy",
    8: "memory parity error",
    10: "gateway path unavailable",
    11: "gateway target failed to respond",
}

# What to check when a meter answers with one of these codes.
EXCEPTION_HINTS: dict[int, str] = {
    1: "check the register table (holding or input)",
    2: "check the addresses in the register map",
    4: "check device_id",
    10: "check device_id",
    11: "check device_id and the line behind the gateway",
}

_DATATYPE_NAMES: dict[str, str] = {
    "u16": "UINT16",
    "i16": "INT16",
    "u32": "UINT32",
    "i32": "INT32",
    "u64": "UINT64",
    "i64": "INT64",
    "float32": "FLOAT32",
    "float64": "FLOAT64",
}


class ModbusConfig(SourceConfigBase):
    """A Modbus TCP meter: a built-in profile, a custom register map, or a profile amended."""

    type: Literal["modbus"]
    host: str = Field(min_length=1)
    port: int = Field(default=502, ge=1, le=65535)
    device_id: int = Field(default=1, ge=0, le=247)
    profile: str | None = None
    registers: list[RegisterConfig] = Field(default_factory=list)
    retries: int = Field(default=1, ge=0, le=5)
    max_registers_per_read: int = Field(default=MAX_REGISTERS_PER_READ, ge=4, le=125)

    @field_validator("profile")
    @classmethod
    def _known_profile(cls, profile: str | None) -> str | None:
        if profile is not None and profile not in PROFILES:
            raise ValueError(f"unknown profile; valid profiles: {', '.join(sorted(PROFILES))}")
        return profile

    @model_validator(mode="after")
    def _has_registers(self) -> ModbusConfig:
        names = [r.metric for r in self.registers]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"registers name a metric twice: {', '.join(duplicates)}")
        if not self.register_map():
            raise ValueError("give a profile or at least one entry in registers")
        return self

    def register_map(self) -> list[RegisterConfig]:
        """The profile's registers with custom entries replacing those of the same metric."""
        custom = {r.metric: r for r in self.registers}
        base = PROFILES[self.profile] if self.profile is not None else []
        merged = [custom.pop(r.metric, r) for r in base]
        return merged + list(custom.values())

    def build(self) -> ModbusSource:
        """Make the source this config describes."""
        return ModbusSource(self)


@dataclass(frozen=True, slots=True)
class ReadRequest:
    """One FC03/FC04 request covering `count` registers from `start` and the values in it."""

    table: Literal["holding", "input"]
    start: int
    count: int
    members: tuple[RegisterConfig, ...]


def plan_requests(
    registers: list[RegisterConfig], max_count: int = MAX_REGISTERS_PER_READ
) -> list[ReadRequest]:
    """Group registers of one type that touch or overlap into requests of <= max_count words."""
    requests: list[ReadRequest] = []
    ordered = sorted(registers, key=lambda r: (r.table, r.address))
    group: list[RegisterConfig] = []
    start = end = 0  # the current group covers addresses [start, end)
    for reg in ordered:
        reg_end = reg.address + reg.words
        if (
            group
            and reg.table == group[0].table
            and reg.address <= end
            and max(end, reg_end) - start <= max_count
        ):
            group.append(reg)
            end = max(end, reg_end)
            continue
        if group:
            requests.append(ReadRequest(group[0].table, start, end - start, tuple(group)))
        group, start, end = [reg], reg.address, reg_end
    if group:
        requests.append(ReadRequest(group[0].table, start, end - start, tuple(group)))
    return requests


class ModbusSource:
    """One meter behind one Modbus TCP endpoint and device id.

    The TCP connection is opened on the first read and kept between reads; after a failed
    connection or an unanswered request it is dropped and opened again on the next read.
    Non-finite values (meters report NaN for quantities they cannot measure) are left out.
    """

    def __init__(self, config: ModbusConfig, clock: Callable[[], int] = now_ns) -> None:
        labels = {"kind": "meter", **config.labels}
        address = f"{config.host}:{config.port}/{config.device_id}"
        self.info = SourceInfo(config.id, "modbus", address, labels, config.accuracy)
        self._config = config
        self._clock = clock
        register_map = config.register_map()
        self._requests = plan_requests(register_map, config.max_registers_per_read)
        self._specs = {r.metric: r.metric_spec() for r in register_map}
        # The caller bounds the whole read by timeout_s; each attempt gets its share.
        self._attempt_timeout_s = config.timeout_s / (config.retries + 1)
        self._client: AsyncModbusTcpClient | None = None

    async def read(self) -> list[Reading]:
        """Read every configured register once and return the scaled values."""
        try:
            client = await self._connected_client()
            readings: list[Reading] = []
            for request in self._requests:
                registers, ts_ns = await self._fetch(client, request)
                readings.extend(self._decode(request, registers, ts_ns))
            return readings
        except TargetUnreachable:
            self._drop_client()
            raise
        except asyncio.CancelledError:
            # A late answer to an abandoned request would confuse the next one.
            self._drop_client()
            raise

    async def close(self) -> None:
        """Close the TCP connection, if one is open."""
        self._drop_client()

    async def _connected_client(self) -> AsyncModbusTcpClient:
        if self._client is not None and self._client.connected:
            return self._client
        self._drop_client()
        from pymodbus.client import AsyncModbusTcpClient

        client = AsyncModbusTcpClient(
            self._config.host,
            port=self._config.port,
            timeout=self._attempt_timeout_s,
            retries=self._config.retries,
            reconnect_delay=0,  # reconnect here, on the next read, not in the background
            name=self._config.id,
        )
        try:
            connected = await client.connect()
        except OSError as exc:
            client.close()
            raise TargetUnreachable(f"{self.info.address}: cannot connect: {exc}") from exc
        if not connected:
            client.close()
            raise TargetUnreachable(
                f"{self.info.address}: cannot connect (refused or timed out): "
                "check host, port and that the device serves Modbus TCP"
            )
        self._client = client
        return client

    async def _fetch(
        self, client: AsyncModbusTcpClient, request: ReadRequest
    ) -> tuple[list[int], int]:
        from pymodbus.exceptions import ConnectionException, ModbusException, ModbusIOException

        span = f"{request.table} registers {request.start}..{request.start + request.count - 1}"
        read = (
            client.read_input_registers
            if request.table == "input"
            else client.read_holding_registers
        )
        try:
            response: ModbusPDU = await read(
                request.start, count=request.count, device_id=self._config.device_id
            )
        except (ConnectionException, ModbusIOException, OSError) as exc:
            raise TargetUnreachable(f"{self.info.address}: no valid answer for {span}") from exc
        except ModbusException as exc:
            raise DeviceError(f"{self.info.address}: bad answer for {span}: {exc}") from exc
        ts_ns = self._clock()
        if response.isError():
            code = response.exception_code
            name = EXCEPTION_NAMES.get(code, "unknown")
            hint = EXCEPTION_HINTS.get(code, "see the meter's manual")
            raise DeviceError(
                f"{self.info.address}: exception code {code} ({name}) for {span}: {hint}"
            )
        registers = list(response.registers)
        if len(registers) < request.count:
            raise DeviceError(
                f"{self.info.address}: {len(registers)} of {request.count} {span} answered"
            )
        return registers, ts_ns

    def _decode(self, request: ReadRequest, registers: list[int], ts_ns: int) -> list[Reading]:
        from pymodbus.client import AsyncModbusTcpClient

        readings: list[Reading] = []
        for reg in request.members:
            offset = reg.address - request.start
            raw = AsyncModbusTcpClient.convert_from_registers(
                registers[offset : offset + reg.words],
                data_type=AsyncModbusTcpClient.DATATYPE[_DATATYPE_NAMES[reg.type]],
                word_order=reg.word_order,
            )
            if not isinstance(raw, int | float):
                raise DeviceError(f"{self.info.address}: cannot decode {reg.metric}")
            value = float(raw) * reg.scale
            if math.isfinite(value):
                readings.append(Reading(self._specs[reg.metric], value, ts_ns))
        return readings

    def _drop_client(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
