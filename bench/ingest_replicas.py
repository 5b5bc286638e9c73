"""Ingest per replica count: 1, 2 and 3 collectors on one PostgreSQL behind HAProxy.

    .venv/bin/python bench/ingest_replicas.py [--samples 400000] [--size 10000]
        [--senders 4] [--replicas 1,2,3] [--rounds 2] [--steady] [--no-window] [--json FILE]

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
`--rounds`: the whole sequence is run this many times, interleaved (a burst of load from
elsewhere on a shared machine then hits every count); the best round of each is printed.
A general window is open from before the first sample (opened in the store before the
replicas start), so every `cpu_util_pct` sample (one in ten) is folded and every replica
keeps the folds current (`--no-window`: none).
`--steady`: before the clock starts, each agent's batch i is posted straight to replica i
(the first creates the agent's series: 10,000 at 10,000-sample batches; each replica then
has seen every agent's layout once: its series ids, owners and folded positions are in its
memory, as after the first minutes of a long run), so the rate is that of later ticks.

Each replica runs with timers on the store (`--serve`, this script's own collector
process: `cmd_serve`'s build, then `Store.insert_batch` and, where the store has them, its
catch-up reads after another replica's write, timed): each row says the ms per batch a
replica spent inside insert_batch, and of that in catching up.

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
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx

from dcmeter.collectors.storage.store import Store

sys.path.insert(0, str(Path(__file__).parent))
from ingest import T0, free_port, machine, new_database, sender, workload, write_config
from store_insert import private_postgres

# What the timers wrap: the store's entry point and its catch-up reads (store.py `_synced`:
# series keys, owners, folds). Absent names are skipped (the store may change).
CATCH_UP = ("_table.catch_up", "_owners.load", "_load_folds", "_folds.catch_up")


def timed_serve(config: Path, timings: Path) -> None:
    """A collector as `dcmeter collector serve` runs it, its store timed; every wrapped
    call's (label, monotonic start, seconds) written to `timings` at exit."""
    import asyncio
    import signal
    from functools import reduce

    from dcmeter.base import log
    from dcmeter.collectors.commands.cli import build, serve_notifying

    log.setup(sys.stdout)  # stderr is a pipe the parent reads only if start-up fails
    server, store = build(config)
    # (label, start, seconds) of each call; start on the system's monotonic clock, which the
    # parent reads too, so it keeps only the calls of the timed part.
    calls: list[tuple[str, float, float]] = []

    def wrap(owner: Any, name: str, label: str) -> None:
        inner = getattr(owner, name)

        def timed(*a: Any, **k: Any) -> Any:
            t = time.monotonic()
            try:
                return inner(*a, **k)
            finally:
                calls.append((label, t, time.monotonic() - t))
        setattr(owner, name, timed)

    wrap(store, "insert_batch", "insert_batch")
    for path in CATCH_UP:
        *parents, name = path.split(".")
        try:
            owner = reduce(getattr, parents, store)
            getattr(owner, name)
        except AttributeError:
            continue
        wrap(owner, name, path)
    signal.signal(signal.SIGTERM, lambda signum, frame: None)
    try:
        with asyncio.Runner(loop_factory=server.config.get_loop_factory()) as runner:
            runner.run(serve_notifying(server))
    finally:
        store.close()
        timings.write_text(json.dumps(calls))


@contextmanager
def collector(config: Path, port: int, timings: Path) -> Iterator[None]:
    """This script's timed collector process until the block ends (bench/ingest.py's)."""
    proc = subprocess.Popen([sys.executable, __file__, "--serve", str(config), "--timings",
                             str(timings)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_healthy(f"http://127.0.0.1:{port}", proc=proc)
        yield
    finally:
        proc.terminate()
        proc.wait(60)


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


def wait_healthy(url: str, timeout_s: float = 60,
                 proc: subprocess.Popen[bytes] | None = None) -> None:
    """Until `url`/api/v1/health answers 200 (or `proc` ends: its stderr is shown)."""
    deadline = time.monotonic() + timeout_s
    while True:
        if proc is not None and proc.poll() is not None:
            err = proc.stderr.read().decode()[-2000:] if proc.stderr else ""
            raise SystemExit(f"collector did not start: {err}")
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
         envs: dict[str, list[bytes]], steady: bool, round_: int,
         window: bool = True) -> dict[str, Any]:
    """`n` replicas on a new database (behind HAProxy unless `direct`), a general window
    open on it from before the first sample unless not `window`; the rate."""
    tag = f"r{n}{'d' if direct else ''}_{round_}"
    store = new_database(admin_url, f"replicas_{tag}")
    if window:  # opened in the store before the replicas start: each loads it at start
        opener = Store(store)
        opener.open_window("general", T0 * 10**9, "benchmark", T0 * 10**9)
        opener.close()
    ports = [free_port() for _ in range(n)]
    with ExitStack() as running:
        for i, port in enumerate(ports):  # one after another: the first migrates the store
            folder = tmp / f"{tag}-c{i}"
            folder.mkdir()
            running.enter_context(collector(write_config(folder, store, keys, port), port,
                                            folder / "timings.json"))
        url = f"http://127.0.0.1:{ports[0]}"
        if not direct:
            lb_port = free_port()
            cfg = tmp / f"{tag}-haproxy.cfg"
            cfg.write_text(haproxy_cfg(lb_port, ports))
            lb = subprocess.Popen(["haproxy", "-db", "-f", str(cfg)], stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
            running.callback(lb.wait, 30)
            running.callback(lb.terminate)
            url = f"http://127.0.0.1:{lb_port}"
            wait_healthy(url)
        if steady:  # before the clock: batch i of every agent straight to replica i
            for i, port in enumerate(ports):
                with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120) as client:
                    for e in envs.values():
                        r = client.post("/api/v1/batches", content=e[i],
                                        headers={"content-type": "application/x-msgpack"})
                        if r.status_code != 200:
                            raise SystemExit(f"warm-up refused: {r.status_code} {r.text}")
            envs = {a: e[len(ports):] for a, e in envs.items()}
        begin = time.monotonic()
        seconds = post_all(url, envs)
        spread = [httpx.get(f"http://127.0.0.1:{p}/api/v1/health", timeout=30).json()["batches"]
                  for p in ports]
    calls = [c for i in range(n)
             for c in json.loads((tmp / f"{tag}-c{i}" / "timings.json").read_text())
             if c[1] >= begin]
    batches = sum(1 for c in calls if c[0] == "insert_batch")
    store_ms = {label: round(sum(c[2] for c in calls if c[0] == label) / batches * 1e3, 2)
                for label in ("insert_batch", *CATCH_UP)}
    samples = sum(len(e) for e in envs.values()) * len_of(envs)
    return {"replicas": n, "balancer": not direct, "samples": samples,
            "seconds": round(seconds, 3), "samples_per_s": round(samples / seconds),
            "batches_per_replica": spread, "store_ms_per_batch": store_ms}


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
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--serve", type=Path, default=None, help=argparse.SUPPRESS)
    p.add_argument("--timings", type=Path, default=None, help=argparse.SUPPRESS)
    p.add_argument("--steady", action="store_true",
                   help="post each agent's first batch before the clock starts")
    p.add_argument("--no-window", action="store_true",
                   help="no general window open: the folds do nothing")
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args()
    if args.serve is not None:
        timed_serve(args.serve, args.timings)
        return
    if shutil.which("haproxy") is None:
        raise SystemExit("haproxy not found: apt-get install haproxy")
    keys, envs = workload(args.samples, args.size, args.senders)
    counts = [int(x) for x in args.replicas.split(",")]
    rows = []
    with tempfile.TemporaryDirectory(prefix="dcmeter-replicas-") as tmp_name, \
            private_postgres() as admin_url:
        tmp = Path(tmp_name)
        os.chmod(tmp, 0o755)
        for round_ in range(args.rounds):
            for n, direct in [(1, True)] + [(n, False) for n in counts]:
                row = case(n, direct, admin_url, tmp, keys, envs, args.steady, round_,
                           not args.no_window)
                row["round"] = round_
                row["load"] = [round(x, 2) for x in os.getloadavg()]
                rows.append(row)
                print(f"  {n} replica(s){' direct' if direct else ' via haproxy'}:"
                      f" {row['samples_per_s']:,} samples/s, batches per replica"
                      f" {row['batches_per_replica']}, store ms/batch"
                      f" {row['store_ms_per_batch']}, load {row['load'][0]}", flush=True)
    print(f"best of {args.rounds} rounds")
    print(f"{'replicas':<16}{'samples':>9}{'seconds':>9}{'samples/s':>11}{'insert ms':>11}"
          f"{'catch-up ms':>13}  batches each")
    best: dict[tuple[int, bool], dict[str, Any]] = {}
    for r in rows:
        key = (r["replicas"], r["balancer"])
        if key not in best or r["samples_per_s"] > best[key]["samples_per_s"]:
            best[key] = r
    for r in best.values():
        name = f"{r['replicas']} {'via haproxy' if r['balancer'] else 'direct'}"
        ms = r["store_ms_per_batch"]
        print(f"{name:<16}{r['samples']:>9,}{r['seconds']:>9.2f}{r['samples_per_s']:>11,}"
              f"{ms['insert_batch']:>11.1f}{sum(ms[c] for c in CATCH_UP):>13.1f}"
              f"  {r['batches_per_replica']}")
    print("insert ms: per batch inside Store.insert_batch (every replica's calls of the timed"
          " part); catch-up ms: of that, re-reading series keys, owners and folds after"
          " another replica's write")
    if args.json is not None:
        args.json.write_text(json.dumps({"machine": machine(), "senders": args.senders,
                                         "size": args.size, "steady": args.steady,
                                         "window": not args.no_window,
                                         "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
