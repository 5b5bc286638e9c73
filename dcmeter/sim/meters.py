"""A simulated electricity meter speaking Modbus TCP (pymodbus server) on loopback.

The meter serves the registers of a profile or custom map. Values come from a callback at
the moment a request arrives, encoded the way the real meter would hold them: raw = value /
scale in the register's type and word order, integer counters wrapping at their modulus.
"""

from __future__ import annotations

import asyncio
import math
import struct
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from agent.sources.modbus_profiles import INTEGER_TYPES, PROFILES, RegisterConfig

if TYPE_CHECKING:
    from pymodbus.constants import ExcCodes
    from pymodbus.server import ModbusTcpServer
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


class SimMeter:
    """A Modbus TCP meter on one port, answering for one device id.

    `values()` returns the current value of each metric in its unit; it is called on every
    request. A request touching a metric that `values()` leaves out gets exception 4 (device
    failure), an unmapped address exception 2, as from a real meter.
    """

    def __init__(
        self,
        profile: str | list[RegisterConfig],
        values: Callable[[], Mapping[str, float]],
        device_id: int = 1,
    ) -> None:
        self.registers = list(PROFILES[profile]) if isinstance(profile, str) else list(profile)
        if not self.registers:
            raise ValueError("a simulated meter needs at least one register")
        self._values = values
        self.device_id = device_id
        self._server: ModbusTcpServer | None = None

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        """Listen on host:port (0 picks a free port) and return the bound port."""
        from pymodbus.server import ModbusTcpServer

        if self._server is not None:
            raise RuntimeError("simulated meter already started")
        server = ModbusTcpServer(context=self._device(), address=(host, port))
        await server.serve_forever(background=True)
        self._server = server
        listener: asyncio.Server = server.transport  # type: ignore[assignment]
        return int(listener.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        """Close the listener and every open connection."""
        server, self._server = self._server, None
        if server is None:
            return
        listener = server.transport
        await server.shutdown()  # type: ignore[no-untyped-call]
        if isinstance(listener, asyncio.Server):
            await listener.wait_closed()

    def _device(self) -> SimDevice:
        from pymodbus.simulator import DataType, SimData, SimDevice

        def block(kind: str) -> list[SimData]:
            words = sorted(
                {r.address + i for r in self.registers if r.table == kind for i in range(r.words)}
            )
            # One SimData per run of consecutive addresses; overlapping maps share words.
            runs: list[SimData] = []
            for address in words:
                if runs and runs[-1].address + runs[-1].count == address:
                    runs[-1].count += 1
                else:
                    runs.append(
                        SimData(address, datatype=DataType.REGISTERS, values=0, readonly=True)
                    )
            # A register type the meter lacks answers exception 2 at every address.
            return runs or [SimData(0, datatype=DataType.INVALID)]

        no_bits = [SimData(0, datatype=DataType.BITS, values=0, readonly=True)]
        return SimDevice(
            id=self.device_id,
            simdata=(no_bits, list(no_bits), block("holding"), block("input")),
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
        values = self._values()
        for reg in self.registers:
            if reg.table != kind or not (
                reg.address < address + count and address < reg.address + reg.words
            ):
                continue
            if reg.metric not in values:
                return ExcCodes.DEVICE_FAILURE
            offset = reg.address - start_address
            current_registers[offset : offset + reg.words] = encode_registers(
                reg, values[reg.metric]
            )
        return None
