"""One thread keeps every open BMC session alive, instead of one python-ipmi thread per BMC.

python-ipmi's own keep-alive (`keep_alive_interval`) starts a thread per session; at 80 BMCs
that is 80 threads, each with its stack, its glibc arena and its objects, for a few bytes
sent a minute (docs/benchmarks.md §2). Here each `ipmi` source registers its open lanplus
session; a single daemon thread wakes when the first of them has been idle for its
`keep_alive_s` and calls that source's `keep_alive()`, which sends Get Device ID on it (or
does nothing when a read is talking to the BMC, which keeps the session alive anyway). The
thread starts with the first session and ends when the last one is closed.

A keep-alive that fails drops that source's session (the source logs it once, without
secrets); the next read opens a new one, so a dead BMC stays one failed target and sends no
more keep-alives. A keep-alive to a dead BMC blocks this thread for at most the source's
request timeout (`timeout_s / 3`), well inside any other session's margin: BMCs expire an idle
session after about 60 s (IPMI v2.0), `keep_alive_s` defaults to 40.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Protocol


class KeptAlive(Protocol):
    """What the keeper needs of a source with an open session."""

    def keep_alive_due(self) -> float:
        """When (time.monotonic(), s) the session will have been idle for keep_alive_s."""
        ...

    def keep_alive(self) -> None:
        """Send a keep-alive if the session is still idle; never raise."""
        ...


class Keeper:
    """The single keep-alive thread and the sessions it looks after."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._cond = threading.Condition()
        self._sessions: set[KeptAlive] = set()
        self._thread: threading.Thread | None = None

    def add(self, source: KeptAlive) -> None:
        """Look after `source`'s session from now on (idempotent)."""
        with self._cond:
            self._sessions.add(source)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="ipmi-keepalive", daemon=True
                )
                self._thread.start()
            self._cond.notify()

    def remove(self, source: KeptAlive) -> None:
        """Stop looking after `source` (its session was closed or dropped)."""
        with self._cond:
            self._sessions.discard(source)
            self._cond.notify()

    @property
    def sessions(self) -> int:
        """How many sessions are looked after now."""
        with self._cond:
            return len(self._sessions)

    def _run(self) -> None:
        while True:
            with self._cond:
                if not self._sessions:
                    self._thread = None  # the next add() starts a new thread
                    return
                now = self._clock()
                due = [s for s in self._sessions if s.keep_alive_due() <= now]
                if not due:
                    first = min(s.keep_alive_due() for s in self._sessions)
                    self._cond.wait(first - now)
                    continue
            # Outside the lock: a keep-alive waits for the BMC's answer.
            for source in due:
                source.keep_alive()


# The agent's one keeper; a source may be given another (tests).
KEEPER = Keeper()
