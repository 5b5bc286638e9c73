"""Polling: every source read concurrently, each bounded by its own timeout, on aligned ticks."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime

import structlog
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from dcmeter.agent.samples import Reading, SourceInfo, now_ns
from dcmeter.agent.sources import Source, SourceError

log = structlog.get_logger("dcmeter.agent.poll")

Tick = list[tuple[SourceInfo, Reading]]


class Poller:
    """Reads every source once per call; one failing target never holds up the others.

    A target's failure is logged once, when it starts failing, with the reason; its
    recovery is logged once too. Failures are counted per target.
    """

    def __init__(self, sources: Sequence[Source], timeouts: Sequence[float]) -> None:
        self.sources = list(sources)
        self.timeouts = list(timeouts)
        self.failures: dict[str, int] = {s.info.id: 0 for s in self.sources}
        self._failing: set[str] = set()
        # The last poll's failed reads: (source id, ns since the epoch, reason); the agent
        # sends them in the tick's batch (agent/wire.py `failures`).
        self.tick_failures: list[tuple[str, int, str]] = []

    async def _read(self, source: Source, timeout: float) -> list[Reading]:
        sid = source.info.id
        try:
            # asyncio.timeout rather than wait_for: same TimeoutError, without a second task
            # and its wake-ups per source and tick.
            async with asyncio.timeout(timeout):
                readings = await source.read()
        except TimeoutError:
            reason = timeout_reason(source, timeout)
        except SourceError as exc:
            reason = str(exc)
        except Exception as exc:  # a source bug must not stop the other targets
            reason = f"unexpected {type(exc).__name__}: {exc}"
        else:
            if sid in self._failing:
                self._failing.discard(sid)
                log.info("target recovered", source=sid)
            return readings
        self.failures[sid] += 1
        self.tick_failures.append((sid, now_ns(), reason))
        if sid not in self._failing:
            self._failing.add(sid)
            log.warning("target failed", source=sid, reason=reason)
        return []

    async def poll(self) -> Tick:
        """Read all sources concurrently; return (source, reading) pairs of those that answered
        (the failed reads are in `tick_failures` until the next poll)."""
        self.tick_failures = []
        results = await asyncio.gather(
            *(self._read(s, t) for s, t in zip(self.sources, self.timeouts, strict=True))
        )
        return [(s.info, r) for s, rs in zip(self.sources, results, strict=True) for r in rs]

    async def close(self) -> None:
        """Close every source, ignoring errors of dead targets."""
        for s in self.sources:
            try:
                await s.close()
            except Exception as exc:
                log.debug("close failed", source=s.info.id, error=str(exc))


def timeout_reason(source: Source, timeout_s: float) -> str:
    """The message for a read that outran `timeout_s`: the target, and the source's own hint.

    A source's client may give up a moment after the poller does (pysnmp checks its timers
    every few tenths of a second), so the poller asks the source what silence means for it
    (`timeout_hint()`, optional): a wrong SNMP community looks exactly like a dead host.
    """
    hint_of = getattr(source, "timeout_hint", None)
    hint = hint_of() if callable(hint_of) else "check that it is reachable"
    info = source.info
    return f"{info.address} ({info.protocol}): no answer within {timeout_s:g} s (timeout_s): {hint}"


def next_aligned(now_s: float, interval_s: float) -> datetime:
    """The first instant after `now_s` that is a whole multiple of `interval_s` (UTC)."""
    return datetime.fromtimestamp(math.floor(now_s / interval_s + 1) * interval_s, UTC)


def start_ticks(
    job: Callable[[], Awaitable[None]], interval_s: float, now_s: float
) -> AsyncIOScheduler:
    """Run `job` on wall-clock multiples of `interval_s`; an overrunning tick is skipped.

    Must be called inside the running event loop.
    """
    scheduler = AsyncIOScheduler(timezone=UTC)
    scheduler.add_job(
        job,
        IntervalTrigger(seconds=interval_s, start_date=next_aligned(now_s, interval_s)),
        max_instances=1,
        coalesce=True,
        misfire_grace_time=max(1, int(interval_s / 2)),
        id="poll",
    )
    scheduler.start()
    return scheduler
