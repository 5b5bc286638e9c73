"""The ipmi source's sessions kept alive by one thread (agent/sources/ipmi_keepalive.py).

Against the simulated BMC (dcmeter.sim.bmc), which expires a session idle for longer than
its `session_timeout_s` as real BMCs do (after ~60 s; a few seconds here).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator

import pytest
from structlog.testing import capture_logs

from dcmeter.agent.sources import TargetUnreachable
from dcmeter.agent.sources.ipmi import IpmiConfig, IpmiSource
from dcmeter.agent.sources.ipmi_keepalive import Keeper
from dcmeter.sim.bmc import PowerReading, SimBmc
from dcmeter.sim.loop import LoopThread

PASSWORD = "keep-secret"
READING = PowerReading(250.0, 240.0, 260.0, 251.0, period_s=10.0)
DEADLINE_S = 30.0  # generous: the machine may be busy


@pytest.fixture
def sim() -> Iterator[LoopThread]:
    """An event loop in a thread serving the test's BMCs."""
    with LoopThread() as loop:
        yield loop


def bmc(timeout_s: float = 60.0) -> SimBmc:
    """A simulated BMC expiring sessions idle for more than `timeout_s`."""
    return SimBmc(lambda: READING, password=PASSWORD, session_timeout_s=timeout_s)


def source(port: int, keeper: Keeper, keep_alive_s: int, ident: str = "bmc-1") -> IpmiSource:
    """An ipmi source for 127.0.0.1:port whose sessions `keeper` looks after."""
    cfg = IpmiConfig.model_validate({
        "type": "ipmi", "id": ident, "host": "127.0.0.1", "port": port, "username": "admin",
        "password": PASSWORD, "timeout_s": 3.0, "keep_alive_s": keep_alive_s,
    })
    return IpmiSource(cfg, PASSWORD, keeper=keeper)


def wait_for(condition: Callable[[], bool], what: str) -> None:
    """Wait until `condition()` holds, failing after DEADLINE_S."""
    end = time.monotonic() + DEADLINE_S
    while not condition():
        if time.monotonic() > end:
            raise AssertionError(f"not within {DEADLINE_S} s: {what}")
        time.sleep(0.05)


def keeper_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "ipmi-keepalive"]


@pytest.mark.parametrize(("keep_alive_s", "sessions"), [(1, 1), (0, 2)])
def test_an_idle_session_outlives_the_bmc_timeout_only_with_keep_alives(
    sim: LoopThread, keep_alive_s: int, sessions: int
) -> None:
    """Idle 3× the BMC's 2 s session timeout between two reads: with a keep-alive after 1 s
    idle the second read uses the first session; without (0), the BMC expired it and the
    read needs a second session (what every tick at interval 60 would cost without)."""
    device = bmc(timeout_s=2.0)
    src = source(sim.serve(device), Keeper(), keep_alive_s)

    async def scenario() -> None:
        assert (await src.read())[0].value == 250.0
        await asyncio.sleep(6.0)  # idle, while the keeper works (or not)
        assert (await src.read())[0].value == 250.0
        await src.close()

    asyncio.run(scenario())
    assert src.sessions_opened == sessions
    assert device.sessions_opened == sessions


def test_one_thread_keeps_every_session_alive_and_ends_with_the_last(sim: LoopThread) -> None:
    devices = [bmc() for _ in range(6)]
    ports = sim.serve_many(devices)
    keeper = Keeper()
    srcs = [source(p, keeper, 1, f"bmc-{i}") for i, p in enumerate(ports)]
    before = {t.ident for t in threading.enumerate()}

    async def open_all() -> None:
        await asyncio.gather(*(s.prepare() for s in srcs))

    asyncio.run(open_all())
    assert keeper.sessions == 6
    assert len(keeper_threads()) == 1
    # python-ipmi's own keep-alive runs a thread per session (target `loop`): none here.
    assert not [t for t in threading.enumerate() if "(loop)" in t.name]
    # Each BMC gets Get Device ID on its idle session (the simulator counts what it
    # answers through its session's outbound sequence number).
    seq0 = [next(iter(d._sessions.values())).out_seq for d in devices]
    wait_for(lambda: all(next(iter(d._sessions.values())).out_seq > s0
                         for d, s0 in zip(devices, seq0, strict=True)),
             "a keep-alive on every session")

    async def close_all() -> None:
        await asyncio.gather(*(s.close() for s in srcs))

    asyncio.run(close_all())
    assert keeper.sessions == 0
    wait_for(lambda: not keeper_threads(), "the keeper thread ends with the last session")
    assert all(d.active_sessions == 0 for d in devices)
    assert {t.ident for t in threading.enumerate()} <= before | {threading.get_ident()}


def test_a_failed_keep_alive_drops_the_session_once_without_secrets(sim: LoopThread) -> None:
    device = bmc()
    keeper = Keeper()
    src = source(sim.serve(device), keeper, 1)
    with capture_logs() as logs:
        asyncio.run(src.prepare())
        assert keeper.sessions == 1
        sim.run(device.stop())  # the BMC goes away between polls
        wait_for(lambda: keeper.sessions == 0, "the dead session dropped")
        time.sleep(3.0)  # no further keep-alive lines for the dead BMC
        with pytest.raises(TargetUnreachable):
            asyncio.run(src.read())
    lines = [e for e in logs if e["event"].startswith("IPMI keep-alive failed")]
    assert len(lines) == 1
    assert lines[0]["source"] == "bmc-1" and "127.0.0.1" in lines[0]["error"]
    assert PASSWORD not in repr(logs)
    assert keeper.sessions == 0  # the failed read opened no session to look after
