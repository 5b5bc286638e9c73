"""SNMP v2c over one UDP socket per event loop, with the codec of snmp_codec.py (no pysnmp).

Every v2c target on a loop shares one socket, as net-snmp's tools and snmp_exporter do: a
request is matched to its answer by request-id (unique on the socket while it is pending),
source address and community. Each attempt waits `attempt_timeout_s` from when it is sent;
a retry resends the same message, so a late answer to the first attempt is taken too. At
most MAX_IN_FLIGHT requests are in flight on the socket (its receive buffer must hold every
answer that arrives while the loop is busy). The socket is closed with its last user.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import socket
import weakref
from dataclasses import dataclass, field
from typing import cast

from dcmeter.agent.sources.snmp_codec import decode_response, encode_request, response_id
from dcmeter.agent.sources.snmp_oids import Value

# Requests in flight at once on a loop's socket. At Linux's default receive buffer (212,992
# bytes, ~1.3 KB of it per small datagram) 200 answers at once overflowed it and the lost
# ones waited for a retry; 64 leaves a wide margin.
MAX_IN_FLIGHT = 64


class NoAnswer(Exception):
    """No answer to any attempt of a request."""


Answer = tuple[str, list[tuple[str, Value]]]  # (error-status name or "", var-binds)


@dataclass
class _Pending:
    """A request waiting on the socket: where it went, its community, the current attempt."""

    address: tuple[str, int]
    community: bytes
    waiter: asyncio.Future[Answer | None]


class _Protocol(asyncio.DatagramProtocol):
    """The shared socket: hands each answer to the request waiting for its request-id."""

    def __init__(self) -> None:
        self.transport: asyncio.DatagramTransport | None = None
        self.pending: dict[int, _Pending] = {}  # by request-id

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A datagram endpoint's transport (the selector one does not subclass the ABC).
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        # Anything but the awaited answer is dropped and its request goes on waiting: a
        # garbled datagram, a late answer (already answered or given up), one from another
        # address or of another community.
        try:
            waiting = self.pending.get(response_id(data))
            if waiting is None or waiting.waiter.done() or tuple(addr[:2]) != waiting.address:
                return
            _, status, answered = decode_response(data, waiting.community)
        except ValueError:
            return
        waiting.waiter.set_result((status, answered))

    def error_received(self, exc: Exception) -> None:
        # An ICMP port-unreachable of an earlier send: which request it was for is unknown
        # on an unconnected socket, so the request times out as a silent agent does.
        pass


@dataclass
class _Endpoint:
    """One loop's socket: being opened (`opening`), then used by `users` clients."""

    opening: asyncio.Future[_Protocol]
    in_flight: asyncio.Semaphore
    users: int = 0
    # Request-ids: from a random start, so a restarted agent does not take its old ones.
    ids: itertools.count[int] = field(
        default_factory=lambda: itertools.count(random.randrange(1, 2**30))
    )


class V2cSockets:
    """One UDP socket per event loop, shared by every v2c target on it."""

    def __init__(self) -> None:
        self._by_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Endpoint] = (
            weakref.WeakKeyDictionary()
        )

    async def acquire(self) -> _Endpoint:
        """The running loop's endpoint (opened on first use); pair with release()."""
        loop = asyncio.get_running_loop()
        endpoint = self._by_loop.get(loop)
        if endpoint is None or (
            endpoint.opening.done()
            and (endpoint.opening.cancelled() or endpoint.opening.exception() is not None)
        ):
            opening = asyncio.ensure_future(_open(loop))
            endpoint = _Endpoint(opening, asyncio.Semaphore(MAX_IN_FLIGHT))
            self._by_loop[loop] = endpoint
        await asyncio.shield(endpoint.opening)
        endpoint.users += 1
        return endpoint

    def release(self, endpoint: _Endpoint) -> None:
        """One user fewer; the last one closes the socket."""
        endpoint.users -= 1
        if endpoint.users > 0:
            return
        for loop, known in list(self._by_loop.items()):
            if known is endpoint:
                del self._by_loop[loop]
        transport = endpoint.opening.result().transport
        if transport is not None:
            transport.close()

    def users(self) -> int:
        """Clients holding the running loop's socket (0 when there is none)."""
        endpoint = self._by_loop.get(asyncio.get_running_loop())
        return endpoint.users if endpoint is not None else 0


async def _open(loop: asyncio.AbstractEventLoop) -> _Protocol:
    _, protocol = await loop.create_datagram_endpoint(
        _Protocol, local_addr=("0.0.0.0", 0), family=socket.AF_INET
    )
    return protocol


SOCKETS = V2cSockets()


async def request(
    endpoint: _Endpoint,
    address: tuple[str, int],
    community: bytes,
    oids: tuple[str, ...],
    attempt_timeout_s: float,
    retries: int,
    max_repetitions: int = 0,
) -> Answer:
    """One GET (or GETBULK when `max_repetitions` > 0): (error-status name or "", var-binds).

    Raises NoAnswer when no attempt was answered; OSError when the socket cannot send.
    """
    protocol = endpoint.opening.result()
    transport = protocol.transport
    assert transport is not None
    loop = asyncio.get_running_loop()
    pending = protocol.pending
    async with endpoint.in_flight:
        request_id = next(endpoint.ids) & 0x7FFFFFFF
        while request_id in pending or request_id == 0:
            request_id = next(endpoint.ids) & 0x7FFFFFFF
        message = encode_request(community, request_id, oids, max_repetitions)
        try:
            for _ in range(retries + 1):
                # The same message again: an answer to any attempt is taken.
                waiter: asyncio.Future[Answer | None] = loop.create_future()
                pending[request_id] = _Pending(address, community, waiter)
                transport.sendto(message, address)
                timer = loop.call_later(attempt_timeout_s, _expire, waiter)
                try:
                    answer = await waiter
                finally:
                    timer.cancel()
                if answer is not None:
                    return answer
        finally:
            pending.pop(request_id, None)
    raise NoAnswer


def _expire(waiter: asyncio.Future[Answer | None]) -> None:
    if not waiter.done():
        waiter.set_result(None)
