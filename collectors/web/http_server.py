"""The collector's uvicorn server: connection limits and a deadline for each request's head.

uvicorn bounds the size of a request head (h11_max_incomplete_event_size), idle keep-alive
connections (timeout_keep_alive) and the requests served at once (limit_concurrency: 503
beyond it), but not the time a client may take to send a request head: a connection that
trickles a header byte now and then, or sends nothing, holds a file descriptor for ever.
`GuardedH11Protocol` gives every connection `header_timeout_s` from its opening (and from
each response, for the next request on a kept-alive connection) to deliver a complete head;
past it the connection is answered 408 (when part of a head came) and closed.

Connections past twice limit_concurrency are answered 503 and closed as soon as they are
accepted, so that descriptors never run out (LimitNOFILE in the unit is far above): asyncio
on Python 3.11 logs every failed accept of its loop, 2,048 a second, each with a traceback.
"""

from __future__ import annotations

import asyncio
import resource
from typing import Any

import h11
import structlog
from uvicorn.config import Config
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.server import ServerState

from dcmeter.base.ratelimit import limit_loggers
from dcmeter.collectors.config import CollectorSection

log = structlog.get_logger("dcmeter.collector.http")

# Descriptors the process needs besides its connections (store, logs, libraries).
SPARE_FDS = 256

_DETAIL_503 = b'{"detail": "too many connections (collector.limit_concurrency)"}'
OVERLOAD_503 = (b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n"
                b"connection: close\r\ncontent-length: %d\r\n\r\n%s"
                % (len(_DETAIL_503), _DETAIL_503))
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
        """Accept the connection and start its head's clock; past the hard cap, 503 and close."""
        super().connection_made(transport)
        cap = self.limit_concurrency
        if cap is not None and len(self.connections) > 2 * cap:
            transport.write(OVERLOAD_503)
            transport.close()
            return
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


def raise_fd_limit(needed: int) -> int:
    """Raise this process's soft descriptor limit towards `needed` (up to the hard limit);
    warn if it stays below. Return the soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed:
        want = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
        soft = want
    if soft < needed:
        log.warning("file descriptor limit below the connection limit", limit=soft,
                    needed=needed, fix="raise LimitNOFILE, or lower collector.limit_concurrency")
    return soft


def uvicorn_limits(c: CollectorSection) -> dict[str, Any]:
    """The uvicorn.Config arguments of the section's connection and head limits."""
    limit_loggers()
    raise_fd_limit(2 * c.limit_concurrency + SPARE_FDS)
    return {
        "http": protocol_for(c.header_timeout_s),
        "limit_concurrency": c.limit_concurrency,
        "backlog": c.backlog,
        "timeout_keep_alive": c.keep_alive_s,
        "h11_max_incomplete_event_size": c.max_header_kb * 1024,
    }
