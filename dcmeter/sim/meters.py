"""Simulated electricity meters speaking Modbus (pymodbus server): TCP on loopback, or RTU.

A meter serves the registers of a profile or custom map. Values come from a callback at the
moment a request arrives, encoded the way the real meter would hold them: raw = value /
scale in the register's type and word order, integer counters wrapping at their modulus. A
meter wired through CT/PT transformers that reports secondary values divides the (primary)
callback values by its ratios first, for registers not marked `primary`.

Several meters (device ids) can share one server: a Modbus TCP gateway, which answers
exception 11 (gateway target failed to respond) for an id it does not know, or an RS-485 line
on a serial port (RTU), where a request to an absent id goes unanswered.

A meter given an `identity` answers Read Device Identification (function 43, MEI type 14)
with it, per device id; one without answers exception 1 (illegal function), as meters that
do not implement it do. pymodbus keeps one identity per process (its control block), so the
request is answered here, from the meter the request addresses.
"""

from __future__ import annotations

import asyncio
import math
import struct
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from dcmeter.agent.sources.modbus_profiles import INTEGER_TYPES, PROFILES, RegisterConfig

if TYPE_CHECKING:
    from pymodbus.constants import ExcCodes
    from pymodbus.pdu import ModbusPDU
    from pymodbus.server import ModbusSerialServer, ModbusTcpServer
    from pymodbus.simulator import SimData, SimDevice

_STRUCT: dict[str, str] = {
    "u16": "H",
    "i16": "h",
    "u32": "I",
    "i32": "i",
    "u64": "Q",
    "i64": "q",
    "float32": "f",
    "float64": "d",
}
# Function codes that address holding registers; 4 reads input registers.
_HOLDING_CODES = frozenset({3, 6, 16, 22, 23})


def encode_registers(reg: RegisterConfig, value: float) -> list[int]:
    """Encode a value in the metric's unit into the 16-bit registers a meter would hold."""
    raw = value / reg.scale
    modulus = reg.effective_modulus
    if reg.type in INTEGER_TYPES:
        bits = 16 * reg.words
        number = round(raw)
        if modulus is not None:
            number %= round(modulus / abs(reg.scale))
        signed = reg.type.startswith("i")
        low, high = (-(2 ** (bits - 1)), 2 ** (bits - 1)) if signed else (0, 2**bits)
        if reg.kind == "counter":
            number &= 2**bits - 1  # a register keeps the low bits of a counter
        elif not low <= number < high:
            raise ValueError(f"{reg.metric}: {value} does not fit a {reg.type}")
        data = (number & (2**bits - 1)).to_bytes(bits // 8, "big")
    else:
        if modulus is not None and math.isfinite(raw):
            raw = math.fmod(raw, modulus / abs(reg.scale))
        data = struct.pack(f">{_STRUCT[reg.type]}", raw)
    words = [int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2)]
    return words[::-1] if reg.word_order == "little" else words


Values = Callable[[], Mapping[str, float]]


@dataclass
class MeterDevice:
    """One simulated meter: its register map, its values (primary units) and its device id.

    `ct_ratio`/`pt_ratio` describe a meter that reports secondary values: each non-primary
    register holds the value divided by its ratio factor, as on the real meter's terminals.
    """

    profile: str | list[RegisterConfig]
    values: Values
    device_id: int = 1
    ct_ratio: float = 1.0
    pt_ratio: float = 1.0
    # Read Device Identification objects: object id (0 VendorName, 1 ProductCode,
    # 2 MajorMinorRevision, 4 ProductName, 5 ModelName, 0x80.. vendor extended) -> text.
    identity: Mapping[int, str] | None = None
    registers: list[RegisterConfig] = field(init=False)

    def __post_init__(self) -> None:
        profile = self.profile
        self.registers = list(PROFILES[profile]) if isinstance(profile, str) else list(profile)
        if not self.registers:
            raise ValueError("a simulated meter needs at least one register")
        if not 0 <= self.device_id <= 247:
            raise ValueError(f"device id {self.device_id} is outside 0..247")

    def sim_device(self) -> SimDevice:
        """The pymodbus simulator device that serves this meter."""
        from pymodbus.simulator import SimDevice

        holding, inputs = _blocks(self.registers, "holding"), _blocks(self.registers, "input")
        return SimDevice(
            id=self.device_id,
            simdata=(_no_bits(), _no_bits(), holding, inputs),
            action=self._on_access,
        )

    async def _on_access(
        self,
        function_code: int,
        start_address: int,
        address: int,
        count: int,
        current_registers: list[int],
        set_values: list[int] | list[bool] | None,
    ) -> ExcCodes | None:
        """Write the current values into the registers a request is about to read."""
        from pymodbus.constants import ExcCodes

        if function_code in _HOLDING_CODES:
            kind = "holding"
        elif function_code == 4:
            kind = "input"
        else:
            return None
        values = self.values()
        for reg in self.registers:
            if reg.table != kind or not (
                reg.address < address + count and address < reg.address + reg.words
            ):
                continue
            if reg.metric not in values:
                return ExcCodes.DEVICE_FAILURE
            factor = reg.ratio_factor(self.ct_ratio, self.pt_ratio)
            offset = reg.address - start_address
            current_registers[offset : offset + reg.words] = encode_registers(
                reg, values[reg.metric] / factor
            )
        return None


def _identity_request(identity: Mapping[int, str] | None) -> type[ModbusPDU]:
    """A Read Device Identification request class answering from `identity` (None: refuse
    with exception 1, illegal function); the checks are pymodbus's own."""
    from types import SimpleNamespace

    from pymodbus.constants import DeviceInformation, ExcCodes
    from pymodbus.pdu import ExceptionResponse
    from pymodbus.pdu.device import DeviceInformationFactory, ModbusDeviceIdentification
    from pymodbus.pdu.mei_message import (
        ReadDeviceInformationRequest,
        ReadDeviceInformationResponse,
    )

    control = SimpleNamespace(
        Identity=ModbusDeviceIdentification(info=dict(identity or {}))  # type: ignore[no-untyped-call]
    )

    class Identify(ReadDeviceInformationRequest):
        async def datastore_update(self, context: object, device_id: int) -> ModbusPDU:
            if identity is None:
                return ExceptionResponse(self.function_code, ExcCodes.ILLEGAL_FUNCTION)
            if not 0 <= self.object_id <= 0xFF or not 0 <= self.read_code <= 4:
                return ExceptionResponse(self.function_code, ExcCodes.ILLEGAL_VALUE)
            information = DeviceInformationFactory.get(  # type: ignore[no-untyped-call]
                control, self.read_code, self.object_id)
            if self.read_code == DeviceInformation.SPECIFIC and (
                0x07 <= self.object_id < 0x80 or not information.get(self.object_id)
            ):
                return ExceptionResponse(self.function_code, ExcCodes.ILLEGAL_ADDRESS)
            return ReadDeviceInformationResponse(
                read_code=self.read_code, information=information, dev_id=device_id,
                transaction_id=self.transaction_id,
            )

    return Identify


def _no_bits() -> list[SimData]:
    from pymodbus.simulator import DataType, SimData

    return [SimData(0, datatype=DataType.BITS, values=0, readonly=True)]


def _blocks(registers: Sequence[RegisterConfig], kind: str) -> list[SimData]:
    """One SimData per run of consecutive addresses of `kind`; overlapping maps share words."""
    from pymodbus.simulator import DataType, SimData

    words = sorted({r.address + i for r in registers if r.table == kind for i in range(r.words)})
    runs: list[SimData] = []
    for address in words:
        if runs and runs[-1].address + runs[-1].count == address:
            runs[-1].count += 1
        else:
            runs.append(SimData(address, datatype=DataType.REGISTERS, values=0, readonly=True))
    # A register type the meter lacks answers exception 2 at every address.
    return runs or [SimData(0, datatype=DataType.INVALID)]


async def _gateway_no_response(*_: object) -> ExcCodes:
    from pymodbus.constants import ExcCodes

    return ExcCodes.GATEWAY_NO_RESPONSE


class SimGateway:
    """Several simulated meters behind one Modbus endpoint: a TCP gateway or an RTU line.

    Start it once, with `start` (TCP) or `start_rtu` (a serial port); after `stop` it can be
    started again. Device ids must differ.
    """

    def __init__(self, devices: Sequence[MeterDevice]) -> None:
        ids = [d.device_id for d in devices]
        if not ids or len(set(ids)) != len(ids):
            raise ValueError(f"a gateway needs meters with distinct device ids, got {ids}")
        self.devices = list(devices)
        self._server: ModbusTcpServer | ModbusSerialServer | None = None

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        """Serve Modbus TCP on host:port (0 picks a free port) and return the bound port."""
        from pymodbus.server import ModbusTcpServer

        self._check_stopped()
        devices = [d.sim_device() for d in self.devices]
        if all(d.device_id != 0 for d in self.devices):
            devices.append(self._unknown_ids())
        server = ModbusTcpServer(context=devices, address=(host, port),
                                 trace_pdu=self._identify_hook())
        await server.serve_forever(background=True)
        self._server = server
        listener: asyncio.Server = server.transport  # type: ignore[assignment]
        return int(listener.sockets[0].getsockname()[1])

    async def start_rtu(
        self,
        serial_port: str,
        *,
        baudrate: int = 9600,
        parity: Literal["N", "E", "O"] = "N",
        stopbits: int = 1,
        bytesize: int = 8,
    ) -> None:
        """Serve Modbus RTU on a serial port (for tests, one end of a pseudo-terminal pair)."""
        from pymodbus.server import ModbusSerialServer

        self._check_stopped()
        known = {d.device_id for d in self.devices}

        identify = self._identify_hook()

        def only_known_ids(sending: bool, pdu: ModbusPDU) -> ModbusPDU:
            # An RTU meter ignores frames for other ids: drop the request, send nothing.
            if not sending and pdu.dev_id not in known:
                return None  # type: ignore[return-value]  # pymodbus skips a None request
            return identify(sending, pdu)

        server = ModbusSerialServer(
            context=[d.sim_device() for d in self.devices],
            port=serial_port,
            baudrate=baudrate,
            parity=parity,
            stopbits=stopbits,
            bytesize=bytesize,
            trace_pdu=only_known_ids,
        )
        await server.serve_forever(background=True)
        self._server = server

    async def stop(self) -> None:
        """Close the listener or serial port, and every open connection."""
        server, self._server = self._server, None
        if server is None:
            return
        listener = server.transport
        await server.shutdown()  # type: ignore[no-untyped-call]
        if isinstance(listener, asyncio.Server):
            await listener.wait_closed()

    def _identify_hook(self) -> Callable[[bool, ModbusPDU], ModbusPDU]:
        """A trace_pdu hook that hands each Read Device Identification request to its meter."""
        from pymodbus.pdu.mei_message import ReadDeviceInformationRequest

        identities = {d.device_id: d.identity for d in self.devices}

        def hook(sending: bool, pdu: ModbusPDU) -> ModbusPDU:
            if sending or not isinstance(pdu, ReadDeviceInformationRequest):
                return pdu
            mine = _identity_request(identities.get(pdu.dev_id))
            ours = mine(pdu.read_code, pdu.object_id, pdu.dev_id, pdu.transaction_id)
            return ours
        return hook

    @property
    def connections(self) -> int:
        """TCP connections open now (0 for RTU or when stopped)."""
        if self._server is None:
            return 0
        return len(self._server.active_connections)

    def _check_stopped(self) -> None:
        if self._server is not None:
            raise RuntimeError("simulated meter already started")

    def _unknown_ids(self) -> SimDevice:
        """Device 0 answers every id no meter has, on the meters' addresses: exception 11."""
        from pymodbus.simulator import SimDevice

        registers = [r for d in self.devices for r in d.registers]
        return SimDevice(
            id=0,
            simdata=(
                _no_bits(),
                _no_bits(),
                _blocks(registers, "holding"),
                _blocks(registers, "input"),
            ),
            action=_gateway_no_response,
        )


class SimMeter(SimGateway):
    """A single meter on its own endpoint, answering for one device id.

    `values()` returns the current value of each metric in its unit; it is called on every
    request. A request touching a metric that `values()` leaves out gets exception 4 (device
    failure), an unmapped address exception 2, as from a real meter.
    """

    def __init__(
        self,
        profile: str | list[RegisterConfig],
        values: Values,
        device_id: int = 1,
        *,
        ct_ratio: float = 1.0,
        pt_ratio: float = 1.0,
        identity: Mapping[int, str] | None = None,
    ) -> None:
        device = MeterDevice(profile, values, device_id, ct_ratio, pt_ratio, identity)
        super().__init__([device])
        self.registers = device.registers
        self.device_id = device_id
