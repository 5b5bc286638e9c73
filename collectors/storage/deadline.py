"""A read's time limit and cancellation, checked by the loops that read the store.

The HTTP layer (collectors/web/offloop.py) makes one per expensive request and cancels it when
the client disconnects; the store checks it between series or between chunks of sample
blocks, so a read over the limit, or one nobody waits for any more, stops within one query
instead of running to the end.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from contextvars import ContextVar


class Abandoned(Exception):
    """The read was stopped before it finished."""


class TimedOut(Abandoned):
    """The read ran past its time limit."""


class ClientLeft(Abandoned):
    """The client that asked for the read disconnected."""


class Deadline:
    """A time limit (s from now) that can also be cancelled from another thread."""

    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        """Expire `seconds` after now on `clock`."""
        self.seconds = seconds
        self.clock = clock
        self.at = clock() + seconds
        self._left = threading.Event()

    def cancel(self) -> None:
        """Mark the client gone: the next check raises ClientLeft."""
        self._left.set()

    @property
    def cancelled(self) -> bool:
        """Whether `cancel` was called."""
        return self._left.is_set()

    def check(self) -> None:
        """Raise ClientLeft or TimedOut if the read should stop now."""
        if self._left.is_set():
            raise ClientLeft("the client disconnected")
        if self.clock() > self.at:
            raise TimedOut(f"took longer than {self.seconds:g} s")


# The deadline of the read running in this context, for code reached through a library that
# cannot pass it (prometheus_client's exposition calls the metrics collector).
current: ContextVar[Deadline | None] = ContextVar("dcmeter_read_deadline", default=None)


def check(deadline: Deadline | None) -> None:
    """`deadline.check()`, or nothing without one."""
    if deadline is not None:
        deadline.check()
