"""The start-up phase: every source's set-up (sessions, table walks) done before the first tick.

A source's first read does more than the others: an IPMI source opens its RMCP+ session (a
few round trips and the RAKP key exchange, AES and HMAC in Python), an SNMP source makes the
shared engine and walks the interface table. At 1,000 targets that is seconds of CPU, and
done inside the first tick every target's `timeout_s` ran from the tick's start while it
queued for the CPU: all 200 switches of the bench site failed their first tick although
every one of them answered (docs/benchmarks.md, section 1).

So the agent sets its sources up before it schedules any tick: each source's optional
`prepare()` runs, all at once, under one budget for the whole phase rather than a per-target
timeout. That is sound because a protocol client times its own requests from when it sends
them (pysnmp per attempt, python-ipmi per request), so a dead target still ends its set-up
on its own; the budget only bounds a start that cannot finish (systemd's TimeoutStartSec=60
is above it). A set-up that fails or is unfinished is not a failed target: the first read
sets the source up again within its timeout and counts a failure if it still fails.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog

from dcmeter.agent.sources import Source, SourceError

log = structlog.get_logger("dcmeter.agent.startup")

# Bound on the whole start-up phase, s: 600 RMCP+ sessions and 200 table walks took ~3 s of
# CPU on 2 cores (docs/benchmarks.md); ten times that, and below TimeoutStartSec=60.
STARTUP_S = 30.0


@dataclass(frozen=True, slots=True)
class StartUp:
    """What the start-up phase did: sources set up, failed, left unfinished, and its wall time."""

    prepared: int = 0
    failed: dict[str, str] = field(default_factory=dict)  # source id -> reason
    unfinished: tuple[str, ...] = ()  # still setting up when the budget ran out (or a stop)
    without: int = 0  # sources with nothing to set up (no prepare())
    wall_s: float = 0.0


async def prepare_sources(
    sources: Sequence[Source], budget_s: float = STARTUP_S, stop: asyncio.Event | None = None
) -> StartUp:
    """Set every source up at once within `budget_s` seconds; end early when `stop` is set."""
    started = time.monotonic()
    preps: dict[str, Callable[[], Awaitable[None]]] = {}
    for s in sources:
        prepare = getattr(s, "prepare", None)
        if callable(prepare):
            preps[s.info.id] = prepare
    if not preps:
        return StartUp(without=len(sources))
    tasks = {sid: asyncio.ensure_future(_one(sid, fn)) for sid, fn in preps.items()}
    waits: set[asyncio.Future[Any]] = {asyncio.gather(*tasks.values())}
    stopper = asyncio.ensure_future(stop.wait()) if stop is not None else None
    if stopper is not None:
        waits.add(stopper)
    try:
        await asyncio.wait(waits, timeout=budget_s, return_when=asyncio.FIRST_COMPLETED)
    finally:
        if stopper is not None:
            stopper.cancel()
        for t in tasks.values():
            t.cancel()  # a set-up left unfinished is taken again by the first read
        await asyncio.gather(*tasks.values(), return_exceptions=True)
    failed = {sid: r for sid, t in tasks.items() if t.done() and not t.cancelled()
              and (r := t.result()) is not None}
    unfinished = tuple(sid for sid, t in tasks.items() if t.cancelled())
    result = StartUp(prepared=len(tasks) - len(failed) - len(unfinished), failed=failed,
                     unfinished=unfinished, without=len(sources) - len(preps),
                     wall_s=time.monotonic() - started)
    log.info("sources set up", prepared=result.prepared, failed=len(failed),
             unfinished=len(unfinished), wall_s=round(result.wall_s, 3))
    if unfinished:
        log.warning("start-up budget ran out: these sources set up on their first read",
                    budget_s=budget_s, sources=list(unfinished[:10]), count=len(unfinished))
    return result


async def _one(sid: str, prepare: Callable[[], Awaitable[None]]) -> str | None:
    """Run one source's set-up; the reason it failed, or None."""
    try:
        await prepare()
    except SourceError as exc:
        reason = str(exc)
    except Exception as exc:  # a source bug must not stop the start of the others
        reason = f"unexpected {type(exc).__name__}: {exc}"
    else:
        return None
    # Not a target failure yet: the first read tries again and counts it if it fails.
    log.info("set-up failed, retried on the first read", source=sid, reason=reason)
    return reason
