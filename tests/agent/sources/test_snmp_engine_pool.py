"""v2c sources share one UDP socket per event loop, bounded in flight; v3 keeps an engine each.

Against dcmeter's simulated SNMP agents (one UDP port each), in a loop thread of their own.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from dcmeter.agent.sources import snmp_v2c
from dcmeter.agent.sources.snmp import SnmpConfig, SnmpSource
from dcmeter.sim.loop import LoopThread
from dcmeter.sim.snmp import SimInterface, SimSnmpAgent

V3 = ("ops", "auth-secret-1", "priv-secret-1")


@pytest.fixture
def loop() -> Iterator[LoopThread]:
    """One event loop in a background thread for the simulated agents."""
    with LoopThread() as lt:
        yield lt


def agents(loop: LoopThread, n: int, v3: bool = False) -> list[int]:
    """Start n simulated switches (one uplink port each); their ports."""
    def constant(value: int) -> Callable[[float], int]:
        return lambda _t: value

    def one(i: int) -> SimSnmpAgent:
        port = SimInterface(index=1, name="Eth1/1", alias="uplink", speed_mbps=10_000,
                            in_octets=constant(1000 * i), out_octets=constant(5))
        return SimSnmpAgent(interfaces=[port], v3_user=V3 if v3 else None)

    return loop.serve_many([one(i) for i in range(n)])


def config(port: int, **fields: Any) -> SnmpConfig:
    """A source config for the simulated agent on 127.0.0.1:port (v2c unless told)."""
    data: dict[str, Any] = {"type": "snmp", "id": f"sw-{port}", "host": "127.0.0.1",
                            "port": port, "interfaces": {"if_alias_pattern": "^uplink"}}
    if fields.get("version") != "3":
        data["community"] = "public"
    return SnmpConfig.model_validate({**data, **fields})


def in_octets(readings: list[Any]) -> float:
    """The one port's if_in_octets."""
    (value,) = [r.value for r in readings if r.metric.name == "if_in_octets"]
    return float(value)


def test_v2c_sources_share_one_socket_and_close_it_with_the_last(loop: LoopThread) -> None:
    ports = agents(loop, 3)

    async def body() -> None:
        sources = [SnmpSource(config(p)) for p in ports]
        got = await asyncio.gather(*(s.read() for s in sources))
        # Each answer is its own agent's, though all went through one socket.
        assert [in_octets(r) for r in got] == [0.0, 1000.0, 2000.0]
        engines = {id(s._client._engine) for s in sources}
        assert len(engines) == 1
        assert snmp_v2c.SOCKETS.users() == 3
        await sources[0].close()
        assert snmp_v2c.SOCKETS.users() == 2
        assert in_octets(await sources[1].read()) == 1000.0  # the others go on
        for s in sources[1:]:
            await s.close()
        assert snmp_v2c.SOCKETS.users() == 0
        # A source read again after all closed opens a new socket.
        assert in_octets(await sources[2].read()) == 2000.0
        assert snmp_v2c.SOCKETS.users() == 1
        await sources[2].close()

    asyncio.run(body())


def test_v3_sources_keep_an_engine_each(loop: LoopThread) -> None:
    ports = agents(loop, 2, v3=True)
    user, auth_pw, priv_pw = V3
    v3 = {"version": "3", "username": user, "auth_password": auth_pw, "auth_protocol": "SHA",
          "priv_password": priv_pw, "priv_protocol": "AES", "security_level": "authPriv"}

    async def body() -> None:
        sources = [SnmpSource(config(p, **v3)) for p in ports]
        got = await asyncio.gather(*(s.read() for s in sources))
        assert [in_octets(r) for r in got] == [0.0, 1000.0]
        assert len({id(s._client._engine) for s in sources}) == 2
        assert snmp_v2c.SOCKETS.users() == 0
        for s in sources:
            await s.close()

    asyncio.run(body())


def test_many_v2c_agents_read_at_once_without_a_retry(loop: LoopThread) -> None:
    # 300 answers at once overflowed the shared socket's default receive buffer before the
    # in-flight bound; with retries = 0 a lost answer is a failed read.
    ports = agents(loop, 300)

    async def body() -> list[float]:
        sources = [SnmpSource(config(p, retries=0, timeout_s=10)) for p in ports]
        try:
            got = await asyncio.gather(*(s.read() for s in sources))  # walks, then GETs
            got = await asyncio.gather(*(s.read() for s in sources))
        finally:
            for s in sources:
                await s.close()
        return [in_octets(r) for r in got]

    assert asyncio.run(body()) == [1000.0 * i for i in range(300)]
