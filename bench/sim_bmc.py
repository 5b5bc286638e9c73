"""Benchmark: RMCP+ sessions/s and DCMI power reads/s against N simulated BMCs on loopback.

The BMCs run in one process on one asyncio loop (as `dcmeter simulate` runs them); python-ipmi
clients run in other processes, so client and simulator do not share a GIL. Besides the
rates, the simulator's own CPU time per operation is printed: that is its capacity
independent of how fast the clients are (1 / cost = operations per second per core).

    .venv/bin/python bench/sim_bmc.py --bmcs 200 --clients 2 --seconds 5 --suite 3
"""

from __future__ import annotations

import argparse
import asyncio
import hmac
import multiprocessing as mp
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from multiprocessing.synchronize import Barrier
from typing import Any


def _simulator(n: int, conn: Connection) -> None:
    """Serve n BMCs; answer each message on `conn` with (CPU s, sessions, reads); 'stop' ends."""
    from dcmeter.sim.bmc import PowerReading, SimBmc

    def power(i: int) -> Callable[[], PowerReading]:
        reading = PowerReading(100.0 + i, 90.0, 110.0 + i, 100.0)
        return lambda: reading

    async def main() -> None:
        bmcs = [SimBmc(power(i)) for i in range(n)]
        conn.send([await b.start() for b in bmcs])
        loop = asyncio.get_running_loop()
        while True:
            msg = await loop.run_in_executor(None, conn.recv)
            opened = sum(b.sessions_opened for b in bmcs)
            reads = sum(b.power_reads for b in bmcs)
            conn.send((time.process_time(), opened, reads))
            if msg == "stop":
                break
        for b in bmcs:
            await b.stop()

    asyncio.run(main())


def _patch_sha256_keys() -> None:
    """python-ipmi 0.6.1 keys SHA-256 suites unlike real BMCs; use the 20-byte constants."""
    from pyipmi.interfaces import rmcpplus as R

    def init(self: Any, suite: Any, sik: bytes) -> None:
        self.suite = suite
        digest = R.AUTH_ALGORITHMS[suite.authentication][0]
        self.k1 = hmac.new(sik, b"\x01" * 20, digest).digest()
        self.k2 = hmac.new(sik, b"\x02" * 20, digest).digest()

    R.SessionKeys.__init__ = init


def _connect(port: int, suite: int) -> Any:
    import pyipmi
    import pyipmi.interfaces

    intf = pyipmi.interfaces.create_interface("rmcpplus", cipher_suite=suite, keep_alive_interval=0)
    ipmi = pyipmi.create_connection(intf)
    ipmi.session.set_session_type_rmcp("127.0.0.1", port=port)
    ipmi.session.set_auth_type_user("admin", "secret")
    ipmi.target = pyipmi.Target(ipmb_address=0x20)
    ipmi.open()
    return ipmi


def _client(
    mode: str, ports: list[int], suite: int, seconds: float, barrier: Barrier, out: Connection
) -> None:
    """Open+close sessions, or read power over open sessions, round-robin for `seconds`."""
    _patch_sha256_keys()
    conns = [_connect(p, suite) for p in ports] if mode == "reads" else []
    barrier.wait()
    count, i = 0, 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if mode == "reads":
            conns[i % len(conns)].get_power_reading(1)
        else:
            _connect(ports[i % len(ports)], suite).close()
        count += 1
        i += 1
    barrier.wait()
    for c in conns:
        c.close()
    out.send(count)


def _phase(
    ctx: Any, mode: str, ports: list[int], args: argparse.Namespace, sim: Connection
) -> tuple[float, float, int]:
    """Run one phase; (ops/s, simulator CPU µs per op, ops counted by the simulator)."""
    barrier = ctx.Barrier(args.clients + 1)
    pipes, procs = [], []
    for k in range(args.clients):
        mine = ports[k :: args.clients]
        here, there = ctx.Pipe()
        p = ctx.Process(target=_client, args=(mode, mine, args.suite, args.seconds, barrier, there))
        p.start()
        pipes.append(here)
        procs.append(p)
    barrier.wait()
    start = time.monotonic()
    sim.send("mark")
    cpu0, opened0, reads0 = sim.recv()
    barrier.wait()
    elapsed = time.monotonic() - start
    sim.send("mark")
    cpu1, opened1, reads1 = sim.recv()
    count = sum(p.recv() for p in pipes)
    for p in procs:
        p.join()
    served = (reads1 - reads0) if mode == "reads" else (opened1 - opened0)
    return count / elapsed, (cpu1 - cpu0) / max(served, 1) * 1e6, served


def main() -> None:
    """Parse arguments, run both phases, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bmcs", type=int, default=200)
    parser.add_argument("--clients", type=int, default=2, help="client processes")
    parser.add_argument("--seconds", type=float, default=5.0, help="per phase")
    parser.add_argument("--suite", type=int, default=3, choices=[1, 2, 3, 15, 16, 17])
    args = parser.parse_args()

    ctx = mp.get_context("spawn")
    sim, there = ctx.Pipe()
    server = ctx.Process(target=_simulator, args=(args.bmcs, there))
    server.start()
    ports: list[int] = sim.recv()
    try:
        print(
            f"{args.bmcs} simulated BMCs in one process, {args.clients} python-ipmi client "
            f"processes, cipher suite {args.suite}, {args.seconds:g} s per phase"
        )
        rate, cost, served = _phase(ctx, "sessions", ports, args, sim)
        print(
            f"sessions (open + close): {rate:8.1f}/s   simulator CPU {cost:6.0f} µs/session"
            f"   ({served} sessions)"
        )
        rate, cost, served = _phase(ctx, "reads", ports, args, sim)
        print(
            f"DCMI power reads:        {rate:8.1f}/s   simulator CPU {cost:6.0f} µs/read"
            f"      ({served} reads)"
        )
    finally:
        sim.send("stop")
        sim.recv()
        server.join(10)


if __name__ == "__main__":
    main()
