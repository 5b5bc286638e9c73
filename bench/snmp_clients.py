"""Benchmark: SNMP client candidates, CPU µs and wall per switch-GET against the same switches.

The simulated switches (dcmeter.sim.snmp, `bench/sim_snmp.py`'s simulator: 4 ports each, a
v2c community and a v3 authPriv user, SHA/AES-128) run in one process; each candidate runs
in a fresh process of its own, so its CPU (`time.process_time`, all its threads) is its own.
A cycle GETs every switch once, all at once with at most --in-flight requests out, each GET
asking what the agent's snmp source asks a switch with 2 selected ports: sysUpTime and, per
port, ifHCIn/OutOctets, ifHighSpeed, ifSpeed and ifCounterDiscontinuityTime (11 OIDs). One
warm-up cycle (first contact, v3 discovery, the library's imports) is not counted; failed
GETs are counted in every cycle, the warm-up included.

Candidates:

- pysnmp-v2c: pysnmp 7's asyncio `get_cmd` as the agent used it until issue 20: one shared
  engine, var-binds resolved once and reused, `lookupMib=False`;
- dcmeter-v2c: the agent's SnmpClient over its own codec (agent/sources/snmp_codec.py and
  snmp_v2c.py): what a read costs now;
- ezsnmp-v2c: ezsnmp (Net-SNMP's C library through SWIG; blocking), one Session per switch,
  GETs in --threads worker threads as the agent runs blocking IPMI reads; installed apart
  (`pip install --target DIR ezsnmp`, then --ezsnmp-path DIR), skipped when not found;
- pysnmp-v3: the agent's SnmpClient on v3 authPriv (pysnmp, one engine per switch);
- raw-v2c: the floor of any asyncio client in Python: one pre-encoded GET sent per switch on
  one socket and its answer received, not decoded.

    .venv/bin/python bench/snmp_clients.py --switches 200 --cycles 20 --json F
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sim_snmp import USER, _simulator

OIDS = (
    "1.3.6.1.2.1.1.3.0",
    *(
        f"{column}.{port}"
        for port in (1, 2)
        for column in (
            "1.3.6.1.2.1.31.1.1.1.6",  # ifHCInOctets
            "1.3.6.1.2.1.31.1.1.1.10",  # ifHCOutOctets
            "1.3.6.1.2.1.31.1.1.1.15",  # ifHighSpeed
            "1.3.6.1.2.1.2.2.1.5",  # ifSpeed
            "1.3.6.1.2.1.31.1.1.1.19",  # ifCounterDiscontinuityTime
        )
    ),
)
CANDIDATES = ("pysnmp-v2c", "dcmeter-v2c", "ezsnmp-v2c", "pysnmp-v3", "raw-v2c")


def _gate(n: int) -> asyncio.Semaphore:
    return asyncio.Semaphore(n)


async def _cycles(get: Any, ports: list[int], args: argparse.Namespace) -> dict[str, Any]:
    """Warm up, then time `args.cycles` cycles of `get(port) -> bool` over every port."""
    gate = _gate(args.in_flight)
    errors: list[str] = []

    async def one(port: int) -> bool:
        async with gate:
            try:
                return bool(await get(port))
            except Exception as exc:
                errors.append(f"{type(exc).__name__}: {exc}")
                return False

    t0 = time.perf_counter()
    warm = await asyncio.gather(*(one(p) for p in ports))
    first_s = time.perf_counter() - t0
    walls, cpus, failed = [], [], [warm.count(False)]
    for _ in range(args.cycles):
        c0, t0 = time.process_time(), time.perf_counter()
        got = await asyncio.gather(*(one(p) for p in ports))
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
        failed.append(got.count(False))
    return {"first_cycle_s": first_s, "walls_s": walls, "cpus_s": cpus, "failed": failed,
            "first_error": errors[0] if errors else None}


def _config(port: int, v3: bool = False) -> Any:
    from dcmeter.agent.sources.snmp_config import SnmpSettings

    data: dict[str, Any] = {"type": "snmp", "id": f"sw-{port}", "host": "127.0.0.1",
                            "port": port, "timeout_s": 5, "interfaces": {"if_indexes": [1, 2]}}
    if v3:
        user, auth_pw, priv_pw = USER
        data |= {"version": "3", "username": user, "auth_password": auth_pw,
                 "priv_password": priv_pw, "auth_protocol": "SHA", "priv_protocol": "AES"}
    else:
        data["community"] = "public"
    return SnmpSettings.model_validate(data)


async def _dcmeter(ports: list[int], args: argparse.Namespace, v3: bool) -> dict[str, Any]:
    from dcmeter.agent.samples import now_ns
    from dcmeter.agent.sources.snmp_client import SnmpClient

    clients = {p: SnmpClient(_config(p, v3), f"127.0.0.1:{p}", 2.0, now_ns) for p in ports}

    async def get(port: int) -> bool:
        return len(await clients[port].get(list(OIDS))) == len(OIDS)

    try:
        return await _cycles(get, ports, args)
    finally:
        for c in clients.values():
            c.close()


async def _pysnmp(ports: list[int], args: argparse.Namespace) -> dict[str, Any]:
    from pysnmp.hlapi.v3arch.asyncio import (
        CommunityData,
        ContextData,
        ObjectIdentity,
        ObjectType,
        SnmpEngine,
        UdpTransportTarget,
        get_cmd,
    )

    engine = SnmpEngine()
    auth = CommunityData("public", mpModel=1)
    context = ContextData()
    targets = {
        p: await UdpTransportTarget.create(("127.0.0.1", p), timeout=2, retries=1) for p in ports
    }
    var_binds = [ObjectType(ObjectIdentity(o)) for o in OIDS]

    async def get(port: int) -> bool:
        error, status, _, answered = await get_cmd(
            engine, auth, targets[port], context, *var_binds, lookupMib=False
        )
        # As the agent did: every value to a plain int (pyasn1 objects to Python).
        values = [int(v) for _, v in answered]
        return not error and not status and len(values) == len(OIDS)

    try:
        return await _cycles(get, ports, args)
    finally:
        engine.close_dispatcher()


async def _ezsnmp(ports: list[int], args: argparse.Namespace) -> dict[str, Any]:
    from ezsnmp import Session

    sessions: dict[int, Any] = {}
    pool = ThreadPoolExecutor(args.threads)
    loop = asyncio.get_running_loop()

    def blocking_get(port: int) -> bool:
        session = sessions.get(port)
        if session is None:
            session = sessions[port] = Session(
                hostname="127.0.0.1", port_number=port, version=2, community="public",
                timeout=2, retries=1, print_oids_numerically=True,
                print_timeticks_numerically=True,
            )
        answered = session.get(list(OIDS))
        # net-snmp's print options are process-wide: a Session made in another thread at
        # the same time may leave TimeTicks as "(1151) 0:00:11.51".
        values = [int(v.value.partition(")")[0].lstrip("(")) for v in answered]
        return len(values) == len(OIDS)

    async def get(port: int) -> bool:
        return await loop.run_in_executor(pool, blocking_get, port)

    try:
        return await _cycles(get, ports, args)
    finally:
        pool.shutdown()


async def _raw(ports: list[int], args: argparse.Namespace) -> dict[str, Any]:
    from dcmeter.agent.sources.snmp_codec import encode_request, response_id

    loop = asyncio.get_running_loop()
    waiting: dict[int, asyncio.Future[bytes]] = {}

    class Protocol(asyncio.DatagramProtocol):
        def datagram_received(self, data: bytes, addr: Any) -> None:
            fut = waiting.pop(response_id(data), None)
            if fut is not None and not fut.done():
                fut.set_result(data)

    transport, _ = await loop.create_datagram_endpoint(Protocol, local_addr=("127.0.0.1", 0))
    messages = {p: encode_request(b"public", p, OIDS) for p in ports}  # request-id = port

    async def get(port: int) -> bool:
        fut = loop.create_future()
        waiting[port] = fut
        transport.sendto(messages[port], ("127.0.0.1", port))
        return bool(await asyncio.wait_for(fut, 2))

    try:
        return await _cycles(get, ports, args)
    finally:
        transport.close()


def _candidate(name: str, ports: list[int], args: argparse.Namespace, conn: Connection) -> None:
    """Run one candidate in this (fresh) process; send its figures on `conn`."""
    if args.ezsnmp_path:
        sys.path.insert(0, args.ezsnmp_path)
    runs = {
        "pysnmp-v2c": lambda: _pysnmp(ports, args),
        "dcmeter-v2c": lambda: _dcmeter(ports, args, v3=False),
        "ezsnmp-v2c": lambda: _ezsnmp(ports, args),
        "pysnmp-v3": lambda: _dcmeter(ports, args, v3=True),
        "raw-v2c": lambda: _raw(ports, args),
    }
    try:
        conn.send(asyncio.run(runs[name]()))
    except ImportError as exc:
        conn.send({"skipped": str(exc)})


def _summary(name: str, got: dict[str, Any], n: int, sim_cpu_s: float) -> dict[str, Any]:
    if "skipped" in got:
        return {"candidate": name, **got}
    cpus, walls = got["cpus_s"], got["walls_s"]
    gets = n * len(cpus)
    return {
        "candidate": name,
        "cpu_us_per_get": 1e6 * sum(cpus) / gets,
        "cycle_cpu_s": sum(cpus) / len(cpus),
        "cycle_wall_s": sum(walls) / len(walls),
        "cycle_wall_max_s": max(walls),
        "wall_us_per_get": 1e6 * sum(walls) / gets,
        "first_cycle_s": got["first_cycle_s"],
        "failed_per_cycle": got["failed"],
        "sim_cpu_us_per_get": 1e6 * sim_cpu_s / (n * (len(cpus) + 1)),
        "raw": got,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--switches", type=int, default=200)
    ap.add_argument("--cycles", type=int, default=20)
    ap.add_argument("--in-flight", type=int, default=64)
    ap.add_argument("--threads", type=int, default=16, help="ezsnmp worker threads")
    ap.add_argument("--candidates", default=",".join(CANDIDATES))
    ap.add_argument("--ezsnmp-path", default=os.environ.get("EZSNMP_PATH", ""))
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    ctx = mp.get_context("spawn")
    sim_end, sim_conn = ctx.Pipe()
    sim = ctx.Process(target=_simulator, args=(args.switches, sim_conn), daemon=True)
    sim.start()
    ports: list[int] = sim_end.recv()
    results = []
    load = []
    try:
        for name in args.candidates.split(","):
            sim_end.send("cpu")
            sim_cpu0, _ = sim_end.recv()
            mine, theirs = ctx.Pipe()
            proc = ctx.Process(target=_candidate, args=(name, ports, args, theirs))
            proc.start()
            got = mine.recv()
            proc.join()
            sim_end.send("cpu")
            sim_cpu1, _ = sim_end.recv()
            load.append(os.getloadavg()[0])
            results.append(_summary(name, got, args.switches, sim_cpu1 - sim_cpu0))
    finally:
        sim_end.send("stop")
        sim_end.recv()
        sim.join(5)
    print(f"{args.switches} switches, {len(OIDS)} OIDs per GET, {args.cycles} cycles after a "
          f"warm-up, {args.in_flight} in flight; load average {min(load):.1f}-{max(load):.1f}")
    print(f"{'candidate':<12} {'CPU µs/GET':>10} {'cycle CPU s':>11} {'cycle wall s':>12} "
          f"{'(max)':>6} {'first s':>7} {'failed, all cycles':>18} {'sim µs/GET':>10}")
    for r in results:
        if "skipped" in r:
            print(f"{r['candidate']:<12} skipped: {r['skipped']}")
            continue
        print(f"{r['candidate']:<12} {r['cpu_us_per_get']:>10.0f} {r['cycle_cpu_s']:>11.3f} "
              f"{r['cycle_wall_s']:>12.3f} {r['cycle_wall_max_s']:>6.3f} "
              f"{r['first_cycle_s']:>7.2f} {sum(r['failed_per_cycle']):>18} "
              f"{r['sim_cpu_us_per_get']:>10.0f}")
        if r["raw"]["first_error"]:
            print(f"  first error: {r['raw']['first_error']}")
    if args.json:
        args.json.write_text(json.dumps({
            "argv": sys.argv, "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
            "loadavg": load, "switches": args.switches, "oids_per_get": len(OIDS),
            "cycles": args.cycles, "results": results,
        }, indent=1))


if __name__ == "__main__":
    main()
