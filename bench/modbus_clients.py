"""Benchmark: Modbus TCP read paths for the agent's meters, each in a fresh process of its own.

    .venv/bin/python bench/modbus_clients.py [--meters 200] [--cycles 20] [--json FILE]

The meters are the bench site's simulated SDM630s (bench_site.py `meters`, in another
process). Each cycle reads every meter's two register blocks (the requests the agent plans
for the eastron_sdm630 profile, one after the other per meter, all meters at once), values
converted to Python ints; the first cycle is a warm-up, reported apart; every failed request
of every cycle is counted. Candidates:

- pymodbus: one AsyncModbusTcpClient per meter, as the agent used it (timeout, retries 0).
- framer: pymodbus's socket framer and PDU classes (request built by `buildFrame`, answer
  decoded by `handleFrame`) on a plain asyncio connection: pymodbus without its client.
- codec: the agent's ModbusLink (modbus_codec.py + modbus_tcp.py): lock, transaction id,
  timer per attempt, decode.
- floor: a pre-encoded request sent, the whole answer frame received, nothing decoded.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_site import ROOT, start_site

CANDIDATES = ("pymodbus", "framer", "codec", "floor")


class _Frames(asyncio.Protocol):
    """A connection that hands each whole Modbus TCP frame to the waiting future."""

    def __init__(self) -> None:
        self.buf = bytearray()
        self.waiter: asyncio.Future[bytes] | None = None
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if len(self.buf) >= 6:
            size = 6 + int.from_bytes(self.buf[4:6], "big")
            if len(self.buf) >= size and self.waiter is not None and not self.waiter.done():
                frame = bytes(self.buf[:size])
                del self.buf[:size]
                self.waiter.set_result(frame)

    async def ask(self, frame: bytes) -> bytes:
        self.waiter = asyncio.get_running_loop().create_future()
        assert self.transport is not None
        self.transport.write(frame)
        async with asyncio.timeout(5):
            return await self.waiter


async def child(candidate: str, ports: list[int], cycles: int) -> dict[str, Any]:
    """Run one candidate over `cycles` + 1 cycles; its CPU and wall per cycle."""
    from dcmeter.agent.sources.modbus import ModbusConfig
    from dcmeter.agent.sources.modbus_codec import encode_read
    from dcmeter.agent.sources.modbus_transport import ModbusLink, TcpEndpoint

    cfg = ModbusConfig.model_validate({"type": "modbus", "id": "m", "host": "127.0.0.1",
                                       "profile": "eastron_sdm630"})
    plan = [(4 if r.table == "input" else 3, r.start, r.count) for r in cfg.build()._requests]
    loop = asyncio.get_running_loop()
    failed = 0

    if candidate == "pymodbus":
        from pymodbus.client import AsyncModbusTcpClient
        clients = [AsyncModbusTcpClient("127.0.0.1", port=p, timeout=5, retries=0)
                   for p in ports]
        await asyncio.gather(*(c.connect() for c in clients))

        async def meter(i: int) -> int:
            c, bad = clients[i], 0
            for fc, start, count in plan:
                read = c.read_input_registers if fc == 4 else c.read_holding_registers
                r = await read(start, count=count, device_id=1)
                regs = list(r.registers)
                bad += r.isError() or len(regs) != count
            return bad
    elif candidate == "codec":
        links = [ModbusLink(TcpEndpoint("127.0.0.1", p), f"m{p}") for p in ports]

        async def meter(i: int) -> int:
            bad = 0
            for fc, start, count in plan:
                code, regs = await links[i].read_registers(fc, start, count, 1, 5.0, 0)
                bad += bool(code) or len(list(regs)) != count
            return bad
    else:
        conns = [(await loop.create_connection(_Frames, "127.0.0.1", p))[1] for p in ports]
        if candidate == "framer":
            from pymodbus.framer import FramerSocket
            from pymodbus.pdu import DecodePDU
            from pymodbus.pdu.register_message import (
                ReadHoldingRegistersRequest,
                ReadInputRegistersRequest,
            )
            framer = FramerSocket(DecodePDU(is_server=False))
            tids = iter(range(1, 1 << 30))

            async def meter(i: int) -> int:
                bad = 0
                for fc, start, count in plan:
                    kind = ReadInputRegistersRequest if fc == 4 else ReadHoldingRegistersRequest
                    tid = next(tids) & 0xFFFF
                    req = kind(address=start, count=count, dev_id=1, transaction_id=tid)
                    answer = await conns[i].ask(framer.buildFrame(req))
                    _, pdu = framer.handleFrame(answer, 1, tid)
                    regs = list(pdu.registers) if pdu is not None else []
                    bad += pdu is None or pdu.isError() or len(regs) != count
                return bad
        else:
            frames = [encode_read(1, 1, fc, start, count) for fc, start, count in plan]

            async def meter(i: int) -> int:
                for frame in frames:
                    await conns[i].ask(frame)
                return 0

    out = []
    for _ in range(cycles + 1):
        c0, t0 = time.process_time(), time.perf_counter()
        results = await asyncio.gather(*(meter(i) for i in range(len(ports))),
                                       return_exceptions=True)
        out.append({"cpu_s": time.process_time() - c0, "wall_s": time.perf_counter() - t0})
        failed += sum(1 if isinstance(r, BaseException) else r for r in results)
        await asyncio.sleep(0.2)
    rest = out[1:]
    requests = len(ports) * len(plan)
    cpu = sum(r["cpu_s"] for r in rest) / len(rest)
    return {"candidate": candidate, "requests_per_cycle": requests, "cpu_s_per_cycle": cpu,
            "cpu_us_per_request": 1e6 * cpu / requests,
            "wall_s_mean": sum(r["wall_s"] for r in rest) / len(rest),
            "first_cycle_s": out[0]["wall_s"], "failed_all_cycles": failed}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--meters", type=int, default=200)
    ap.add_argument("--cycles", type=int, default=20)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--ports", default="", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        ports = [int(p) for p in args.ports.split(",")]
        print(json.dumps(asyncio.run(child(args.child, ports, args.cycles))))
        return 0
    with tempfile.TemporaryDirectory(prefix="dcmeter-mbc-") as tmp:
        site = start_site(Path(tmp), servers=2, switches=0, storage=0,
                          extra_meters=args.meters)
        try:
            # The branch meters only (SDM630s, appended last): the site's own two meters
            # serve other profiles, whose map refuses the SDM630's blocks.
            meters = [r for r in site.ports if r["protocol"] == "modbus"][-args.meters:]
            port_args = ",".join(str(r["port"]) for r in meters)
            rows = []
            for cand in CANDIDATES:
                out = subprocess.run(
                    [sys.executable, __file__, "--child", cand, "--ports", port_args,
                     "--cycles", str(args.cycles)],
                    cwd=ROOT, capture_output=True, text=True, check=True,
                    env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
                rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
                print(json.dumps(rows[-1]), flush=True)
        finally:
            site.stop()
    print(f"{'candidate':10} {'CPU us/request':>15} {'cycle CPU s':>12} {'cycle wall s':>13} "
          f"{'failed':>7}")
    for r in rows:
        print(f"{r['candidate']:10} {r['cpu_us_per_request']:15.1f} {r['cpu_s_per_cycle']:12.4f} "
              f"{r['wall_s_mean']:13.4f} {r['failed_all_cycles']:7d}")
    if args.json:
        args.json.write_text(json.dumps({"benchmark": "modbus_clients", "args": {
            "meters": args.meters, "cycles": args.cycles}, "results": rows}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
