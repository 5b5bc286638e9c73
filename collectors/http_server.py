"""The collector's uvicorn server: connection limits and a deadline for each request's head.

uvicorn bounds the size of a request head (h11_max_incomplete_event_size), idle keep-alive
connections (timeout_keep_alive) and the requests served at once (limit_concurrency: 503
beyond it), but not the time a client may take to send a request head: a connection that
trickles a header byte now and then, or sends nothing, holds a file descriptor for ever.
`GuardedH11Protocol` gives every connection `header_timeout_s` from its opening (and from
each response, for the next request on a kept-alive connection) to deliver a complete head;
past it the connection is answered 408 (when part of a head came) and closed.
"""

from __future__ import annotations

import asyncio
from typing import Any

import h11
from uvicorn.config import Config
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.server import ServerState

from collectors.config import CollectorSection
from dcmeter.ratelimit import limit_loggers

_DETAIL_408 = b'{"detail": "request head not received in time (collector.header_timeout_s)"}'
TIMEOUT_408 = (b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n"
               b"connection: close\r\ncontent-length: %d\r\n\r\n%s"
               % (len(_DETAIL_408), _DETAIL_408))


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a time limit on receiving each request head."""

    header_timeout_s: float = 10.0

    def __init__(self, config: Config, server_state: ServerState, *args: Any,
                 **kwargs: Any) -> None:
        """As uvicorn's, with no head timer armed yet."""
        super().__init__(config, server_state, *args, **kwargs)
        self._head_timer: asyncio.TimerHandle | None = None
        self._timed_cycle: object = None

    def _arm(self) -> None:
        self._disarm()
        self._timed_cycle = self.cycle
        self._head_timer = self.loop.call_later(self.header_timeout_s, self._head_timeout)

    def _disarm(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """Accept the connection and start its head's clock."""
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        """Forget the head's clock with the connection."""
        self._disarm()
        super().connection_lost(exc)

    def handle_events(self) -> None:
        """Parse what came; a new request (a new cycle) means its head is complete."""
        super().handle_events()
        if self._head_timer is not None and self.cycle is not self._timed_cycle:
            self._disarm()

    def on_response_complete(self) -> None:
        """After a response on a kept-alive connection, the next head has its own clock."""
        cycle = self.cycle
        super().on_response_complete()
        # A pipelined request may already have started a new cycle: its head is in.
        if not self.transport.is_closing() and self.cycle is cycle:
            self._arm()

    def _head_timeout(self) -> None:
        self._head_timer = None
        if self.transport.is_closing():
            return
        # 408 only when part of a head came; an idle connection is just closed.
        if self.conn.their_state is h11.IDLE and self.conn.trailing_data[0]:
            self.transport.write(TIMEOUT_408)
        self.transport.close()


def protocol_for(header_timeout_s: float) -> type[GuardedH11Protocol]:
    """A protocol class with this head time limit, s (uvicorn takes a class)."""
    return type("GuardedH11", (GuardedH11Protocol,), {"header_timeout_s": header_timeout_s})


def uvicorn_limits(c: CollectorSection) -> dict[str, Any]:
    """The uvicorn.Config arguments of the section's connection and head limits."""
    limit_loggers()
    return {
        "http": protocol_for(c.header_timeout_s),
        "limit_concurrency": c.limit_concurrency,
        "backlog": c.backlog,
        "timeout_keep_alive": c.keep_alive_s,
        "h11_max_incomplete_event_size": c.max_header_kb * 1024,
    }
