"""The agent's Modbus TCP connection (modbus_tcp.py through ModbusLink) against a server that
misbehaves on purpose, on a real socket: an answer with another transaction id is not taken,
a silent server costs each attempt its timeout, garbage gives a clean error and a fresh
connection, a dropped connection is opened again on the next read. The well-behaved path is
tests/agent/sources/test_modbus*.py against pymodbus's own servers."""

from __future__ import annotations

import asyncio
import struct
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import pytest

from dcmeter.agent.sources.modbus_transport import (
    BadAnswer,
    LinkDown,
    LinkSilent,
    ModbusLink,
    TcpEndpoint,
)

# reply(request tid, request number on this connection) -> bytes to send (b"" = silence,
# None = close the connection).
Reply = Callable[[int, int], bytes | None]


def answer(tid: int, registers: tuple[int, ...], unit: int = 1) -> bytes:
    """An FC03 answer frame, built by hand from the spec."""
    pdu = bytes([3, 2 * len(registers)]) + struct.pack(f">{len(registers)}H", *registers)
    return struct.pack(">HHHB", tid, 0, len(pdu) + 1, unit) + pdu


@asynccontextmanager
async def server(reply: Reply) -> AsyncIterator[tuple[TcpEndpoint, list[int]]]:
    """A TCP server answering each request by `reply`; yields its endpoint and a list with
    the number of connections accepted."""
    accepted = [0]

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted[0] += 1
        n = 0
        try:
            while True:
                header = await reader.readexactly(7)
                tid, _, length, _ = struct.unpack(">HHHB", header)
                await reader.readexactly(length - 1)
                out = reply(tid, n)
                n += 1
                if out is None:
                    break
                writer.write(out)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()

    srv = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = srv.sockets[0].getsockname()[1]
    try:
        yield TcpEndpoint("127.0.0.1", port), accepted
    finally:
        srv.close()


async def read(link: ModbusLink, timeout_s: float = 5.0, retries: int = 0) -> tuple[int, ...]:
    code, registers = await link.read_registers(3, 0, 2, 1, timeout_s, retries)
    assert code == 0
    return registers


async def _another_transaction_id_is_not_the_answer() -> None:
    # First a stale answer (tid - 1, other values), then the right one.
    def reply(tid: int, n: int) -> bytes:
        return answer((tid - 1) & 0xFFFF, (9, 9)) + answer(tid, (1, 2))

    async with server(reply) as (endpoint, _):
        link = ModbusLink(endpoint, "m1")
        assert await read(link) == (1, 2)
        link.drop()


async def _only_wrong_ids_is_silence_after_each_attempt() -> None:
    async with server(lambda tid, n: answer(tid ^ 0x5555, (1, 2))) as (endpoint, accepted):
        link = ModbusLink(endpoint, "m1")
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        with pytest.raises(LinkSilent):
            await read(link, timeout_s=0.2, retries=2)
        assert loop.time() - t0 >= 0.6  # three attempts of 0.2 s each
        # The connection was dropped: the next read opens another one.
        with pytest.raises(LinkSilent):
            await read(link, timeout_s=0.05)
        assert accepted[0] == 2


async def _a_retry_takes_a_late_answer() -> None:
    # Silent on the first attempt, answers the resent frame (same tid).
    async with server(lambda tid, n: b"" if n == 0 else answer(tid, (7, 8))) as (endpoint, _):
        link = ModbusLink(endpoint, "m1")
        assert await read(link, timeout_s=0.3, retries=1) == (7, 8)
        link.drop()


async def _another_unit_is_not_the_answer() -> None:
    async with server(lambda tid, n: answer(tid, (1, 2), unit=9)) as (endpoint, _):
        link = ModbusLink(endpoint, "m1")
        with pytest.raises(LinkSilent):
            await read(link, timeout_s=0.2)


async def _garbage_is_a_bad_answer_and_a_new_connection() -> None:
    sent = [0]  # requests over all connections

    def reply(tid: int, n: int) -> bytes:
        sent[0] += 1
        return b"HTTP/1.1 400 Bad Request\r\n\r\n" if sent[0] == 1 else answer(tid, (3, 4))

    async with server(reply) as (endpoint, accepted):
        link = ModbusLink(endpoint, "m1")
        with pytest.raises(BadAnswer, match="protocol id"):
            await read(link)
        assert await read(link) == (3, 4)  # on a fresh connection
        assert accepted[0] == 2
        link.drop()


async def _a_dropped_connection_is_opened_again() -> None:
    # The server answers once, then closes the connection at the next request.
    async with server(lambda tid, n: answer(tid, (5, 6)) if n == 0 else None) as (
        endpoint, accepted,
    ):
        link = ModbusLink(endpoint, "m1")
        assert await read(link) == (5, 6)
        with pytest.raises(LinkDown):  # closed while the request waits
            await read(link)
        assert await read(link) == (5, 6)  # on a new connection
        assert accepted[0] == 2
        link.drop()


def test_another_transaction_id_is_not_the_answer() -> None:
    asyncio.run(_another_transaction_id_is_not_the_answer())


def test_only_wrong_ids_is_silence_after_each_attempt() -> None:
    asyncio.run(_only_wrong_ids_is_silence_after_each_attempt())


def test_a_retry_takes_a_late_answer() -> None:
    asyncio.run(_a_retry_takes_a_late_answer())


def test_another_unit_is_not_the_answer() -> None:
    asyncio.run(_another_unit_is_not_the_answer())


def test_garbage_is_a_bad_answer_and_a_new_connection() -> None:
    asyncio.run(_garbage_is_a_bad_answer_and_a_new_connection())


def test_a_dropped_connection_is_opened_again() -> None:
    asyncio.run(_a_dropped_connection_is_opened_again())
