"""`modbus` source: electricity meters over Modbus TCP (own codec) or RTU (pymodbus, when used).

One source is one meter: an endpoint (a TCP host and port, or a serial port for RTU) and a
device id. Meters behind one gateway or on one RS-485 line are separate sources with the same
endpoint; they share one connection (see `modbus_transport`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import struct
from collections import deque
from collections.abc import Callable
from typing import Any, Literal

import structlog
from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from dcmeter.agent.samples import Reading, SourceInfo, now_ns
from dcmeter.agent.sources import DeviceError, TargetUnreachable
from dcmeter.agent.sources.base import SourceConfigBase
from dcmeter.agent.sources.modbus_codec import READ_HOLDING, READ_INPUT
from dcmeter.agent.sources.modbus_identity import identity_of, read_identification
from dcmeter.agent.sources.modbus_profiles import PROFILES, RegisterConfig
from dcmeter.agent.sources.modbus_transport import (
    EXCEPTION_HINTS,
    EXCEPTION_NAMES,
    MAX_REGISTERS_PER_READ,
    REFUSED_CODES,
    BadAnswer,
    Endpoint,
    LinkDown,
    LinkSilent,
    ModbusLink,
    ReadRequest,
    SerialLine,
    TcpEndpoint,
    acquire,
    plan_requests,
    release,
)

log = structlog.get_logger("dcmeter.agent.modbus")

# struct codes of the register types (pymodbus's DATATYPE codes for the same types).
_STRUCT_CODES: dict[str, str] = {
    "u16": "H",
    "i16": "h",
    "u32": "I",
    "i32": "i",
    "u64": "Q",
    "i64": "q",
    "float32": "f",
    "float64": "d",
}


_SERIAL_KEYS = ("serial_port", "baudrate", "parity", "stopbits", "bytesize")
_TCP_KEYS = ("host", "port")


class BlockRefused(DeviceError):
    """The meter refused one request's registers: exception 2 or 3, or a short answer."""


def split(request: ReadRequest) -> list[ReadRequest]:
    """One request per register of a block, in address order."""
    return [ReadRequest(request.table, r.address, r.words, (r,)) for r in request.members]


def span(request: ReadRequest) -> str:
    """The registers a request covers, for messages: `input registers 70..75`."""
    return f"{request.table} registers {request.start}..{request.start + request.count - 1}"


class ModbusConfig(SourceConfigBase):
    """A Modbus meter: a built-in profile, a custom register map, or a profile amended.

    `transport = "tcp"` (default) reads host:port; `"rtu"` reads a serial port with the line
    settings baudrate, parity, stopbits and bytesize (default 9600-8N1). `ct_ratio` and
    `pt_ratio` turn secondary values into primary ones (see `modbus_profiles`).
    """

    type: Literal["modbus"]
    transport: Literal["tcp", "rtu"] = "tcp"
    host: str | None = Field(default=None, min_length=1)
    port: int = Field(default=502, ge=1, le=65535)
    serial_port: str | None = Field(default=None, min_length=1)
    baudrate: int = Field(default=9600, ge=300, le=921600)
    parity: Literal["N", "E", "O"] = "N"
    stopbits: Literal[1, 2] = 1
    bytesize: Literal[7, 8] = 8
    device_id: int = Field(default=1, ge=0, le=247)
    profile: str | None = None
    registers: list[RegisterConfig] = Field(default_factory=list)
    retries: int = Field(default=1, ge=0, le=5)
    max_registers_per_read: int = Field(default=MAX_REGISTERS_PER_READ, ge=4, le=125)
    ct_ratio: float = Field(default=1.0, gt=0, le=1e6)
    pt_ratio: float = Field(default=1.0, gt=0, le=1e6)

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

    @model_validator(mode="before")
    @classmethod
    def _transport_keys(cls, data: Any) -> Any:
        """Name the key a transport needs or forbids, as pydantic names a missing field."""
        if not isinstance(data, dict):
            return data
        transport = data.get("transport", "tcp")
        if transport not in ("tcp", "rtu"):
            return data  # the field's own validation names the valid values
        needed, foreign, other = (
            ("host", _SERIAL_KEYS, "rtu")
            if transport == "tcp"
            else ("serial_port", _TCP_KEYS, "tcp")
        )
        errors = (
            [] if needed in data else [InitErrorDetails(type="missing", loc=(needed,), input=data)]
        )
        for key in foreign:
            if key in data:
                only = PydanticCustomError(
                    "transport_key", "applies only to transport = '{other}'", {"other": other}
                )
                errors.append(InitErrorDetails(type=only, loc=(key,), input=data[key]))
        if errors:
            raise ValidationError.from_exception_data(cls.__name__, errors)
        return data

    @model_validator(mode="after")
    def _rtu_device_id(self) -> ModbusConfig:
        if self.transport == "rtu" and self.device_id == 0:
            raise ValueError("device_id 0 is the RTU broadcast address: no meter answers it")
        return self

    @model_validator(mode="after")
    def _ratios_apply(self) -> ModbusConfig:
        registers = self.register_map()
        # Probe each ratio alone: does any register's factor move with it?
        for name, ratio, probe in (
            ("ct_ratio", self.ct_ratio, (2.0, 1.0)),
            ("pt_ratio", self.pt_ratio, (1.0, 2.0)),
        ):
            if ratio != 1 and all(r.ratio_factor(*probe) == 1 for r in registers):
                raise ValueError(
                    f"{name} applies to no register: the map's current, voltage, power and "
                    "energy registers are marked primary (the meter applies its own ratios; "
                    "set them in the meter), or there are none; for a meter that reports "
                    "secondary values, list its registers with primary = false"
                )
        return self

    def register_map(self) -> list[RegisterConfig]:
        """The profile's registers with custom entries replacing those of the same metric."""
        custom = {r.metric: r for r in self.registers}
        base = PROFILES[self.profile] if self.profile is not None else []
        merged = [custom.pop(r.metric, r) for r in base]
        return merged + list(custom.values())

    def endpoint(self) -> Endpoint:
        """The TCP endpoint or serial line this meter is read through."""
        if self.transport == "rtu":
            assert self.serial_port is not None  # checked by _transport_keys
            return SerialLine(
                self.serial_port, self.baudrate, self.parity, self.stopbits, self.bytesize
            )
        assert self.host is not None
        return TcpEndpoint(self.host, self.port)

    def build(self) -> ModbusSource:
        """Make the source this config describes."""
        return ModbusSource(self)


class ModbusSource:
    """One meter: a device id behind a TCP endpoint or on a serial line.

    The connection is opened on the first read and kept between reads, shared with every
    other source on the same endpoint; each request holds the link's lock until its answer
    (or its timeout), so meters on one line or gateway are read one request at a time. A TCP
    connection is dropped after a request goes unanswered and opened again on the next read;
    a serial port stays open, since on RTU a silent meter says nothing about the line.
    Non-finite values (meters report NaN for quantities they cannot measure) are left out.

    A meter (or gateway) that refuses a block of registers (exception 2 or 3, or fewer
    registers than asked) fails only that block's metrics. A refused block of several
    registers is split into one request per register, once, and read so from then on; a
    register the meter still refuses is one failed metric group, logged once when it starts
    failing and once when it answers again, and tried again on every read. The read fails
    as a whole only when the meter cannot be reached or refuses every block.
    """

    def __init__(self, config: ModbusConfig, clock: Callable[[], int] = now_ns) -> None:
        labels = {"kind": "meter", **config.labels}
        self._endpoint = config.endpoint()
        if isinstance(self._endpoint, SerialLine):
            address = f"rtu:{self._endpoint.port}/{config.device_id}"
        else:
            address = f"{config.host}:{config.port}/{config.device_id}"
        self.info = SourceInfo(config.id, "modbus", address, labels, config.accuracy)
        self._config = config
        self._clock = clock
        register_map = config.register_map()
        self._requests = plan_requests(register_map, config.max_registers_per_read)
        self._factors = {
            r.metric: r.ratio_factor(config.ct_ratio, config.pt_ratio) for r in register_map
        }
        self._specs = {r.metric: r.metric_spec(self._factors[r.metric]) for r in register_map}
        # The caller bounds the whole read by timeout_s; each attempt gets its share.
        self._attempt_timeout_s = config.timeout_s / (config.retries + 1)
        self._link: ModbusLink | None = None
        self._link_loop: asyncio.AbstractEventLoop | None = None
        # Failed metric groups: register span -> reason, as last logged.
        self.refused: dict[str, str] = {}
        self._identified = False  # Read Device Identification tried on this connection
        # Field decoders per request (by identity; the request is held with them).
        self._fields: dict[int, tuple[ReadRequest, tuple[FieldDecoder, ...]]] = {}

    async def read(self) -> list[Reading]:
        """Read every configured register once and return the scaled values."""
        link = self._acquire()
        readings: list[Reading] = []
        plan: list[ReadRequest] = []
        refused: list[tuple[ReadRequest, str]] = []
        queue = deque(self._requests)
        while queue:
            request = queue.popleft()
            try:
                registers, ts_ns = await self._fetch(link, request)
            except BlockRefused as exc:
                if len(request.members) > 1:
                    log.info(
                        "register block refused, reading its registers one by one",
                        source=self.info.id,
                        registers=span(request),
                        reason=str(exc),
                    )
                    queue.extendleft(reversed(split(request)))
                else:
                    plan.append(request)
                    refused.append((request, str(exc)))
                continue
            plan.append(request)
            readings.extend(self._decode(request, registers, ts_ns))
        self._requests = plan  # a split is kept: the meter refused the block once
        if refused and len(refused) == len(plan):
            raise DeviceError("; ".join(reason for _, reason in refused))
        self._report(refused)
        if not self._identified:
            await self._identify(link)
        return readings

    async def _identify(self, link: ModbusLink) -> None:
        """Read the meter's identity once, after its first good read (and again after the
        source was closed and opened): its profile, and Read Device Identification."""
        self._identified = True
        objects = await read_identification(
            link, self._config.device_id, self._attempt_timeout_s, 0
        )
        device = identity_of(self._config.profile, objects)
        if device != self.info.device:
            self.info = dataclasses.replace(self.info, device=device)

    def timeout_hint(self) -> str:
        """What no answer within timeout_s means for this meter (the poller's message)."""
        unit = f"device_id {self._config.device_id}"
        if isinstance(self._endpoint, SerialLine):
            return f"rtu: check serial_port, baudrate, parity, wiring and {unit}"
        return f"tcp: check host, port and {unit} (a gateway drops requests for an absent unit)"

    def _report(self, refused: list[tuple[ReadRequest, str]]) -> None:
        """Log each metric group once when it starts failing and once when it recovers."""
        now = {span(r): reason for r, reason in refused}
        for request, reason in refused:
            if span(request) not in self.refused:
                log.warning(
                    "metric group failed",
                    source=self.info.id,
                    registers=span(request),
                    metrics=[m.metric for m in request.members],
                    reason=reason,
                )
        for registers in self.refused.keys() - now.keys():
            log.info("metric group recovered", source=self.info.id, registers=registers)
        self.refused = now

    async def close(self) -> None:
        """Stop using the shared connection; the last user closes it."""
        link, loop = self._link, self._link_loop
        self._link = self._link_loop = None
        self._identified = False
        if link is not None and loop is not None:
            release(link, loop)

    def _acquire(self) -> ModbusLink:
        loop = asyncio.get_running_loop()
        if self._link is not None and self._link_loop is loop:
            return self._link
        if self._link is not None and self._link_loop is not None:
            release(self._link, self._link_loop)  # a link of an earlier event loop
        self._link = acquire(self._endpoint, self.info.id)
        self._link_loop = loop
        return self._link

    async def _fetch(self, link: ModbusLink, request: ReadRequest) -> tuple[list[int], int]:
        function = READ_INPUT if request.table == "input" else READ_HOLDING
        try:
            code, answered = await link.read_registers(
                function, request.start, request.count, self._config.device_id,
                self._attempt_timeout_s, self._config.retries,
            )
        except LinkSilent as exc:
            raise TargetUnreachable(self._no_answer(span(request), True)) from exc
        except LinkDown as exc:
            raise TargetUnreachable(self._no_answer(span(request), False)) from exc
        except BadAnswer as exc:
            raise DeviceError(
                f"{self.info.address}: bad answer for {span(request)}: {exc}"
            ) from exc
        ts_ns = self._clock()
        if code:
            name = EXCEPTION_NAMES.get(code, "unknown")
            hint = EXCEPTION_HINTS.get(code, "see the meter's manual")
            error = BlockRefused if code in REFUSED_CODES else DeviceError
            raise error(
                f"{self.info.address}: exception code {code} ({name}) for {span(request)}: {hint}"
            )
        registers = list(answered)
        if len(registers) < request.count:
            raise BlockRefused(
                f"{self.info.address}: {len(registers)} of {request.count} {span(request)} answered"
            )
        return registers, ts_ns

    def _no_answer(self, where: str, silent: bool) -> str:
        message = f"{self.info.address}: no valid answer for {where}"
        if not silent:
            return f"{message}: the connection failed"
        attempts = self._config.retries + 1
        within = f"within {attempts} x {self._attempt_timeout_s:g} s"
        if isinstance(self._endpoint, SerialLine):
            return (
                f"{message} {within}: on RTU a wrong device_id or line setting is silent: "
                f"check device_id {self._config.device_id}, the line settings "
                f"({self._endpoint.describe()}) and the A/B wiring"
            )
        return (
            f"{message} {within}: check that the device, or the meter behind the gateway "
            f"(device_id {self._config.device_id}), is powered and answering"
        )

    def _decode(self, request: ReadRequest, registers: list[int], ts_ns: int) -> list[Reading]:
        fields = self._fields.get(id(request))
        if fields is None or fields[0] is not request:
            fields = self._fields[id(request)] = (request, decoders(request, self._factors))
        readings: list[Reading] = []
        for f in fields[1]:
            words = registers[f.offset : f.offset + f.words]
            if f.little:
                words.reverse()
            (raw,) = f.value.unpack(f.packed.pack(*words))
            value = float(raw) * f.scale * f.factor
            if math.isfinite(value):
                readings.append(Reading(self._specs[f.metric], value, ts_ns))
        return readings


@dataclasses.dataclass(frozen=True, slots=True)
class FieldDecoder:
    """How one register's value is cut from a request's answer and scaled (decoders())."""

    metric: str
    offset: int  # words from the request's start
    words: int
    little: bool  # word order: low word first
    packed: struct.Struct  # the words as big-endian uint16s
    value: struct.Struct  # those bytes as the register's type
    scale: float
    factor: float  # CT/PT ratio factor


def decoders(request: ReadRequest, factors: dict[str, float]) -> tuple[FieldDecoder, ...]:
    """A request's field decoders, made once per request: struct does what pymodbus's
    `convert_from_registers` did per value (the words big-endian, in `word_order`, unpacked
    as the type, big-endian), without its per-call checks and byte-list building, a tenth of
    a meter read's CPU."""
    return tuple(
        FieldDecoder(
            reg.metric, reg.address - request.start, reg.words, reg.word_order == "little",
            struct.Struct(f">{reg.words}H"), struct.Struct(">" + _STRUCT_CODES[reg.type]),
            reg.scale, factors[reg.metric],
        )
        for reg in request.members
    )


__all__ = ["BlockRefused", "ModbusConfig", "ModbusSource", "ReadRequest", "plan_requests"]
