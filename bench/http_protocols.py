"""The collector's HTTP cost per batch: uvicorn's h11 against httptools, asyncio against uvloop.

    .venv/bin/python bench/http_protocols.py [--size 10000] [--batches 100] [--senders 4]
        [--combos guarded-h11/asyncio,httptools/asyncio,guarded-h11/uvloop,httptools/uvloop]
        [--json FILE]

The real collector (`dcmeter.collectors.commands.cli.build`: the FastAPI app, its limits
middleware, the intake with its signature check and decoder) in its own process, with the
store's `insert_batch` replaced by a no-op so what is left is HTTP and the intake. For each
combination of HTTP protocol and event loop, `--senders` processes (bench/ingest.py's
`sender`: one agent each, one keep-alive httpx connection) post bench/ingest.py's workload
(`--size`-sample batches, ~300 KB each at 10,000) in seq order. Prints per batch: the
collector's CPU (process user + system time from psutil, the figure that does not depend on
the machine's sharing), the wall time per batch, and the rate.

`guarded-h11` is the collector's own protocol (collectors/web/http_server.py: uvicorn's h11
with the head deadline and the connection cap); `httptools` is uvicorn's, without them.
httptools and uvloop are imported only when a combination names them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).parent))
from ingest import free_port, machine, sender, workload, write_config

DEFAULT_COMBOS = "guarded-h11/asyncio,httptools/asyncio,guarded-h11/uvloop,httptools/uvloop"


def serve(config: Path, http: str, loop: str) -> None:
    """The collector process: built as `dcmeter collector serve` builds it, store a no-op."""
    from dcmeter.base import log
    from dcmeter.collectors.commands.cli import build

    log.setup(sys.stderr)
    server, store = build(config)
    # Not measured here (bench/ingest.py measures the store): every batch accepted at once.
    store.insert_batch = lambda *a, **k: ("stored", "ok")  # type: ignore[method-assign]
    if http != "guarded-h11":
        server.config.http = http
    server.config.loop = loop
    signal.signal(signal.SIGTERM, lambda signum, frame: None)
    prof = None
    if os.environ.get("DCMETER_BENCH_PROFILE"):  # where the collector's time goes
        import cProfile

        prof = cProfile.Profile()
        prof.enable()
    with asyncio.Runner(loop_factory=server.config.get_loop_factory()) as runner:
        runner.run(server.serve())
    if prof is not None:
        prof.disable()
        prof.dump_stats(os.environ["DCMETER_BENCH_PROFILE"])
    store.close()


def wait_port(port: int, proc: subprocess.Popen[bytes]) -> None:
    """Until the collector accepts connections (30 s at most)."""
    import socket

    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                err = proc.stderr.read().decode()[-2000:] if proc.stderr else ""
                raise SystemExit(f"collector did not start: {err}") from None
            time.sleep(0.05)


def one(combo: str, tmp: Path, keys: dict[str, Any], envs: dict[str, list[bytes]]
        ) -> dict[str, Any]:
    """Post every batch to a collector running `combo`; its CPU and wall per batch."""
    http, loop = combo.split("/")
    folder = tmp / combo.replace("/", "-")
    folder.mkdir()
    port = free_port()
    config = write_config(folder, folder / "unused.sqlite", keys, port)
    proc = subprocess.Popen([sys.executable, __file__, "--serve", str(config), "--http", http,
                             "--loop", loop], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_port(port, proc)
        ps = psutil.Process(proc.pid)
        ctx = mp.get_context("fork")
        start, out = ctx.Barrier(len(envs) + 1), ctx.Queue()
        procs = [ctx.Process(target=sender, args=(f"http://127.0.0.1:{port}", e, start, out))
                 for e in envs.values()]
        for p in procs:
            p.start()
        cpu0 = ps.cpu_times()
        start.wait()
        results = [out.get(timeout=1800) for _ in procs]
        cpu1 = ps.cpu_times()
        for p in procs:
            p.join()
    finally:
        proc.terminate()
        proc.wait(60)
    errors = [r[1] for r in results if r[0] == "error"]
    if errors:
        raise SystemExit(f"{combo}: a batch was refused: {errors[0]}")
    n = sum(len(e) for e in envs.values())
    wall = max(r[1] for r in results) - min(r[0] for r in results)
    cpu = (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)
    return {"combo": combo, "batches": n, "wall_s": round(wall, 3),
            "cpu_ms_per_batch": round(cpu / n * 1e3, 3),
            "wall_ms_per_batch": round(wall / n * 1e3, 3), "batches_per_s": round(n / wall, 1)}


def main() -> None:
    """Parse arguments, run every combination in turn, print the table, write the JSON."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=10_000, help="samples per batch")
    p.add_argument("--batches", type=int, default=100, help="per sender")
    p.add_argument("--senders", type=int, default=4)
    p.add_argument("--combos", default=DEFAULT_COMBOS)
    p.add_argument("--rounds", type=int, default=2, help="each combination this many times")
    p.add_argument("--json", type=Path, default=None)
    p.add_argument("--serve", type=Path, default=None, help=argparse.SUPPRESS)
    p.add_argument("--http", default="guarded-h11", help=argparse.SUPPRESS)
    p.add_argument("--loop", default="asyncio", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.serve is not None:
        serve(args.serve, args.http, args.loop)
        return
    keys, envs = workload(args.size * args.batches * args.senders, args.size, args.senders)
    size_kb = sum(len(r) for e in envs.values() for r in e) / sum(map(len, envs.values())) / 1e3
    rows = []
    with tempfile.TemporaryDirectory(prefix="dcmeter-http-") as tmp_name:
        for r in range(args.rounds):  # interleaved: a burst of load hits every combination
            for combo in args.combos.split(","):
                folder = Path(tmp_name) / f"r{r}"
                folder.mkdir(exist_ok=True)
                row = one(combo, folder, keys, envs)
                row["round"] = r
                rows.append(row)
                print(f"  {combo:<22} CPU {row['cpu_ms_per_batch']:7.2f} ms/batch, wall"
                      f" {row['wall_ms_per_batch']:7.2f} ms/batch", flush=True)
    load = os.getloadavg()
    print(f"{args.size:,}-sample batches, {size_kb:.0f} KB each; load average"
          f" {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    print(f"{'combination':<22}{'CPU ms/batch (best)':>21}{'wall ms/batch (best)':>22}")
    for combo in args.combos.split(","):
        mine = [x for x in rows if x["combo"] == combo]
        print(f"{combo:<22}{min(x['cpu_ms_per_batch'] for x in mine):>21.2f}"
              f"{min(x['wall_ms_per_batch'] for x in mine):>22.2f}")
    if args.json is not None:
        args.json.write_text(json.dumps({"machine": machine(), "load": load, "size": args.size,
                                         "batch_kb": round(size_kb, 1), "rows": rows},
                                        indent=1) + "\n")


if __name__ == "__main__":
    main()
