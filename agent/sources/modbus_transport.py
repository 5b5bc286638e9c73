"""Modbus links: one connection per TCP endpoint or serial line, shared by every meter on it.

A gateway serves many meters (device ids) through one TCP port, and many gateways accept only
a few connections; an RS-485 line carries one request at a time, and its serial port can be
opened only once (pymodbus opens it exclusively). So every source that reads through the same
(host, port) or the same serial port uses one `ModbusLink`: one connection, and one
asyncio lock held for each request and its answer, so requests of different meters never
interleave on the wire. Links live per event loop and close when their last user closes.
"""

from __future__ import annotations

import asyncio
import os
import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from dcmeter.agent.sources import SourceError, TargetUnreachable
from dcmeter.agent.sources import modbus_codec as codec
from dcmeter.agent.sources.modbus_tcp import Silent, TcpConnection

if TYPE_CHECKING:
    from pymodbus.client import AsyncModbusSerialClient

    from dcmeter.agent.sources.modbus_profiles import RegisterConfig

    Client = AsyncModbusSerialClient

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

# Codes with which a meter refuses the registers of one request, not the request itself: the
# registers are absent from this model's map (or the gateway allows fewer per read). The
# block is one failed metric group; the rest of the meter is still read.
REFUSED_CODES = frozenset({2, 3})

# What to check when a meter answers with one of these codes.
EXCEPTION_HINTS: dict[int, str] = {
    1: "check the register table (holding or input)",
    2: "check the addresses in the register map",
    4: "check device_id",
    10: "check device_id",
    11: "check device_id and the line behind the gateway",
}


@dataclass(frozen=True, slots=True)
class TcpEndpoint:
    """A Modbus TCP server: a meter, or a gateway in front of several."""

    host: str
    port: int

    @property
    def key(self) -> tuple[str, ...]:
        """What identifies the shared link."""
        return ("tcp", self.host, str(self.port))

    def describe(self) -> str:
        """Where the link goes, for messages."""
        return f"{self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class SerialLine:
    """An RS-485 line on a serial port, with the settings every meter on it must share."""

    port: str
    baudrate: int = 9600
    parity: Literal["N", "E", "O"] = "N"
    stopbits: Literal[1, 2] = 1
    bytesize: Literal[7, 8] = 8

    @property
    def key(self) -> tuple[str, ...]:
        """What identifies the shared link: the device the port path leads to."""
        # Aliases such as /dev/serial/by-id/... lead to one device, which opens only once.
        return ("rtu", os.path.realpath(self.port))

    @property
    def settings(self) -> tuple[int, str, int, int]:
        """Baud rate, parity, stop bits and data bits: what every meter on the line shares."""
        return (self.baudrate, self.parity, self.stopbits, self.bytesize)

    def describe(self) -> str:
        """Where the link goes, with its line settings (9600-8N1), for messages."""
        return f"{self.port} {self.baudrate}-{self.bytesize}{self.parity}{self.stopbits}"


Endpoint = TcpEndpoint | SerialLine


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


class LinkSilent(Exception):
    """No answer to any attempt of a request within its timeout."""


class LinkDown(Exception):
    """The connection failed or was lost during a request."""


class BadAnswer(Exception):
    """An answer that is not one to the request (the message says how)."""


class ModbusLink:
    """One connection, opened on demand, and the lock that serialises its requests.

    A TCP endpoint is read with the agent's own codec (modbus_codec.py, modbus_tcp.py: a
    tenth of pymodbus's client's CPU per request, docs/design-decisions.md); a serial line
    with pymodbus's RTU client. Either way a request holds `lock` until its answer."""

    def __init__(self, endpoint: Endpoint, owner: str) -> None:
        self.endpoint = endpoint
        self.key = endpoint.key  # fixed when opened, even if a port alias changes later
        self.owner = owner  # the source id that opened it, for conflict messages
        self.lock = asyncio.Lock()
        self.users = 0
        self._client: Client | None = None
        self._tcp: TcpConnection | None = None

    @property
    def is_serial(self) -> bool:
        """True for an RTU line."""
        return isinstance(self.endpoint, SerialLine)

    async def read_registers(
        self, function: int, start: int, count: int, device_id: int, timeout_s: float,
        retries: int,
    ) -> tuple[int, tuple[int, ...]]:
        """(exception code, ()) or (0, registers) of one FC03/FC04 read, each attempt
        bounded by `timeout_s`. Raise LinkSilent, LinkDown, BadAnswer or TargetUnreachable
        (cannot connect); the connection is dropped where its stream can no longer be
        trusted (everything but silence on a serial line)."""
        async with self.lock:
            if isinstance(self.endpoint, SerialLine):
                return await self._serial_read(function, start, count, device_id, timeout_s,
                                               retries)
            tcp = await self._connected(timeout_s)
            tid = tcp.next_id()
            frame = codec.encode_read(tid, device_id, function, start, count)
            pdu = await self._exchange(tcp, tid, device_id, frame, timeout_s, retries)
            try:
                return codec.decode_read(pdu, function)
            except codec.FrameError as exc:
                self.drop()
                raise BadAnswer(str(exc)) from exc

    async def read_identification(
        self, device_id: int, read_code: int, timeout_s: float, retries: int
    ) -> dict[int, Any]:
        """Read Device Identification from object 0: object id -> value; {} where the
        meter answers an exception, nothing or nonsense."""
        async with self.lock:
            if isinstance(self.endpoint, SerialLine):
                return await self._serial_identification(device_id, read_code, timeout_s,
                                                         retries)
            try:
                tcp = await self._connected(timeout_s)
                tid = tcp.next_id()
                frame = codec.encode_device_id(tid, device_id, read_code, 0)
                pdu = await self._exchange(tcp, tid, device_id, frame, timeout_s, retries)
                code, objects = codec.decode_device_id(pdu)
            except (LinkSilent, LinkDown, BadAnswer, TargetUnreachable):
                return {}
            except codec.FrameError:
                self.drop()
                return {}
            return {} if code else dict(objects)

    async def _connected(self, timeout_s: float) -> TcpConnection:
        tcp = self._tcp
        if tcp is None or not tcp.connected:
            self.drop()
            tcp = self._tcp = await self._connect_tcp(timeout_s)
        return tcp

    async def _exchange(
        self, tcp: TcpConnection, tid: int, unit: int, frame: bytes, timeout_s: float,
        retries: int,
    ) -> bytes:
        try:
            return await tcp.request(tid, unit, frame, timeout_s, retries)
        except asyncio.CancelledError:
            self.drop()  # a late answer would be taken for the next request's
            raise
        except Silent as exc:
            self.drop()
            raise LinkSilent() from exc
        except codec.FrameError as exc:
            self.drop()
            raise BadAnswer(str(exc)) from exc
        except OSError as exc:  # ConnectionError included
            self.drop()
            raise LinkDown(str(exc)) from exc

    async def _connect_tcp(self, timeout_s: float) -> TcpConnection:
        endpoint = self.endpoint
        assert isinstance(endpoint, TcpEndpoint)
        hint = "check host, port and that the device serves Modbus TCP"
        try:
            return await TcpConnection.open(endpoint.host, endpoint.port, timeout_s)
        except TimeoutError as exc:
            raise TargetUnreachable(
                f"{endpoint.describe()}: cannot connect (refused or timed out): {hint}"
            ) from exc
        except OSError as exc:
            raise TargetUnreachable(
                f"{endpoint.describe()}: cannot connect: {exc}: {hint}"
            ) from exc

    async def _serial_read(
        self, function: int, start: int, count: int, device_id: int, timeout_s: float,
        retries: int,
    ) -> tuple[int, tuple[int, ...]]:
        from pymodbus.exceptions import ConnectionException, ModbusException, ModbusIOException

        client = await self.client(timeout_s, retries)
        read = (
            client.read_input_registers
            if function == codec.READ_INPUT
            else client.read_holding_registers
        )
        try:
            response = await read(start, count=count, device_id=device_id)
        except asyncio.CancelledError:
            self.drop()  # a late answer would be taken for the next request's
            raise
        except ModbusIOException as exc:
            raise LinkSilent() from exc  # a silent meter says nothing about the line
        except (ConnectionException, OSError) as exc:
            self.drop()
            raise LinkDown(str(exc)) from exc
        except ModbusException as exc:
            raise BadAnswer(str(exc)) from exc
        if response.isError():
            return int(response.exception_code), ()
        return 0, tuple(response.registers)

    async def _serial_identification(
        self, device_id: int, read_code: int, timeout_s: float, retries: int
    ) -> dict[int, Any]:
        from pymodbus.exceptions import ModbusException

        try:
            client = await self.client(timeout_s, retries)
            response = await client.read_device_information(
                read_code=read_code, object_id=0, device_id=device_id
            )
        except asyncio.CancelledError:
            self.drop()  # a late answer would be taken for the next request's
            raise
        except (ModbusException, OSError, TargetUnreachable):
            return {}
        if response.isError():
            return {}
        information = getattr(response, "information", None)
        return dict(information) if isinstance(information, dict) else {}

    async def client(self, timeout_s: float, retries: int) -> Client:
        """The connected pymodbus RTU client, tuned to the caller's timeout; call with
        `lock` held.

        pymodbus keeps the per-attempt timeout and the retry count on the client; several
        sources with different settings share it, so each request sets its own first.
        """
        client = self._client
        if client is None or not client.connected:
            self.drop()
            client = await self._connect(timeout_s)
            self._client = client
        client.ctx.comm_params.timeout_connect = timeout_s
        client.ctx.retries = retries
        return client

    def drop(self) -> None:
        """Close the connection; the next request opens it again."""
        client, self._client = self._client, None
        if client is not None:
            client.close()
        tcp, self._tcp = self._tcp, None
        if tcp is not None:
            tcp.close()

    async def _connect(self, timeout_s: float) -> Client:
        endpoint = self.endpoint
        assert isinstance(endpoint, SerialLine)
        from pymodbus.client import AsyncModbusSerialClient

        client = AsyncModbusSerialClient(
            endpoint.port,
            baudrate=endpoint.baudrate,
            parity=endpoint.parity,
            stopbits=endpoint.stopbits,
            bytesize=endpoint.bytesize,
            timeout=timeout_s,
            retries=0,
            reconnect_delay=0,  # reopen here, on the next read, not in the background
            name=self.owner,
        )
        hint = (
            "check serial_port, that the adapter is present, that the agent's user may "
            "open it (group dialout) and that no other program holds it"
        )
        try:
            connected = await client.connect()
        except asyncio.CancelledError:
            client.close()
            raise
        except OSError as exc:
            client.close()
            raise TargetUnreachable(
                f"{endpoint.describe()}: cannot connect: {exc}: {hint}"
            ) from exc
        if not connected:
            client.close()
            raise TargetUnreachable(
                f"{endpoint.describe()}: cannot connect (refused or timed out): {hint}"
            )
        return client


# Links of each running event loop by endpoint key. Keyed by loop because asyncio locks and
# transports belong to one loop (tests run several loops one after another).
_LINKS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple[str, ...], ModbusLink]]
_LINKS = weakref.WeakKeyDictionary()


def acquire(endpoint: Endpoint, owner: str) -> ModbusLink:
    """The running loop's link to `endpoint`, opened for the first user; count one more user.

    Raise SourceError when a serial port is already in use with other line settings: every
    meter on one RS-485 line must use the same baud rate, parity, stop and data bits.
    """
    links = _LINKS.setdefault(asyncio.get_running_loop(), {})
    link = links.get(endpoint.key)
    if link is None:
        link = links[endpoint.key] = ModbusLink(endpoint, owner)
    elif (
        isinstance(endpoint, SerialLine)
        and isinstance(link.endpoint, SerialLine)
        and link.endpoint.settings != endpoint.settings
    ):
        raise SourceError(
            f"{endpoint.describe()}: the line is already read as "
            f"{link.endpoint.describe()} by source {link.owner}: every meter on one serial "
            "line must use the same baudrate, parity, stopbits and bytesize"
        )
    link.users += 1
    return link


def release(link: ModbusLink, loop: asyncio.AbstractEventLoop) -> None:
    """Count one user less; close the link when none is left."""
    link.users -= 1
    if link.users > 0:
        return
    links = _LINKS.get(loop, {})
    if links.get(link.key) is link:
        del links[link.key]
    if loop.is_closed():
        link._client = link._tcp = None  # their transports died with their loop
    else:
        link.drop()
