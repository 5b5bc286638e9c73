"""One Modbus TCP connection on asyncio, with the codec of modbus_codec.py (no pymodbus).

The link that owns it (modbus_transport.ModbusLink) sends one request at a time under its
lock. Each request has a transaction id of its own; an answer with any other id (a late
answer to an abandoned request) is dropped and the request goes on waiting. Each attempt
waits `timeout_s` from when it is sent; a retry resends the same frame (same id), so a late
answer to an earlier attempt is taken too. Bytes that cannot be framed lose the stream:
the connection is closed and the waiting request fails with FrameError.
"""

from __future__ import annotations

import asyncio
import itertools
import random
from typing import cast

from dcmeter.agent.sources.modbus_codec import FrameError, frame_size, split_frame


class Silent(Exception):
    """No answer to any attempt within its timeout."""


class TcpConnection(asyncio.Protocol):
    """The client side of one Modbus TCP connection."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        # (transaction id, unit id, the future) of the request waiting for its answer.
        self._waiting: tuple[int, int, asyncio.Future[bytes | None]] | None = None
        self._lost: Exception | None = None
        # Transaction ids from a random start: a reconnected agent does not reuse the last.
        self._ids = itertools.count(random.randrange(0, 0x10000))

    @classmethod
    async def open(cls, host: str, port: int, timeout_s: float) -> TcpConnection:
        """Connect within `timeout_s` (TimeoutError, OSError)."""
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(timeout_s):
            _, protocol = await loop.create_connection(cls, host, port)
        return protocol

    @property
    def connected(self) -> bool:
        """True until the connection is lost or closed."""
        return self.transport is not None and self._lost is None

    def next_id(self) -> int:
        """A transaction id for the next request (16 bits, wrapping)."""
        return next(self._ids) & 0xFFFF

    async def request(
        self, tid: int, unit: int, frame: bytes, timeout_s: float, retries: int
    ) -> bytes:
        """Send `frame` (transaction id `tid`, to unit id `unit`) up to 1 + `retries` times;
        the answer's PDU. An answer from another unit is not taken (as pymodbus skips it),
        except to a request for unit 0, which a single device may answer as itself.

        Raise Silent when no attempt is answered, ConnectionError when the connection is
        lost, FrameError when the server's bytes cannot be framed."""
        if self.transport is None or self._lost is not None:
            raise ConnectionError("not connected")
        loop = asyncio.get_running_loop()
        try:
            for _ in range(retries + 1):
                # A future and a timer per attempt, no timeout context or shield: this is
                # the per-request cost that made pymodbus's client slow (design-decisions).
                waiter: asyncio.Future[bytes | None] = loop.create_future()
                self._waiting = (tid, unit, waiter)
                self.transport.write(frame)
                timer = loop.call_later(timeout_s, _expire, waiter)
                try:
                    pdu = await waiter
                finally:
                    timer.cancel()
                if pdu is not None:
                    return pdu
            raise Silent()
        finally:
            self._waiting = None

    def close(self) -> None:
        """Close the connection (a request waiting on it fails)."""
        if self.transport is not None:
            self.transport.close()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer
        buffer += data
        try:
            while size := frame_size(buffer):
                if len(buffer) < size:
                    return
                tid, unit, pdu = split_frame(buffer[:size])
                del buffer[:size]
                waiting = self._waiting
                if (
                    waiting is not None
                    and waiting[0] == tid
                    and waiting[1] in (unit, 0)
                    and not waiting[2].done()
                ):
                    waiting[2].set_result(pdu)
        except FrameError as exc:
            self._fail(exc)
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(ConnectionError(f"connection lost: {exc}" if exc else "connection closed"))

    def _fail(self, exc: Exception) -> None:
        if self._lost is None:
            self._lost = exc
        waiting = self._waiting
        if waiting is not None and not waiting[2].done():
            waiting[2].set_exception(exc)


def _expire(waiter: asyncio.Future[bytes | None]) -> None:
    """An attempt's time is up: None, unless its answer came first."""
    if not waiter.done():
        waiter.set_result(None)
