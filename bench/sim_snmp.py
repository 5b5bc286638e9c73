"""Benchmark: SNMP GET requests/s against one and N simulated agents on loopback.

The agents run in one process on one asyncio loop (as `dcmeter simulate` runs them), each on
its own UDP port, each with a v2c community and a v3 authPriv user (SHA, AES-128). Clients
run in other processes, so clients and simulator do not share a GIL:

- pysnmp: the high-level `get_cmd` (what dcmeter's snmp source used for v2c until issue 20,
  and uses for v3; its v2c codec is measured in bench/snmp_clients.py), several requests in
  flight per client process, after one warm-up GET per target (pysnmp's first contact with a
  target costs several ms on the client side, v3 adds engine discovery);
- snmpget: net-snmp's tool, one process per request, as a script would poll;
- raw: one pre-encoded v2c GET (pysnmp's codec) sent over a plain socket with a window of
  requests in flight: close to the simulator's own capacity.

Every GET asks for 4 OIDs: sysUpTime, ifHCInOctets.1, ifHCOutOctets.1, ifHighSpeed.1. Besides
the rates, the simulator's own CPU time per answered request is printed: 1 / cost is what one
core can serve whatever the clients.

    .venv/bin/python bench/sim_snmp.py --agents 1000 --clients 2 --seconds 3
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import resource
import select
import socket
import subprocess
import time
from multiprocessing.connection import Connection
from multiprocessing.synchronize import Barrier
from typing import Any

OIDS = (
    "1.3.6.1.2.1.1.3.0",
    "1.3.6.1.2.1.31.1.1.1.6.1",
    "1.3.6.1.2.1.31.1.1.1.10.1",
    "1.3.6.1.2.1.31.1.1.1.15.1",
)
USER = ("bench", "bench-auth-pw", "bench-priv-pw")
PHASES = ("pysnmp-v2c", "pysnmp-v3", "snmpget-v2c", "snmpget-v3", "raw-v2c")


def _simulator(n: int, conn: Connection) -> None:
    """Serve n agents; answer each message on `conn` with (CPU s, requests answered)."""
    from dcmeter.sim.snmp import SimInterface, SimSnmpAgent

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, n + 256)), hard))
    t0 = time.time()

    def ramp(rate: float) -> Any:
        return lambda t: rate * (t - t0)

    def agent(i: int) -> SimSnmpAgent:
        ports = [
            SimInterface(
                index=k,
                name=f"Eth1/{k}",
                in_octets=ramp(1e8 * k + i),
                out_octets=ramp(5e7 * k + i),
                speed_mbps=100_000,
            )
            for k in range(1, 5)
        ]
        return SimSnmpAgent(interfaces=ports, sys_name=f"sw-{i}", v3_user=USER)

    async def main() -> None:
        agents = [agent(i) for i in range(n)]
        conn.send([await a.start() for a in agents])
        loop = asyncio.get_running_loop()
        while True:
            msg = await loop.run_in_executor(None, conn.recv)
            conn.send((time.process_time(), sum(a.requests for a in agents)))
            if msg == "stop":
                break
        for a in agents:
            await a.stop()

    asyncio.run(main())


async def _pysnmp(mode: str, ports: list[int], args: argparse.Namespace, barrier: Barrier) -> int:
    from pysnmp.hlapi.v3arch.asyncio import (
        CommunityData,
        ContextData,
        ObjectIdentity,
        ObjectType,
        SnmpEngine,
        UdpTransportTarget,
        UsmUserData,
        get_cmd,
        usmAesCfb128Protocol,
        usmHMACSHAAuthProtocol,
    )

    engine = SnmpEngine()
    if mode.endswith("v3"):
        auth: Any = UsmUserData(
            *USER, authProtocol=usmHMACSHAAuthProtocol, privProtocol=usmAesCfb128Protocol
        )
    else:
        auth = CommunityData("public", mpModel=1)
    targets = [
        await UdpTransportTarget.create(("127.0.0.1", p), timeout=2, retries=1) for p in ports
    ]
    objects = [ObjectType(ObjectIdentity(o)) for o in OIDS]
    state = {"next": 0, "count": 0, "errors": 0}
    end = [0.0]

    async def get(target: Any) -> None:
        error, status, _, _ = await get_cmd(
            engine, auth, target, ContextData(), *objects, lookupMib=False
        )
        state["errors" if error or status else "count"] += 1

    async def worker() -> None:
        while time.monotonic() < end[0]:
            i = state["next"]
            state["next"] += 1
            await get(targets[i % len(targets)])

    gate = asyncio.Semaphore(args.concurrency)

    async def warm(target: Any) -> None:
        async with gate:
            await get(target)

    await asyncio.gather(*(warm(t) for t in targets))  # first contact / v3 discovery
    if state["errors"]:
        raise SystemExit(f"{mode}: {state['errors']} warm-up GETs failed")
    state["count"] = 0
    barrier.wait()
    end[0] = time.monotonic() + args.seconds
    await asyncio.gather(*(worker() for _ in range(args.concurrency)))
    barrier.wait()
    engine.close_dispatcher()
    return state["count"]


def _snmpget(mode: str, ports: list[int], args: argparse.Namespace, barrier: Barrier) -> int:
    if mode.endswith("v3"):
        auth = [
            "-v3",
            "-l",
            "authPriv",
            "-u",
            USER[0],
            "-a",
            "SHA",
            "-A",
            USER[1],
            "-x",
            "AES",
            "-X",
            USER[2],
        ]
    else:
        auth = ["-v2c", "-c", "public"]
    env = {**os.environ, "MIBS": "", "SNMP_PERSISTENT_DIR": f"/tmp/bench-snmp-{os.getpid()}"}
    barrier.wait()
    count, i = 0, 0
    end = time.monotonic() + args.seconds
    while time.monotonic() < end:
        target = f"127.0.0.1:{ports[i % len(ports)]}"
        cmd = ["snmpget", *auth, "-m", "", "-t", "2", "-r", "1", target, *OIDS]
        ok = subprocess.run(cmd, env=env, capture_output=True).returncode == 0
        count += ok
        i += 1
    barrier.wait()
    return count


def _v2c_get(bulk: int = 0) -> bytes:
    """One encoded v2c GET of OIDS (or GETBULK of `bulk` ifHCInOctets), with pysnmp's codec."""
    from pyasn1.codec.ber import encoder
    from pysnmp.proto import api

    v2c = api.PROTOCOL_MODULES[api.SNMP_VERSION_2C]
    if bulk:
        pdu = v2c.GetBulkRequestPDU()
        v2c.apiBulkPDU.set_defaults(pdu)
        v2c.apiBulkPDU.set_max_repetitions(pdu, bulk)
        hc_in = (1, 3, 6, 1, 2, 1, 31, 1, 1, 1, 6)  # ifHCInOctets: counters computed per row
        v2c.apiBulkPDU.set_varbinds(pdu, [(hc_in, v2c.Null(""))])
    else:
        pdu = v2c.GetRequestPDU()
        v2c.apiPDU.set_defaults(pdu)
        oids = [tuple(map(int, o.split("."))) for o in OIDS]
        v2c.apiPDU.set_varbinds(pdu, [(o, v2c.Null("")) for o in oids])
    msg = v2c.Message()
    v2c.apiMessage.set_defaults(msg)
    v2c.apiMessage.set_community(msg, "public")
    v2c.apiMessage.set_pdu(msg, pdu)
    return bytes(encoder.encode(msg))


def _raw(ports: list[int], args: argparse.Namespace, barrier: Barrier) -> int:
    request = _v2c_get()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 21)
    sock.settimeout(2)
    sock.sendto(request, ("127.0.0.1", ports[0]))
    sock.recv(65535)  # the agent answers before the clock starts
    sock.setblocking(False)
    barrier.wait()
    count, sent, in_flight = 0, 0, 0
    end = time.monotonic() + args.seconds
    while time.monotonic() < end:
        while in_flight < args.window:
            sock.sendto(request, ("127.0.0.1", ports[sent % len(ports)]))
            sent += 1
            in_flight += 1
        if not select.select([sock], [], [], 0.2)[0]:
            in_flight = 0  # lost in a full buffer: refill the window
            continue
        while True:
            try:
                sock.recv(65535)
            except BlockingIOError:
                break
            count += 1
            in_flight -= 1
    barrier.wait()
    sock.close()
    return count


def _in_process() -> None:
    """Print the agent's own cost per request, called directly (no sockets), and pyasn1's."""
    from pyasn1.codec.ber import decoder, encoder
    from pysnmp.proto import api

    from dcmeter.sim.snmp import SimInterface, SimSnmpAgent

    def ramp(t: float) -> float:
        return 1.25e9 * t

    ports = [
        SimInterface(index=k, name=f"Eth1/{k}", in_octets=ramp, out_octets=ramp)
        for k in range(1, 49)
    ]
    agent = SimSnmpAgent(interfaces=ports, v3_user=USER)
    v3 = _capture_v3_get(agent)

    def cost(fn: Any, n: int = 5000) -> float:
        start = time.perf_counter()
        for _ in range(n):
            fn()
        return (time.perf_counter() - start) / n * 1e6

    get, bulk = _v2c_get(), _v2c_get(bulk=25)
    assert agent.handle(get) and agent.handle(bulk) and agent.handle(v3)
    v2c = api.PROTOCOL_MODULES[api.SNMP_VERSION_2C]

    def pyasn1_roundtrip() -> None:
        msg, _ = decoder.decode(get, asn1Spec=v2c.Message())
        encoder.encode(msg)

    print("in process, 48-port agent, no sockets:")
    print(f"  v2c GET of 4 OIDs        {cost(lambda: agent.handle(get)):7.1f} µs")
    print(f"  v2c GETBULK, 25 counters {cost(lambda: agent.handle(bulk)):7.1f} µs")
    print(f"  v3 authPriv GET, 4 OIDs  {cost(lambda: agent.handle(v3)):7.1f} µs")
    print(f"  (pyasn1 decode + encode of the same v2c GET: {cost(pyasn1_roundtrip, 500):.0f} µs)")


def _capture_v3_get(agent: Any) -> bytes:
    """A v3 authPriv GET of OIDS as pysnmp sends it to `agent` (discovery done)."""
    from pysnmp.hlapi.v3arch.asyncio import (
        ContextData,
        ObjectIdentity,
        ObjectType,
        SnmpEngine,
        UdpTransportTarget,
        UsmUserData,
        get_cmd,
        usmAesCfb128Protocol,
        usmHMACSHAAuthProtocol,
    )

    seen: list[bytes] = []
    handle = agent.handle

    def spy(data: bytes) -> bytes | None:
        seen.append(data)
        return handle(data)  # type: ignore[no-any-return]

    async def run() -> None:
        agent.handle = spy
        port = await agent.start()
        engine = SnmpEngine()
        auth = UsmUserData(
            *USER, authProtocol=usmHMACSHAAuthProtocol, privProtocol=usmAesCfb128Protocol
        )
        target = await UdpTransportTarget.create(("127.0.0.1", port), timeout=2, retries=1)
        await get_cmd(
            engine,
            auth,
            target,
            ContextData(),
            *[ObjectType(ObjectIdentity(o)) for o in OIDS],
            lookupMib=False,
        )
        engine.close_dispatcher()
        await agent.stop()
        agent.handle = handle

    asyncio.run(run())
    return seen[-1]


def _client(
    mode: str, ports: list[int], args: argparse.Namespace, barrier: Barrier, out: Connection
) -> None:
    if mode.startswith("pysnmp"):
        count = asyncio.run(_pysnmp(mode, ports, args, barrier))
    elif mode.startswith("snmpget"):
        count = _snmpget(mode, ports, args, barrier)
    else:
        count = _raw(ports, args, barrier)
    out.send(count)


def _phase(
    ctx: Any, mode: str, ports: list[int], args: argparse.Namespace, sim: Connection
) -> tuple[float, float, int]:
    """Run one phase; (GETs/s, simulator CPU µs per answered datagram, datagrams answered)."""
    clients = min(args.clients, len(ports)) if not mode.startswith("raw") else args.clients
    barrier = ctx.Barrier(clients + 1)
    pipes, procs = [], []
    for k in range(clients):
        mine = ports[k::clients] if len(ports) >= clients else ports
        here, there = ctx.Pipe()
        p = ctx.Process(target=_client, args=(mode, mine, args, barrier, there))
        p.start()
        pipes.append(here)
        procs.append(p)
    barrier.wait()
    start = time.monotonic()
    sim.send("mark")
    cpu0, served0 = sim.recv()
    barrier.wait()
    elapsed = time.monotonic() - start
    sim.send("mark")
    cpu1, served1 = sim.recv()
    count = sum(p.recv() for p in pipes)
    for p in procs:
        p.join()
    served = served1 - served0
    return count / elapsed, (cpu1 - cpu0) / max(served, 1) * 1e6, served


def main() -> None:
    """Parse arguments, run the phases for 1 and N agents, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=2, help="client processes")
    parser.add_argument(
        "--concurrency", type=int, default=16, help="pysnmp GETs in flight per client process"
    )
    parser.add_argument("--window", type=int, default=32, help="raw GETs in flight per client")
    parser.add_argument("--seconds", type=float, default=3.0, help="per phase")
    parser.add_argument("--phases", default=",".join(PHASES), help="comma-separated subset")
    args = parser.parse_args()

    _in_process()
    ctx = mp.get_context("spawn")
    sim, there = ctx.Pipe()
    server = ctx.Process(target=_simulator, args=(args.agents, there))
    started = time.monotonic()
    server.start()
    ports: list[int] = sim.recv()
    try:
        print(
            f"{args.agents} simulated SNMP agents in one process (started in "
            f"{time.monotonic() - started:.1f} s), {args.clients} client processes, "
            f"{args.seconds:g} s per phase, 4 OIDs per GET"
        )
        for mode in args.phases.split(","):
            for label, subset in (("1 agent", ports[:1]), (f"{args.agents} agents", ports)):
                rate, cost, served = _phase(ctx, mode, subset, args, sim)
                print(
                    f"{mode:12s} {label:12s} {rate:9.1f} GET/s   simulator CPU "
                    f"{cost:6.1f} µs/datagram   ({served} datagrams answered)"
                )
    finally:
        sim.send("stop")
        sim.recv()
        server.join(10)


if __name__ == "__main__":
    main()
