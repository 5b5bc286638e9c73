"""Can a hostile client starve the collector? Slow connections and huge bodies against delivery.

    .venv/bin/python bench/load_starve.py [--duration 60] [--slow 2000] [--bodies 20]
        [--body-mb 100] [--nofile 65536] [--json FILE]

A real collector (`dcmeter collector serve`, default limits, SQLite store in a temporary
folder, its descriptor limit set to the unit's LimitNOFILE=65536 where the hard limit allows)
listens on 127.0.0.1. For `--duration` seconds, from this process:

  slow     `--slow` connections that each send an unfinished request head and then one more
           header byte every 1-4 s (slow loris); a connection the collector closes is opened
           again at once, so `--slow` are held all the time.
  bodies   `--bodies` clients that each, in a loop, POST /api/v1/windows without a token,
           declaring a `--body-mb` MiB JSON body and sending it as fast as loopback takes it
           (then 0.5 s pause and again).

and from a second process, so that the attack's event loop does not delay them:

  agent    an enrolled agent posting one signed, chained batch (60 samples) a second, timing
           each from the start of the POST to its 200;
  health   GET /api/v1/health every second with a 2 s timeout.

The collector's RSS (VmRSS sampled every 0.2 s, and VmHWM at the end) and open descriptors
are read from /proc; its log (stdout and stderr) size at the end. Loopback only; everything
stops by itself. The client needs `ulimit -n` above `--slow` + 100 (the script raises its
own soft limit to the hard limit).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import random
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from dcmeter.agent import pubkey, wire
from dcmeter.agent.samples import MetricSpec, SourceInfo
from dcmeter.agent.wire import GENESIS, Batch, ClockStatus, MetricEntry

SITE = """
[site]
name = "load test site"
region = "east-2023"

[energy]
total = ["meter-total"]
it = ["meter-it"]
it_point = "it_pdu"
"""
SRC = SourceInfo("meter-total", "modbus", "127.0.0.1:502/1", {"point": "total"})
UNIT_NOFILE = 65536


def free_port() -> int:
    """A loopback TCP port that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def fd_limit(nofile: int) -> Any:
    """For the collector's process: LimitNOFILE=`nofile`, as far as the hard limit allows."""
    def apply() -> None:
        _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        n = nofile if hard == resource.RLIM_INFINITY else min(nofile, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (n, n))
    return apply


# ---- the agent and the health probe (second process) -----------------------------------------


def agent_and_health(url: str, key_pem: bytes, seconds: float, out: Any) -> None:
    """Post one batch a second and probe /health a second, for `seconds`; send the timings."""
    key = serialization.load_pem_private_key(key_pem, None)
    assert isinstance(key, Ed25519PrivateKey)
    health: list[float | None] = []

    def probe() -> None:
        with httpx.Client(timeout=2.0) as http:
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                began = time.monotonic()
                try:
                    ok = http.get(f"{url}/api/v1/health").status_code == 200
                    health.append(time.monotonic() - began if ok else None)
                except httpx.HTTPError:
                    health.append(None)
                time.sleep(max(0.0, 1.0 - (time.monotonic() - began)))

    prober = threading.Thread(target=probe)
    prober.start()
    landed: list[float] = []
    failed: Counter[str] = Counter()
    prev, seq = GENESIS, 1
    with httpx.Client(timeout=30.0) as http:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            began = time.monotonic()
            now = time.time_ns()
            n = 60
            arrays = wire.pack_arrays([now - (n - i) * 10**9 for i in range(n)], [0] * n,
                                      [0] * n, [1000.0 + i for i in range(n)])
            batch = Batch("agent-1", seq, prev, now, ClockStatus(synced=True), [SRC],
                          [MetricEntry(MetricSpec("power_w", "W"))], *arrays)
            body = wire.encode_body(batch)
            raw = wire.envelope(body, key)
            try:
                r = http.post(f"{url}/api/v1/batches", content=raw,
                              headers={"content-type": "application/x-msgpack"})
                if r.status_code == 200 and r.json()["status"] == "stored":
                    landed.append(time.monotonic() - began)
                    prev, seq = wire.batch_hash(body), seq + 1
                else:
                    failed[str(r.status_code)] += 1
            except httpx.HTTPError as exc:
                failed[type(exc).__name__] += 1
            time.sleep(max(0.0, 1.0 - (time.monotonic() - began)))
    prober.join()
    out.send({"landed": landed, "failed": dict(failed), "health": health})


# ---- the attack (this process) ---------------------------------------------------------------


class Attack:
    """Slow-loris connections and huge unauthenticated bodies, with what the collector answered."""

    def __init__(self, port: int, body_mb: int) -> None:
        """Attack 127.0.0.1:`port` with bodies of `body_mb` MiB."""
        self.port = port
        self.body = body_mb * 2**20
        self.opened = 0
        self.cut = 0  # slow connections the collector closed
        self.body_answers: Counter[str] = Counter()
        self.early: Counter[str] = Counter()  # answers before the body was sent
        self.body_sent: list[int] = []  # bytes taken in per attempt before the refusal

    async def slow(self, until: float) -> None:
        """Hold one slow-loris connection until `until`, opening it again when closed."""
        while time.monotonic() < until:
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
            except OSError:
                await asyncio.sleep(0.5)
                continue
            self.opened += 1
            try:
                writer.write(b"POST /api/v1/windows HTTP/1.1\r\nHost: collector\r\n")
                while time.monotonic() < until:
                    await asyncio.sleep(random.uniform(1.0, 4.0))
                    if reader.at_eof():
                        break
                    writer.write(b"X")  # a header that never ends
                    await writer.drain()
                else:
                    return
                self.cut += 1
            except OSError:
                self.cut += 1
            finally:
                writer.close()

    async def big_body(self, until: float) -> None:
        """POST huge unauthenticated bodies in a loop until `until`."""
        chunk = b" " * 2**20
        while time.monotonic() < until:
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
            except OSError:
                await asyncio.sleep(0.5)
                continue
            sent = 0
            try:
                writer.write(f"POST /api/v1/windows HTTP/1.1\r\nHost: collector\r\n"
                             f"Content-Type: application/json\r\n"
                             f"Content-Length: {self.body}\r\n\r\n".encode())
                await writer.drain()
                # The answer, if it comes before a byte of the body (the attack sends it anyway).
                try:
                    early = await asyncio.wait_for(reader.readline(), 0.5)
                    self.early[early.split(b" ")[1].decode() if early else "closed"] += 1
                except (TimeoutError, IndexError):
                    self.early["none"] += 1
                writer.write(b'{"kind": "general", "note": "')
                while sent < self.body - 40 and time.monotonic() < until:
                    writer.write(chunk)
                    await writer.drain()
                    sent += len(chunk)
                    if reader.at_eof():
                        break
                line = await asyncio.wait_for(reader.readline(), 10)
                self.body_answers[line.split(b" ")[1].decode() if line else "closed"] += 1
            except (TimeoutError, OSError, IndexError):
                # Refused and closed mid-body: the answer may still be in the read buffer.
                try:
                    line = await asyncio.wait_for(reader.readline(), 1)
                except (TimeoutError, OSError):
                    line = b""
                got = line.split(b" ")[1].decode() if line.count(b" ") >= 2 else "nothing"
                self.body_answers[f"{got}, then reset"] += 1
            finally:
                self.body_sent.append(sent)
                writer.close()
            await asyncio.sleep(0.5)

    async def run(self, slow: int, bodies: int, seconds: float) -> None:
        """Run `slow` slow connections and `bodies` body senders for `seconds`."""
        until = time.monotonic() + seconds
        tasks = [asyncio.create_task(self.slow(until)) for _ in range(slow)]
        tasks += [asyncio.create_task(self.big_body(until)) for _ in range(bodies)]
        await asyncio.gather(*tasks, return_exceptions=True)


def watch(pid: int, until: float, seen: dict[str, int]) -> None:
    """Sample the collector's RSS (KiB) and open descriptors until `until`; keep the peaks."""
    while time.monotonic() < until:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
            rss = next(int(x.split()[1]) for x in status.splitlines() if x.startswith("VmRSS"))
            seen["rss_kib"] = max(seen.get("rss_kib", 0), rss)
            seen["fds"] = max(seen.get("fds", 0), len(os.listdir(f"/proc/{pid}/fd")))
        except (OSError, StopIteration):
            return
        time.sleep(0.2)


def pct(values: list[float], q: float) -> float:
    """The `q` quantile (0..1) of `values`, nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


def main() -> int:
    """Run the load test and print its figures."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--duration", type=float, default=60.0, help="s of attack (default 60)")
    ap.add_argument("--slow", type=int, default=2000, help="slow connections (default 2000)")
    ap.add_argument("--bodies", type=int, default=20, help="concurrent huge bodies (20)")
    ap.add_argument("--body-mb", type=int, default=100, help="MiB per body (default 100)")
    ap.add_argument("--nofile", type=int, default=UNIT_NOFILE,
                    help="the collector's descriptor limit (default the unit's, 65536)")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args()
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if hard != resource.RLIM_INFINITY and hard < args.slow + 200:
        sys.exit(f"ulimit -n hard limit {hard} is too low for {args.slow} slow connections")

    with tempfile.TemporaryDirectory(prefix="dcmeter-load-") as tmp_:
        tmp = Path(tmp_)
        key = Ed25519PrivateKey.generate()
        port = free_port()
        (tmp / "site.toml").write_text(SITE)
        cfg = tmp / "collector.toml"
        cfg.write_text(
            f'[collector]\nhost = "127.0.0.1"\nport = {port}\nstore = "c.sqlite"\n'
            f'site = "site.toml"\n\n[[agents]]\nid = "agent-1"\n'
            f'public_key = "{pubkey.public_text(key.public_key())}"\n'
        )
        log = tmp / "collector.log"
        with log.open("wb") as out:
            proc = subprocess.Popen([sys.executable, "-m", "dcmeter", "collector", "serve",
                                     "-c", str(cfg)], stdout=out, stderr=subprocess.STDOUT,
                                    preexec_fn=fd_limit(args.nofile))
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 30
            while True:
                if proc.poll() is not None or time.monotonic() > deadline:
                    sys.exit(f"collector did not start:\n{log.read_text()[-2000:]}")
                try:
                    if httpx.get(f"{url}/api/v1/health").status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.1)
            start_rss = Path(f"/proc/{proc.pid}/status").read_text()
            start_kib = next(int(x.split()[1]) for x in start_rss.splitlines()
                             if x.startswith("VmRSS"))
            seen: dict[str, int] = {}
            watcher = threading.Thread(target=watch, args=(
                proc.pid, time.monotonic() + args.duration + 5, seen), daemon=True)
            watcher.start()
            pem = key.private_bytes(serialization.Encoding.PEM,
                                    serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
            mine, theirs = mp.Pipe(duplex=False)
            prober = mp.get_context("spawn").Process(
                target=agent_and_health, args=(url, pem, args.duration, theirs))
            prober.start()
            attack = Attack(port, args.body_mb)
            asyncio.run(attack.run(args.slow, args.bodies, args.duration))
            report = mine.recv() if mine.poll(60) else {"landed": [], "failed": {}, "health": []}
            prober.join(30)
            hwm = next(int(x.split()[1]) for x in
                       Path(f"/proc/{proc.pid}/status").read_text().splitlines()
                       if x.startswith("VmHWM"))
            alive = proc.poll() is None
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    proc.kill()
        log_bytes = log.stat().st_size
        tail = log.read_text()[-1500:]

    landed, health = report["landed"], report["health"]
    answered = [h for h in health if h is not None]
    figures = {
        "duration_s": args.duration,
        "slow_connections": args.slow,
        "slow_opened": attack.opened,
        "slow_cut_by_collector": attack.cut,
        "bodies": args.bodies,
        "body_mib": args.body_mb,
        "body_attempts": sum(attack.body_answers.values()),
        "body_answered_before_body": dict(attack.early),
        "body_outcome": dict(attack.body_answers),
        "body_bytes_taken_max": max(attack.body_sent, default=0),
        "batches_landed": len(landed),
        "batches_failed": report["failed"],
        "landing_max_s": round(max(landed), 3) if landed else None,
        "landing_p99_s": round(pct(landed, 0.99), 3) if landed else None,
        "landing_p50_s": round(pct(landed, 0.50), 3) if landed else None,
        "health_probes": len(health),
        "health_failed": len(health) - len(answered),
        "health_max_s": round(max(answered), 3) if answered else None,
        "rss_start_mib": round(start_kib / 1024, 1),
        "rss_peak_mib": round(max(seen.get("rss_kib", 0), hwm) / 1024, 1),
        "fds_peak": seen.get("fds"),
        "log_bytes": log_bytes,
        "collector_alive": alive,
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }
    for k, v in figures.items():
        print(f"{k:24} {v}")
    if not landed or figures["health_failed"] or not alive:
        print("collector log tail:\n" + tail)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
