"""The start-up phase: a CPU-starved first set-up fails no healthy target on the first tick.

Against dcmeter's simulated SNMP agents (one UDP port each, in a loop thread of their own).
The starvation is made, not hoped for: each source's set-up (its table walk) first blocks the
event loop for STALL_S, as making an engine or opening 600 RMCP+ sessions does on a busy
machine. N × STALL_S = 8 × 0.5 s = 4 s of blocked loop, four times every target's
timeout_s = 1 s: set up inside the first tick, the targets whose turn comes after the first
second fail though all of them answer (the control below shows it); set up by the start-up
phase, whose budget covers the whole phase, the first tick reads every one of them.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator

import pytest

from dcmeter.agent.scheduler import Poller
from dcmeter.agent.sources.snmp import SnmpConfig, SnmpSource
from dcmeter.agent.startup import StartUp, prepare_sources
from dcmeter.sim.loop import LoopThread
from dcmeter.sim.snmp import SimInterface, SimSnmpAgent

N = 8
STALL_S = 0.5
TIMEOUT_S = 1.0


class SlowSetUp(SnmpSource):
    """An SNMP source whose set-up holds the CPU (the event loop) for STALL_S first."""

    async def _resolve(self) -> None:
        time.sleep(STALL_S)  # blocking on purpose: CPU-bound set-up, not a slow target
        await super()._resolve()


@pytest.fixture
def switches() -> Iterator[list[int]]:
    """N simulated switches, one uplink each, switch i counting 1000·i octets in."""
    def constant(value: int) -> Callable[[float], int]:
        return lambda _t: value

    def one(i: int) -> SimSnmpAgent:
        port = SimInterface(index=1, name="Eth1/1", alias="uplink", speed_mbps=10_000,
                            in_octets=constant(1000 * i), out_octets=constant(5))
        return SimSnmpAgent(interfaces=[port])

    with LoopThread() as lt:
        yield lt.serve_many([one(i) for i in range(N)])


def sources(ports: list[int]) -> list[SnmpSource]:
    """One slow-to-set-up source per switch, timeout_s = TIMEOUT_S."""
    return [SlowSetUp(SnmpConfig.model_validate({
        "type": "snmp", "id": f"sw-{p}", "host": "127.0.0.1", "port": p, "community": "public",
        "timeout_s": TIMEOUT_S, "interfaces": {"if_alias_pattern": "^uplink"}}))
        for p in ports]


async def first_tick(poller: Poller) -> dict[str, float]:
    """One poll; each answering switch's if_in_octets by source id."""
    tick = await poller.poll()
    return {info.id: r.value for info, r in tick if r.metric.name == "if_in_octets"}


def test_set_up_before_the_first_tick_fails_no_healthy_target(switches: list[int]) -> None:
    async def body() -> tuple[StartUp, dict[str, float], Poller]:
        srcs = sources(switches)
        poller = Poller(srcs, [TIMEOUT_S] * N)
        try:
            startup = await prepare_sources(srcs)
            return startup, await first_tick(poller), poller
        finally:
            await poller.close()

    startup, got, poller = asyncio.run(body())
    assert startup.prepared == N and not startup.failed and not startup.unfinished
    assert startup.wall_s >= N * STALL_S  # the stalls were really there
    assert got == {f"sw-{p}": 1000.0 * i for i, p in enumerate(switches)}
    assert poller.tick_failures == [] and set(poller.failures.values()) == {0}


def test_control_set_up_inside_the_first_tick_fails_healthy_targets(
    switches: list[int],
) -> None:
    """Without the start-up phase the same stalls fail targets: the test above can fail."""
    async def body() -> Poller:
        srcs = sources(switches)
        poller = Poller(srcs, [TIMEOUT_S] * N)
        try:
            await first_tick(poller)
            return poller
        finally:
            await poller.close()

    poller = asyncio.run(body())
    failed = [sid for sid, n in poller.failures.items() if n]
    assert failed, "the stalls did not starve the first tick"
    assert all("no answer within 1 s" in reason for _, _, reason in poller.tick_failures)


def test_budget_leaves_unfinished_set_ups_to_the_first_read(switches: list[int]) -> None:
    """A budget shorter than the stalls ends the phase; those sources set up when read."""
    async def body() -> tuple[StartUp, dict[str, float]]:
        srcs = sources(switches[:2])
        poller = Poller(srcs, [10.0] * 2)  # generous: the unfinished set-up is redone here
        try:
            startup = await prepare_sources(srcs, budget_s=STALL_S / 2)
            return startup, await first_tick(poller)
        finally:
            await poller.close()

    startup, got = asyncio.run(body())
    # Both set-ups start in one pass of the loop and stall 2 × 0.5 s, past the 0.25 s
    # budget: both are cancelled at their first await after the stall, before any answer.
    assert startup.prepared == 0 and len(startup.unfinished) == 2
    assert got == {f"sw-{p}": 1000.0 * i for i, p in enumerate(switches[:2])}
