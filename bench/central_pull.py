"""A central pulling N simulated sites: wall time, CPU, rows stored, failures, per store engine.

    .venv/bin/python bench/central_pull.py [--sites 100,1000] [--backends sqlite,postgresql]
        [--windows 6] [--rounds 2] [--timeout 30] [--json FILE]

The central is the real one: `dcmeter.collectors.central.central_pull.Puller` with one
`SiteClient` (its own httpx connection pool) per site, pulling into a `CentralStore` on a
SQLite file or on a database of a private PostgreSQL cluster this script starts with
initdb/pg_ctl (bench/store_insert.py private_postgres, default durability) and stops.

The sites are not collectors (1,000 collectors would not fit this machine): one process of
this script (`--serve-sites`) is a small asyncio HTTP/1.1 server (keep-alive) answering, for
site i at the base URL `http://127.0.0.1:PORT/s/i`, the three routes the central pulls with
ready-made bodies: `GET /api/v1/windows` (`--windows` windows: all closed at revision 1 but
the last, open), `GET /api/v1/windows/{id}` (a result of about 4 KB of JSON: the shape of a
collector's, with per-device rows) and `GET /metrics` (the six site gauges the central
keeps, eight samples, among a few lines it drops). A request without the bearer token is 401.

Round 1 pulls everything (every window's result); later rounds only the open window's, as
`dcmeter central pull` does on its schedule. Per round it prints the wall time, the central
process's CPU (user + system, `time.process_time`), the PostgreSQL backend's CPU (its
/proc/PID/stat), the fake sites' CPU (the harness, its own process, /proc), the requests
served, the rows the store then holds (windows + gauges + sites) and the failed sites; and,
once per case, the Puller's set-up (a client per site) before the first round.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from store_insert import private_postgres

from dcmeter.collectors.central.central_config import SiteTarget
from dcmeter.collectors.central.central_pull import Puller
from dcmeter.collectors.central.central_store import CentralStore

TOKEN = "dcm_bench-reader-token"
TICK = os.sysconf("SC_CLK_TCK")


# --- the fake sites (their own process) -----------------------------------------------

def bodies(windows: int) -> dict[str, bytes]:
    """The answers of every site, by route (the same for each site: the central cannot tell)."""
    listed = []
    for w in range(1, windows + 1):
        closed = w < windows
        listed.append({"id": w, "kind": "general" if w % 2 else "infrastructure",
                       "state": "closed" if closed else "open",
                       "start": f"2026-11-01T{w:02d}:00:00Z",
                       "end": f"2026-11-01T{w + 1:02d}:00:00Z" if closed else None,
                       "note": f"window {w}", "revision": 1 if closed else None})
    out = {"/api/v1/windows": json.dumps(listed).encode()}
    for w in listed:
        devices = [{"source": f"pdu-{d:02d}", "kind": "it_pdu", "energy_kwh": 12.5 + d,
                    "mean_w": 12_500.0 + d, "u_kwh": 0.031, "samples": 60, "gaps": 0}
                   for d in range(24)]
        result = {"window": w, "site": "bench site", "pue": 1.42, "u_pue": 0.021,
                  "total_kwh": 812.4, "it_kwh": 572.1, "devices": devices,
                  "revision": {"number": 1} if w["state"] == "closed" else None}
        out[f"/api/v1/windows/{w['id']}"] = json.dumps(result).encode()
    out["/metrics"] = (
        b"# TYPE dcmeter_site_total_power_watts gauge\ndcmeter_site_total_power_watts 812400\n"
        b"# TYPE dcmeter_site_it_power_watts gauge\ndcmeter_site_it_power_watts 572100\n"
        b"# TYPE dcmeter_pue_last_hour gauge\ndcmeter_pue_last_hour 1.42\n"
        b"# TYPE dcmeter_pue_last_hour_valid gauge\ndcmeter_pue_last_hour_valid 1\n"
        b"# TYPE dcmeter_load_last_hour_ratio gauge\n"
        b'dcmeter_load_last_hour_ratio{kind="compute"} 0.61\n'
        b'dcmeter_load_last_hour_ratio{kind="storage"} 0.33\n'
        b"# TYPE dcmeter_windows_open gauge\n"
        b'dcmeter_windows_open{kind="general"} 0\ndcmeter_windows_open{kind="infrastructure"} 1\n'
        b"# TYPE dcmeter_batches_total counter\ndcmeter_batches_total 123456\n"
        b"# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total 42.0\n"
    )
    return out


def response(status: str, body: bytes, ctype: str = "application/json") -> bytes:
    return (f"HTTP/1.1 {status}\r\ncontent-type: {ctype}\r\ncontent-length: {len(body)}\r\n"
            "\r\n").encode() + body


class SiteProtocol(asyncio.Protocol):
    """HTTP/1.1 GETs on keep-alive connections: `/s/<i><route>` answered from `bodies`."""

    served = 0

    def __init__(self, answers: dict[str, bytes]) -> None:
        self.answers = answers
        self.buf = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while b"\r\n\r\n" in self.buf:
            head, self.buf = self.buf.split(b"\r\n\r\n", 1)
            lines = head.decode("latin-1").split("\r\n")
            path = lines[0].split(" ")[1]
            route = "/" + path.split("/", 3)[3] if path.startswith("/s/") else path
            authed = any(x.lower() == f"authorization: bearer {TOKEN}".lower() for x in lines)
            body = self.answers.get(route)
            if not authed:
                out = response("401 Unauthorized", b'{"detail": "token"}')
            elif body is None:
                out = response("404 Not Found", b'{"detail": "no such route"}')
            else:
                ctype = "text/plain; version=0.0.4" if route == "/metrics" else "application/json"
                out = response("200 OK", body, ctype)
            SiteProtocol.served += 1
            self.transport.write(out)  # type: ignore[attr-defined]


def serve_sites(port_file: Path, windows: int) -> None:
    """Serve every fake site on one loopback port; write the port and the served count."""
    answers = bodies(windows)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(lambda: SiteProtocol(answers), "127.0.0.1", 0,
                                          backlog=4096)
        port_file.write_text(str(server.sockets[0].getsockname()[1]))
        while True:  # the parent reads the count between rounds
            await asyncio.sleep(0.05)
            (port_file.parent / "served").write_text(str(SiteProtocol.served))

    asyncio.run(main())


# --- the central's side ---------------------------------------------------------------

def proc_cpu_s(pid: int) -> float:
    """User + system CPU seconds of process `pid` (/proc/PID/stat fields 14 and 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def rows_stored(store: CentralStore, sites: int) -> int:
    """Windows + gauges + site rows the store holds."""
    states = sum(store.site(f"s{i:04d}") is not None for i in range(sites))
    return len(store.windows()) + len(store.gauges()) + states


def served(folder: Path) -> int:
    time.sleep(0.15)  # the server writes its count every 50 ms
    return int((folder / "served").read_text())


def bench_case(location: Path | str, n: int, args: argparse.Namespace, folder: Path,
               port: int, harness_pid: int) -> list[dict[str, Any]]:
    """`args.rounds` pulls of `n` sites into a fresh store at `location`."""
    store = CentralStore(location)
    # The PostgreSQL server process serving the store's connection: its CPU is the engine's.
    conn: Any = store._db
    backend_pid = conn.db.info.backend_pid if store.dialect == "postgresql" else None
    targets = [SiteTarget(f"s{i:04d}", f"http://127.0.0.1:{port}/s/{i}", TOKEN,
                          Path("/nonexistent")) for i in range(n)]
    out = []

    async def rounds() -> None:
        c0, t0 = time.process_time(), time.perf_counter()
        puller = Puller(store, targets, args.timeout)  # a client (pool, TLS context) per site
        setup = {"wall_s": round(time.perf_counter() - t0, 2),
                 "cpu_s": round(time.process_time() - c0, 2)}
        print(f"  {store.dialect} {n} sites: Puller set-up {setup['wall_s']} s wall,"
              f" {setup['cpu_s']} s CPU", flush=True)
        try:
            for r in range(1, args.rounds + 1):
                req0, h0 = served(folder), proc_cpu_s(harness_pid)
                pg0 = proc_cpu_s(backend_pid) if backend_pid else 0.0
                c0, t0 = time.process_time(), time.perf_counter()
                outcomes = await puller.pull_all()
                wall, cpu = time.perf_counter() - t0, time.process_time() - c0
                pg = proc_cpu_s(backend_pid) - pg0 if backend_pid else None
                harness, requests = proc_cpu_s(harness_pid) - h0, served(folder) - req0
                failed = [o for o in outcomes if not o.ok]
                row = {"backend": store.dialect, "sites": n, "round": r, "setup": setup,
                       "wall_s": round(wall, 2), "central_cpu_s": round(cpu, 2),
                       "pg_backend_cpu_s": None if pg is None else round(pg, 2),
                       "harness_cpu_s": round(harness, 2), "requests": requests,
                       "results_pulled": sum(o.fetched for o in outcomes),
                       "rows_stored": rows_stored(store, n), "failed_sites": len(failed),
                       "first_failure": failed[0].error if failed else None}
                print(f"  {row['backend']} {n} sites round {r}: {wall:.2f} s wall, central CPU"
                      f" {cpu:.2f} s, pg backend {row['pg_backend_cpu_s']}, harness"
                      f" {harness:.2f} s, {requests} requests, {row['results_pulled']} results,"
                      f" {row['rows_stored']} rows, {len(failed)} failed", flush=True)
                out.append(row)
        finally:
            await puller.aclose()

    try:
        asyncio.run(rounds())
    finally:
        store.close()
    return out


def machine() -> dict[str, Any]:
    """Cores, CPU model, load, Python, date."""
    lines = Path("/proc/cpuinfo").read_text().splitlines()
    model = next((x.split(":", 1)[1].strip() for x in lines if x.startswith("model name")), "")
    return {"cores": os.cpu_count(), "cpu": model, "load_1m": os.getloadavg()[0],
            "python": platform.python_version(),
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}


def main() -> None:
    """Parse arguments, start the fake sites, run every case, print the table."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sites", default="100,1000", help="site counts, comma-separated")
    p.add_argument("--backends", default="sqlite,postgresql")
    p.add_argument("--windows", type=int, default=6, help="windows per site (the last open)")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--timeout", type=float, default=30.0, help="per request, s")
    p.add_argument("--json", type=Path, default=None, help="write the figures here")
    p.add_argument("--serve-sites", type=Path, default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.serve_sites is not None:
        serve_sites(args.serve_sites, args.windows)
        return
    counts = [int(s) for s in args.sites.split(",")]
    backends = args.backends.split(",")
    if set(backends) - {"sqlite", "postgresql"} or min(counts) < 1 or args.windows < 1:
        raise SystemExit("--backends takes sqlite and/or postgresql; --sites and --windows >= 1")
    # One connection per site on each side: lift the open-files limit to its hard cap.
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    print(f"machine: {machine()}", flush=True)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="dcmeter-central-") as tmp_name:
        tmp = Path(tmp_name)
        port_file = tmp / "port"
        sites = subprocess.Popen([sys.executable, __file__, "--serve-sites", str(port_file),
                                  "--windows", str(args.windows)])
        try:
            deadline = time.monotonic() + 30
            while not (port_file.exists() and port_file.read_text()):
                if time.monotonic() > deadline or sites.poll() is not None:
                    raise SystemExit("the fake sites did not start")
                time.sleep(0.05)
            port = int(port_file.read_text())
            for backend in backends:
                if backend == "sqlite":
                    for n in counts:
                        rows += bench_case(tmp / f"central-{n}.sqlite", n, args, tmp, port,
                                           sites.pid)
                    continue
                import psycopg

                with private_postgres() as admin:
                    for n in counts:
                        with psycopg.connect(admin, autocommit=True) as db:
                            db.execute(f"CREATE DATABASE central_{n}")
                        rows += bench_case(admin.rsplit("/", 1)[0] + f"/central_{n}", n, args,
                                           tmp, port, sites.pid)
        finally:
            sites.terminate()
            sites.wait(10)
    head = ("backend", "sites", "round", "wall s", "central CPU s", "pg CPU s", "harness CPU s",
            "requests", "rows", "failed")
    print(" | ".join(head))
    for r in rows:
        print(" | ".join(str(r[k]) for k in (
            "backend", "sites", "round", "wall_s", "central_cpu_s", "pg_backend_cpu_s",
            "harness_cpu_s", "requests", "rows_stored", "failed_sites")))
    if args.json is not None:
        args.json.write_text(json.dumps({"machine": machine(), "windows": args.windows,
                                         "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
