"""Collector ingest rate, end to end, against the raw insert rates of the same store.

    .venv/bin/python bench/ingest.py [--samples 1000000] [--sizes 1000,10000] [--senders 4]
        [--backends sqlite,postgresql] [--no-window] [--profile FILE] [--json FILE]

For each backend (a SQLite file; PostgreSQL on a private cluster this script starts with
initdb/pg_ctl and stops, default durability) and each batch size, in one run:

  raw_rows    the old layout's ceiling (one row per sample, before schema 13): the same
              samples as (series, ts, value, seq) rows appended straight into a `samples`
              table with its (series, ts) index, one transaction per batch: `executemany` on
              SQLite, binary `COPY` on PostgreSQL; the rows are built before the clock starts.
  raw_blocks  the store's layout written straight: per batch, one transaction inserting its
              `batches` row (with its raw envelope) and its `sample_blocks` row (the three
              columns as bytes), built before the clock starts.
  store       `Store.insert_batch` on the decoded batches, no HTTP, no signature.
  e2e         a real collector: `dcmeter collector serve`
              (dcmeter.collectors.commands.cli.cmd_serve) in its own process on a loopback
              socket, and `--senders` sender processes, each one agent posting its
              pre-signed batches in seq order over one keep-alive connection of
              http.client (`--client httpx`: an httpx client, as before issue 20's end).
              The harness's cost is measured beside it: the senders' own CPU seconds and
              the collector process's (psutil), and from the latter the collector's
              capacity, samples per CPU second of its process: the rate it would reach with
              a core to itself (a figure the 2 shared cores' wall clock cannot give).

A batch is one poll of `size / 10` targets × 10 metrics by one agent (1,000 samples: 100
targets; 10,000: 1,000 targets), ticks 60 s apart; one metric of the ten is the host's
`cpu_util_pct` gauge. Unless `--no-window`, a general window is open (from before the first
batch) in the store and e2e cases, so every batch moves its gauge folds: the folds' cost is
in those figures. `--warm N`: each agent's first N batches are posted before e2e's clock
starts (its 10,000 new series made, its layout seen: the steady rate of agents already
known), and e2e counts only the samples posted after. Prints samples/s for each and the
ratio e2e / raw for both ceilings;
`--profile FILE` also runs the SQLite e2e case of the largest size once more under cProfile
in the collector process and prints where its time went.
"""

from __future__ import annotations

import argparse
import cProfile
import http.client
import io
import json
import multiprocessing as mp
import os
import platform
import pstats
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import psutil
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from dcmeter.agent import pubkey, wire
from dcmeter.agent.samples import MetricSpec, SourceInfo
from dcmeter.agent.wire import GENESIS, Batch, ClockStatus, MetricEntry
from dcmeter.collectors.storage.db import SqliteConnection, connect
from dcmeter.collectors.storage.sample_blocks import INSERT_BLOCK
from dcmeter.collectors.storage.store import Store

sys.path.insert(0, str(Path(__file__).parent))
from store_insert import private_postgres

T0 = 1_793_491_200  # 2026-11-01T00:00:00Z
METRICS = 10
# The metrics of every target: the host's CPU utilisation (folded by an open general
# window) and nine power readings.
SPECS = [MetricSpec("cpu_util_pct", "%"), *(MetricSpec(f"m{m}_w", "W") for m in range(1, 10))]
# The old layout's table (schema versions 1–12), for the raw_rows ceiling.
OLD_SAMPLES = """
CREATE TABLE IF NOT EXISTS samples (
    series INTEGER NOT NULL, ts INTEGER NOT NULL, value REAL NOT NULL, seq INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS samples_series_ts ON samples(series, ts);
"""
SITE_TOML = """
[site]
name = "bench"
region = "east-2023"

[energy]
total = ["meter-total"]
it = ["meter-it"]
it_point = "it_pdu"
"""


def machine() -> dict[str, Any]:
    """Cores, CPU model, memory, Python, date."""
    lines = Path("/proc/cpuinfo").read_text().splitlines()
    model = next((x.split(":", 1)[1].strip() for x in lines if x.startswith("model name")), "")
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {"cores": os.cpu_count(), "cpu": model, "memory_gib": round(mem, 1),
            "python": platform.python_version(),
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}


def agent_batches(agent: str, key: Ed25519PrivateKey, n: int, size: int) -> list[bytes]:
    """`n` sealed, hash-chained batches of `size` samples: one tick of size/10 targets."""
    targets = size // METRICS
    sources = [SourceInfo(f"{agent}-t{t:04d}", "ipmi", f"10.0.{t // 250}.{t % 250}",
                          {"kind": "compute", "rack": f"r{t // 40}"}, None)
               for t in range(targets)]
    metrics = [MetricEntry(spec) for spec in SPECS]
    src = [s for s in range(targets) for _ in range(METRICS)]
    met = [m for _ in range(targets) for m in range(METRICS)]
    out, prev = [], GENESIS
    for i in range(n):
        ts = (T0 + 60 * i) * 10**9
        val = [(100.0 + s if m else 20.0 + s % 60) + m / 10 + i % 7
               for s, m in zip(src, met, strict=True)]
        arrays = wire.pack_arrays([ts + s * 1000 for s in src], src, met, val)
        b = Batch(agent, i + 1, prev, ts + 5 * 10**9, ClockStatus(True, 0.001), sources,
                  metrics, *arrays)
        body = wire.encode_body(b)
        out.append(wire.envelope(body, key))
        prev = wire.batch_hash(body)
    return out


def workload(samples: int, size: int, senders: int) -> tuple[dict[str, Ed25519PrivateKey],
                                                           dict[str, list[bytes]]]:
    """Agents (one per sender) and their sealed batches, `samples` in all (rounded up)."""
    per = max(1, -(-samples // (size * senders)))
    agent_keys = {f"agent-{a}": Ed25519PrivateKey.generate() for a in range(senders)}
    return agent_keys, {a: agent_batches(a, k, per, size) for a, k in agent_keys.items()}


def decoded(envs: dict[str, list[bytes]]) -> list[tuple[Batch, bytes, bytes]]:
    """(batch, hash, raw) of every envelope, agents interleaved as they would arrive."""
    out = []
    for group in zip(*envs.values(), strict=True):
        for raw in group:
            body, _ = wire.open_envelope(raw)
            out.append((wire.decode_body(body), wire.batch_hash(body), raw))
    return out


# --- (a) raw bulk inserts: the old layout's rows, the new layout's blocks --------------

def raw_rows(todo: list[tuple[Batch, bytes, bytes]]) -> list[list[tuple[int, int, float, int]]]:
    """The `samples` rows of each batch, series ids as the store would number them."""
    ids: dict[tuple[str, int, int], int] = {}
    out = []
    for b, _, _ in todo:
        rows = []
        for ts, s, m, v in zip(b.ts, b.src, b.met, b.val, strict=True):
            sid = ids.setdefault((b.agent, s, m), len(ids) + 1)
            rows.append((sid, ts, v, b.seq))
        out.append(rows)
    return out


def rows_sqlite(path: Path, batches: list[list[tuple[int, int, float, int]]]) -> float:
    """Append the rows to the old `samples` table with executemany, one transaction per
    batch, with the store's own connection settings (collectors/storage/db.py: WAL,
    synchronous=NORMAL, …); seconds."""
    conn = SqliteConnection(path)  # the store's own connection settings
    conn.ddl(OLD_SAMPLES)
    db = conn.db
    t = time.perf_counter()
    for rows in batches:
        db.execute("BEGIN IMMEDIATE")
        db.executemany("INSERT INTO samples VALUES (?,?,?,?)", rows)
        db.execute("COMMIT")
    spent = time.perf_counter() - t
    db.close()
    return spent


def rows_postgresql(url: str, batches: list[list[tuple[int, int, float, int]]]) -> float:
    """Binary COPY of the rows into the old `samples` table, one transaction per batch;
    seconds."""
    import psycopg

    with psycopg.connect(url) as db:
        for stmt in OLD_SAMPLES.replace("INTEGER", "BIGINT").replace(
                "REAL", "DOUBLE PRECISION").split(";"):
            if stmt.strip():
                db.execute(stmt)
        db.commit()
        t = time.perf_counter()
        for rows in batches:
            with db.cursor() as cur, cur.copy(
                "COPY samples (series, ts, value, seq) FROM STDIN (FORMAT BINARY)"
            ) as copy:
                copy.set_types(["int8", "int8", "float8", "int8"])
                for row in rows:
                    copy.write_row(row)
            db.commit()
        return time.perf_counter() - t


def block_params(todo: list[tuple[Batch, bytes, bytes]]) -> list[tuple[tuple[Any, ...], ...]]:
    """Each batch's `batches` row and `sample_blocks` row, as insert_batch writes them."""
    ids: dict[tuple[str, int, int], int] = {}
    out = []
    for b, digest, raw in todo:
        sids = np.array([ids.setdefault((b.agent, s, m), len(ids) + 1)
                         for s, m in zip(b.src, b.met, strict=True)], dtype="<i8")
        lo, hi = min(b.ts), max(b.ts)
        out.append((
            (b.agent, b.seq, digest, b.prev, b.sealed_ns, b.sealed_ns, len(b), "ok", 1,
             b.clock.max_error_s, raw, None, lo, hi),
            (b.agent, b.seq, lo, hi, len(b), sids.tobytes(), b.ts.tobytes(), b.val.tobytes()),
        ))
    return out


BATCH_ROW = ("INSERT INTO batches(agent, seq, hash, prev, sealed_ns, received_ns, samples,"
             " chain, clock_synced, clock_max_error_s, raw, clock_stepped_s, min_ts, max_ts)"
             " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)")


def raw_blocks(location: Path | str, params: list[tuple[tuple[Any, ...], ...]]) -> float:
    """Write each batch's row and block straight into a new store of this schema, one
    transaction per batch, through the store's own connection; seconds."""
    Store(location).close()  # the schema and its indexes
    conn = connect(location)
    t = time.perf_counter()
    for batch_row, block_row in params:
        with conn.transaction():
            conn.execute(BATCH_ROW, batch_row)
            conn.execute(INSERT_BLOCK, block_row)
    spent = time.perf_counter() - t
    conn.close()
    return spent


# --- (b) Store.insert_batch ------------------------------------------------------------

def new_store(location: Path | str, window: bool) -> Store:
    """A new store at `location`, a general window open from before the first batch."""
    store = Store(location)
    if window:
        store.open_window("general", T0 * 10**9, "benchmark", T0 * 10**9)
    return store


def store_direct(location: Path | str, todo: list[tuple[Batch, bytes, bytes]],
                 window: bool) -> float:
    """insert_batch every decoded batch into a new store; seconds."""
    store = new_store(location, window)
    t = time.perf_counter()
    for b, digest, raw in todo:
        state, _ = store.insert_batch(b, digest, raw, b.sealed_ns)
        assert state == "stored", state
    spent = time.perf_counter() - t
    store.close()
    return spent


# --- (c) end to end --------------------------------------------------------------------

def free_port() -> int:
    """A loopback TCP port that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_config(folder: Path, store: Path | str, agent_keys: dict[str, Ed25519PrivateKey],
                 port: int) -> Path:
    """A collector.toml (auth on, loopback) enrolling the agents, and its site file."""
    (folder / "site.toml").write_text(SITE_TOML)
    store_text = str(store)
    lines = ["[collector]", 'host = "127.0.0.1"', f"port = {port}", f'store = "{store_text}"',
             'site = "site.toml"', "max_batch_mb = 64", ""]
    for agent, key in agent_keys.items():
        lines += ["[[agents]]", f'id = "{agent}"',
                  f'public_key = "{pubkey.public_text(key.public_key())}"', ""]
    path = folder / "collector.toml"
    path.write_text("\n".join(lines))
    return path


@contextmanager
def collector(config: Path, port: int,
              profile: Path | None = None) -> Iterator[subprocess.Popen[bytes]]:
    """Run `dcmeter collector serve` (under cProfile with `profile`) until the block ends."""
    cmd = [sys.executable, __file__, "--serve", str(config)]
    if profile is not None:
        cmd += ["--profile", str(profile)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise SystemExit(f"collector did not start: {proc.stderr.read().decode()[-2000:]}"
                                 if proc.stderr else "collector did not start") from None
            time.sleep(0.05)
    try:
        yield proc
    finally:
        proc.terminate()
        proc.wait(60)


def sender(url: str, envs: list[bytes], start: Any, out: Any, client: str = "light",
           warm: int = 0) -> None:
    """Post one agent's batches in order over one keep-alive connection; report the times
    and this process's CPU seconds while posting (the harness's own cost). The first `warm`
    batches go before the clock starts (`--warm`: the agent's series made, its layout seen)."""
    headers = {"content-type": "application/x-msgpack"}
    warmed, envs = envs[:warm], envs[warm:]
    if client == "httpx":
        with httpx.Client(base_url=url, timeout=120) as hx:
            hx.get("/openapi.json")  # open the keep-alive connection before the clock
            for raw in warmed:
                hx.post("/api/v1/batches", content=raw, headers=headers).raise_for_status()
            start.wait()
            t0, c0 = time.perf_counter(), time.process_time()
            for raw in envs:
                r = hx.post("/api/v1/batches", content=raw, headers=headers)
                if r.status_code != 200 or r.json()["status"] != "stored":
                    out.put(("error", f"{r.status_code} {r.text[:200]}"))
                    return
            out.put((t0, time.perf_counter(), time.process_time() - c0))
        return
    host, _, port = url.removeprefix("http://").partition(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=120)
    conn.request("GET", "/openapi.json")
    conn.getresponse().read()
    for raw in warmed:
        conn.request("POST", "/api/v1/batches", body=raw, headers=headers)
        conn.getresponse().read()
    start.wait()
    t0, c0 = time.perf_counter(), time.process_time()
    for raw in envs:
        conn.request("POST", "/api/v1/batches", body=raw, headers=headers)
        resp = conn.getresponse()
        body = resp.read()
        if resp.status != 200 or b'"stored"' not in body:
            out.put(("error", f"{resp.status} {body[:200]!r}"))
            return
    out.put((t0, time.perf_counter(), time.process_time() - c0))
    conn.close()


def end_to_end(folder: Path, store: Path | str, agent_keys: dict[str, Ed25519PrivateKey],
               envs: dict[str, list[bytes]], window: bool, profile: Path | None = None,
               client: str = "light", warm: int = 0) -> tuple[float, float, float]:
    """Post every agent's batches concurrently to a new collector: seconds from the first
    post to the last answer, the collector process's CPU seconds meanwhile, and the
    senders' CPU seconds together."""
    new_store(store, window).close()
    port = free_port()
    config = write_config(folder, store, agent_keys, port)
    ctx = mp.get_context("fork")
    start, out = ctx.Barrier(len(envs) + 1), ctx.Queue()
    with collector(config, port, profile) as proc:
        procs = [ctx.Process(target=sender,
                             args=(f"http://127.0.0.1:{port}", e, start, out, client, warm))
                 for e in envs.values()]
        for p in procs:
            p.start()
        served = psutil.Process(proc.pid)
        start.wait()  # every sender warmed and connected: the clock starts
        before = served.cpu_times()
        results = [out.get(timeout=3600) for _ in procs]
        after = served.cpu_times()
        for p in procs:
            p.join()
    errors = [r[1] for r in results if r[0] == "error"]
    if errors:
        raise SystemExit(f"a batch was refused: {errors[0]}")
    cpu = (after.user + after.system) - (before.user + before.system)
    return (max(r[1] for r in results) - min(r[0] for r in results), cpu,
            sum(r[2] for r in results))


def serve(config: Path, profile: Path | None) -> None:
    """The collector process: `dcmeter collector serve CONFIG`, optionally profiled."""
    from dcmeter.collectors.commands.cli import cmd_serve

    if profile is None:
        cmd_serve(config)
        return
    prof = cProfile.Profile()
    prof.enable()
    try:
        cmd_serve(config)
    finally:
        prof.disable()
        prof.dump_stats(profile)


# --- the run ---------------------------------------------------------------------------

def new_database(admin_url: str, name: str) -> str:
    """Create database `name` on the private server; its URL."""
    import psycopg

    with psycopg.connect(admin_url, autocommit=True) as db:
        db.execute(f"CREATE DATABASE {name}")
    return admin_url.rsplit("/", 1)[0] + "/" + name


def bench_backend(backend: str, sizes: list[int], args: argparse.Namespace, tmp: Path,
                  pg_url: str | None) -> list[dict[str, Any]]:
    """Raw, store and e2e rates of one backend for each batch size."""
    rows, window = [], not args.no_window
    for size in sizes:
        agent_keys, envs = workload(args.samples, size, args.senders)
        todo = decoded(envs)
        n = sum(len(b) for b, _, _ in todo)

        def location(tag: str, size: int = size) -> Path | str:
            if backend == "sqlite":
                return tmp / f"{tag}-{size}.sqlite"
            assert pg_url is not None
            return new_database(pg_url, f"{tag}_{size}")

        rows_raw = raw_rows(todo)
        rows_s = (rows_sqlite(location("rows"), rows_raw)  # type: ignore[arg-type]
                  if backend == "sqlite" else rows_postgresql(str(location("rows")), rows_raw))
        del rows_raw
        blocks_s = raw_blocks(location("blocks"), block_params(todo))
        store_s = store_direct(location("store"), todo, window)
        folder = tmp / f"e2e-{backend}-{size}"
        folder.mkdir()
        e2e_s, col_cpu, send_cpu = end_to_end(folder, location("e2e"), agent_keys, envs,
                                              window, client=args.client, warm=args.warm)
        n_e2e = n - sum(len(b) for b, _, _ in todo if b.seq <= args.warm)
        row = {"backend": backend, "batch_samples": size, "batches": len(todo), "samples": n,
               "window": window, "raw_rows_per_s": round(n / rows_s),
               "raw_blocks_per_s": round(n / blocks_s), "store_per_s": round(n / store_s),
               "e2e_per_s": round(n_e2e / e2e_s), "e2e_samples": n_e2e, "warm": args.warm,
               "e2e_over_raw_rows": round(rows_s / e2e_s * n_e2e / n, 3),
               "e2e_over_raw_blocks": round(blocks_s / e2e_s * n_e2e / n, 3),
               "client": args.client, "collector_cpu_s": round(col_cpu, 3),
               "senders_cpu_s": round(send_cpu, 3),
               "per_collector_cpu_s": round(n_e2e / col_cpu) if col_cpu else None,
               "load_avg": os.getloadavg()}
        print(f"  {backend} {size}: raw_rows {row['raw_rows_per_s']:,}/s, raw_blocks"
              f" {row['raw_blocks_per_s']:,}/s, insert_batch {row['store_per_s']:,}/s,"
              f" e2e {row['e2e_per_s']:,}/s; collector CPU {col_cpu:.2f} s"
              f" ({row['per_collector_cpu_s'] or 0:,} samples per CPU s), senders CPU"
              f" {send_cpu:.2f} s (load {row['load_avg'][0]:.2f})", flush=True)
        rows.append(row)
        for f in tmp.glob("*.sqlite*"):
            f.unlink()
    return rows


def profile_e2e(tmp: Path, size: int, args: argparse.Namespace) -> str:
    """Run the SQLite e2e case once under cProfile; the top of the profile as text."""
    agent_keys, envs = workload(args.samples, size, args.senders)
    folder = tmp / "profile"
    folder.mkdir()
    end_to_end(folder, tmp / "profile.sqlite", agent_keys, envs, not args.no_window,
               args.profile, args.client)
    text = io.StringIO()
    stats = pstats.Stats(str(args.profile), stream=text)
    stats.sort_stats("tottime").print_stats(25)
    stats.sort_stats("cumulative").print_stats(40)
    return text.getvalue()


def main() -> None:
    """Parse arguments, run every case, print the table, write the JSON."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--samples", type=int, default=1_000_000, help="per case (default 1 M)")
    p.add_argument("--sizes", default="1000,10000", help="samples per batch, comma-separated")
    p.add_argument("--senders", type=int, default=4, help="concurrent agents (processes)")
    p.add_argument("--backends", default="sqlite,postgresql")
    p.add_argument("--client", choices=("light", "httpx"), default="light",
                   help="the senders' HTTP client (default: http.client, light)")
    p.add_argument("--warm", type=int, default=0,
                   help="e2e: each agent's first N batches sent before the clock (default 0)")
    p.add_argument("--no-window", action="store_true",
                   help="no general window open: the folds do nothing")
    p.add_argument("--profile", type=Path, default=None,
                   help="also profile the SQLite e2e case; cProfile stats written here")
    p.add_argument("--json", type=Path, default=None, help="write the figures here")
    p.add_argument("--serve", type=Path, default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.serve is not None:
        serve(args.serve, args.profile)
        return
    sizes = [int(s) for s in args.sizes.split(",")]
    backends = args.backends.split(",")
    bad = set(backends) - {"sqlite", "postgresql"}
    if bad or any(s < METRICS or s % METRICS for s in sizes):
        raise SystemExit("--backends takes sqlite and/or postgresql; --sizes multiples of 10")
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="dcmeter-ingest-") as tmp_name:
        tmp = Path(tmp_name)
        os.chmod(tmp, 0o755)
        if "sqlite" in backends:
            rows += bench_backend("sqlite", sizes, args, tmp, None)
        if "postgresql" in backends:
            with private_postgres() as url:
                rows += bench_backend("postgresql", sizes, args, tmp, url)
        prof = profile_e2e(tmp, max(sizes), args) if args.profile else None
    head = ("backend", "batch", "samples", "raw_rows /s", "raw_blocks /s", "insert_batch /s",
            "e2e /s", "e2e/rows", "e2e/blocks")
    print(f"{head[0]:<11}{head[1]:>7}{head[2]:>11}{head[3]:>13}{head[4]:>15}{head[5]:>17}"
          f"{head[6]:>12}{head[7]:>10}{head[8]:>12}")
    for r in rows:
        print(f"{r['backend']:<11}{r['batch_samples']:>7,}{r['samples']:>11,}"
              f"{r['raw_rows_per_s']:>13,}{r['raw_blocks_per_s']:>15,}{r['store_per_s']:>17,}"
              f"{r['e2e_per_s']:>12,}{r['e2e_over_raw_rows']:>10.2f}"
              f"{r['e2e_over_raw_blocks']:>12.2f}")
    if prof is not None:
        print(prof)
    if args.json is not None:
        args.json.write_text(json.dumps({"machine": machine(), "senders": args.senders,
                                         "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
