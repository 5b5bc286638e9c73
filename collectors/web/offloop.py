"""Expensive reads off the event loop: bounded in number and time, stopped when the client leaves.

A window result, a report or a /metrics scrape reads many series from the store and runs
the evaluation over them. On the event loop that would stall every other request (agents'
batches, /health); in FastAPI's shared thread pool a flood of them would take every worker.
`Reads.run` runs one in its own small pool with a `Deadline` the store checks between
series: past `read_timeout_s` it stops and answers 503; when the client disconnects it stops
and answers nobody.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import anyio
import structlog
from fastapi import HTTPException, Request

from dcmeter.base.ratelimit import LogLimiter
from dcmeter.collectors.storage import deadline as dl

log = structlog.get_logger("dcmeter.collector.reads")

T = TypeVar("T")

# Expensive reads running at once; more wait for a slot (their time limit runs meanwhile).
CONCURRENT_READS = 4


class Reads:
    """Run expensive reads in worker threads with a time limit, counting the ones stopped."""

    def __init__(self, timeout_s: float, concurrent: int = CONCURRENT_READS) -> None:
        """Stop each read after `timeout_s`; run at most `concurrent` at once."""
        self.timeout_s = timeout_s
        self.limiter = anyio.CapacityLimiter(concurrent)
        self.timed_out = 0
        self.abandoned = 0
        self._quiet = LogLimiter()

    async def run(self, request: Request, work: Callable[[dl.Deadline], T], what: str) -> T:
        """`work(deadline)` in a worker thread; 503 past the time limit."""
        deadline = dl.Deadline(self.timeout_s)

        def in_thread() -> T:
            deadline.check()  # waited for a slot past the limit, or the client left
            token = dl.current.set(deadline)
            try:
                return work(deadline)
            finally:
                dl.current.reset(token)

        failure: Exception | None = None
        async with anyio.create_task_group() as tg:
            tg.start_soon(_watch, request, deadline)
            try:
                result = await anyio.to_thread.run_sync(in_thread, limiter=self.limiter)
            except Exception as exc:  # raised after the watcher is stopped
                failure = exc
            tg.cancel_scope.cancel()
        if isinstance(failure, dl.TimedOut):
            self.timed_out += 1
            self._note(what, "timed_out")
            raise HTTPException(
                503, f"{what} {failure}, the collector's read time limit"
                f" (collector.read_timeout_s = {self.timeout_s:g}); ask for a shorter span,"
                " or raise the limit",
            )
        if isinstance(failure, dl.ClientLeft):
            self.abandoned += 1
            self._note(what, "client_left")
            # Nobody reads this answer: uvicorn drops what is sent after a disconnect.
            raise HTTPException(503, f"{what} stopped: the client disconnected")
        if failure is not None:
            raise failure
        return result

    def _note(self, what: str, why: str) -> None:
        if (left_out := self._quiet.allow((what, why))) is not None:
            log.warning("read stopped", what=what, reason=why, limit_s=self.timeout_s,
                        left_out=left_out)


async def _watch(request: Request, deadline: dl.Deadline) -> None:
    """Cancel `deadline` when the client disconnects (the request has no body left to read)."""
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            deadline.cancel()
            return
