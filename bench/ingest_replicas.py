"""Ingest per replica count: 1, 2 and 3 collectors on one PostgreSQL behind HAProxy.

    .venv/bin/python bench/ingest_replicas.py [--samples 400000] [--size 10000]
        [--senders 4] [--replicas 1,2,3] [--json FILE]

In one run, on one private PostgreSQL cluster (bench/store_insert.py's `private_postgres`:
initdb/pg_ctl, default durability), for each replica count a new database and that many
`dcmeter collector serve` processes on it (bench/ingest.py's `collector`: the real
`cmd_serve`, each with its own config naming the same store and the same enrolled agents),
started one after another (the first migrates the store), behind one HAProxy (round robin
per request, health-checked on /api/v1/health, as tests/test_replicas_pg.py runs them).
bench/ingest.py's senders (`--senders` processes, one agent each, its pre-signed batches
posted in seq order over one keep-alive connection) post the same workload through the
balancer; the rate is samples over the time from the first post to the last `200 stored`.
A first row posts to one collector directly (no balancer): the balancer's own cost.

Each replica's /api/v1/health counts (from its memory) say how many batches it stored:
the balancer's spread. Needs haproxy (Debian: apt-get install haproxy).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import shutil
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).parent))
from ingest import collector, free_port, machine, new_database, sender, workload, write_config
from store_insert import private_postgres


def haproxy_cfg(port: int, replicas: list[int]) -> str:
    """Round robin over the replicas, health-checked (tests/test_replicas_pg.py's)."""
    servers = "".join(f"    server c{i} 127.0.0.1:{p} check\n" for i, p in enumerate(replicas))
    return (
        "global\n    maxconn 512\n"
        "defaults\n    mode http\n    timeout connect 2s\n    timeout client 120s\n"
        "    timeout server 120s\n    retries 2\n    option redispatch\n"
        "frontend f\n    bind 127.0.0.1:" + str(port) + "\n    default_backend c\n"
        "backend c\n    balance roundrobin\n    option httpchk GET /api/v1/health\n"
        "    default-server inter 300ms fall 2 rise 2\n" + servers
    )


def wait_healthy(url: str, timeout_s: float = 60) -> None:
    """Until `url`/api/v1/health answers 200."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if httpx.get(f"{url}/api/v1/health", timeout=5).is_success:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise SystemExit(f"{url} not healthy within {timeout_s:g} s")
        time.sleep(0.2)


def post_all(url: str, envs: dict[str, list[bytes]]) -> float:
    """Every agent's batches posted concurrently to `url`; seconds from the first post to
    the last answer (bench/ingest.py's senders)."""
    ctx = mp.get_context("fork")
    start, out = ctx.Barrier(len(envs) + 1), ctx.Queue()
    procs = [ctx.Process(target=sender, args=(url, e, start, out)) for e in envs.values()]
    for p in procs:
        p.start()
    start.wait()
    results = [out.get(timeout=3600) for _ in procs]
    for p in procs:
        p.join()
    errors = [r[1] for r in results if r[0] == "error"]
    if errors:
        raise SystemExit(f"a batch was refused: {errors[0]}")
    return float(max(r[1] for r in results) - min(r[0] for r in results))


def case(n: int, direct: bool, admin_url: str, tmp: Path, keys: dict[str, Any],
         envs: dict[str, list[bytes]]) -> dict[str, Any]:
    """`n` replicas on a new database (behind HAProxy unless `direct`); the rate."""
    tag = f"r{n}{'d' if direct else ''}"
    store = new_database(admin_url, f"replicas_{tag}")
    ports = [free_port() for _ in range(n)]
    with ExitStack() as running:
        for i, port in enumerate(ports):  # one after another: the first migrates the store
            folder = tmp / f"{tag}-c{i}"
            folder.mkdir()
            running.enter_context(collector(write_config(folder, store, keys, port), port))
            wait_healthy(f"http://127.0.0.1:{port}")
        url = f"http://127.0.0.1:{ports[0]}"
        if not direct:
            lb_port = free_port()
            cfg = tmp / f"{tag}-haproxy.cfg"
            cfg.write_text(haproxy_cfg(lb_port, ports))
            lb = subprocess.Popen(["haproxy", "-db", "-f", str(cfg)], stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
            running.callback(lambda: (lb.terminate(), lb.wait(30)))
            url = f"http://127.0.0.1:{lb_port}"
            wait_healthy(url)
        seconds = post_all(url, envs)
        spread = [httpx.get(f"http://127.0.0.1:{p}/api/v1/health", timeout=30).json()["batches"]
                  for p in ports]
    samples = sum(len(e) for e in envs.values()) * len_of(envs)
    return {"replicas": n, "balancer": not direct, "samples": samples,
            "seconds": round(seconds, 3), "samples_per_s": round(samples / seconds),
            "batches_per_replica": spread}


def len_of(envs: dict[str, list[bytes]]) -> int:
    """Samples in one batch of the workload (all batches are the same size)."""
    from dcmeter.agent import wire

    raw = next(iter(envs.values()))[0]
    return len(wire.decode_body(wire.open_envelope(raw)[0]))


def main() -> None:
    """Parse arguments, run every replica count on one server, print and write the figures."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--samples", type=int, default=400_000, help="per case")
    p.add_argument("--size", type=int, default=10_000, help="samples per batch")
    p.add_argument("--senders", type=int, default=4, help="concurrent agents (processes)")
    p.add_argument("--replicas", default="1,2,3")
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args()
    if shutil.which("haproxy") is None:
        raise SystemExit("haproxy not found: apt-get install haproxy")
    keys, envs = workload(args.samples, args.size, args.senders)
    counts = [int(x) for x in args.replicas.split(",")]
    rows = []
    loads = []
    with tempfile.TemporaryDirectory(prefix="dcmeter-replicas-") as tmp_name, \
            private_postgres() as admin_url:
        tmp = Path(tmp_name)
        os.chmod(tmp, 0o755)
        for n, direct in [(1, True)] + [(n, False) for n in counts]:
            row = case(n, direct, admin_url, tmp, keys, envs)
            row["load"] = [round(x, 2) for x in os.getloadavg()]
            loads.append(row["load"])
            rows.append(row)
            print(f"  {n} replica(s){' direct' if direct else ' via haproxy'}:"
                  f" {row['samples_per_s']:,} samples/s, batches per replica"
                  f" {row['batches_per_replica']}, load {row['load'][0]}", flush=True)
    print(f"{'replicas':<22}{'samples':>10}{'seconds':>10}{'samples/s':>12}  batches each")
    for r in rows:
        name = f"{r['replicas']} {'via haproxy' if r['balancer'] else 'direct'}"
        print(f"{name:<22}{r['samples']:>10,}{r['seconds']:>10.2f}{r['samples_per_s']:>12,}"
              f"  {r['batches_per_replica']}")
    if args.json is not None:
        args.json.write_text(json.dumps({"machine": machine(), "senders": args.senders,
                                         "size": args.size, "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
