"""Faults of the agent's buffer: full, on a full disk, damaged.

Real `dcmeter agent run` processes poll simulated Modbus meters every second and ship to a
real collector on loopback (helpers: tests/test_fault_collector_down.py).

- Buffer full: a 2 KB bound while the collector is down: the oldest batches are dropped,
  the drop reaches the collector, and the window result says how many samples were lost,
  when, and shows the gap per series.
- Disk full: simulated with RLIMIT_FSIZE on the running agent (`prlimit`): every write to
  the buffer file past its first byte fails with EFBIG, as writes fail on a full disk
  (SQLite reports a write error; Python ignores SIGXFSZ), then the limit is lifted again. The
  agent keeps polling, says so once, holds the readings in memory and writes them later.
  (RLIMIT_FSIZE rather than a small tmpfs: it needs no root and no mount, so it runs in CI.)
- Damaged file: garbage instead of a buffer at the first start, a page of the batches table
  overwritten, then the file truncated: the agent moves the file aside, says so, salvages
  what SQLite can still read and goes on; what an independent reader can still read of the
  damaged file arrives at the collector.
"""

from __future__ import annotations

import json
import math
import os
import resource
import sqlite3
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from conftest import MeterThread
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from test_fault_collector_down import (
    AGENT,
    SOURCES,
    Key,
    Served,
    SiteCollector,
    committed,
    running_agent,
    stored_seconds,
    wait_for,
    write_agent_config,
)

from dcmeter.agent import wire
from dcmeter.agent.buffer import Buffer, envelope_body
from dcmeter.agent.samples import MetricSpec, Reading, SourceInfo

PAGE = 4096


def buffer_counts(buffer: Path) -> dict[str, int]:
    """Rows in the agent buffer's tables and the sealed batches' bytes, read beside the
    running agent."""
    db = sqlite3.connect(f"file:{buffer}?mode=ro", uri=True, timeout=5)
    try:
        out = {t: db.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]
               for t in ("samples", "batches", "dropped", "rejected")}
        out["bytes"] = db.execute("SELECT COALESCE(SUM(LENGTH(raw)), 0) FROM batches").fetchone()[0]
        return out
    finally:
        db.close()


def test_buffer_full_drops_oldest_and_the_collector_shows_the_gap(
    tmp_path: Path, meters: MeterThread, store_location: Callable[[str], Path | str]
) -> None:
    key = Ed25519PrivateKey.generate()
    served = Served(meters)
    col = SiteCollector(store_location("collector"), tmp_path, key)
    col.start()
    # A few batches of one tick fit in 2 KB.
    cfg = write_agent_config(tmp_path, col.url, key, served.ports, "buffer_max_mb = 0.002")
    buffer = tmp_path / "state" / "buffer.sqlite"
    try:
        with running_agent(cfg):
            wait_for(lambda: len(col.samples()) >= 12, 20, "the first batches to arrive")
            col.stop()
            t_down = time.time()
            polled: dict[Key, float] = {}
            while time.time() < t_down + 10:
                polled |= committed(buffer)
                time.sleep(0.2)
            assert buffer_counts(buffer)["bytes"] <= 0.002 * 2**20
            col.start()
            assert col.store
            store = col.store
            wait_for(lambda: bool(store.dropped_records(0, 2**62)) and not any(
                buffer_counts(buffer)[t] for t in ("batches", "dropped")), 20,
                "the kept batches and the drop record to arrive")
            samples = col.samples()
            batches = store.batches(AGENT)

        stored = Counter((s, m, t) for s, m, t, _ in samples)
        assert max(stored.values()) == 1, "a sample stored twice"
        missing = sorted(polled.keys() - stored.keys(), key=lambda k: k[2])
        all_drops = store.dropped_records(0, 2**62)[AGENT]
        drops = [d for d in all_drops if d[2]]  # a batch of drop records only has no times
        # Exactly what was dropped is recorded: its samples, its time span. The test sees the
        # buffer every 0.2 s, so on a busy machine a batch can come and go between two looks:
        # what it saw missing is a lower bound; the count is exact per batch (every batch of
        # this agent holds the same samples: 2 meters, the same metrics each tick).
        assert missing, "nothing was dropped"
        dropped = sum(d[2] for d in drops)
        per_batch = {b["samples"] for b in batches if b["samples"]}
        assert len(per_batch) == 1, per_batch
        n_batch = per_batch.pop()
        assert dropped == n_batch * sum(d[1] - d[0] + 1 for d in drops)
        assert len(missing) <= dropped
        assert all(any(d[3] <= k[2] <= d[4] for d in drops) for k in missing)
        # The oldest batches of the outage went; the newest stayed and arrived. One batch may
        # be both: in flight when the collector stopped, stored there, its answer lost, then
        # dropped by the agent that still held it (seen once on a loaded machine). Only its
        # samples may lie in a drop's span, and no other batch may be both.
        seqs = {b["seq"] for b in batches}
        drop_seqs = {q for d in all_drops for q in range(d[0], d[1] + 1)}
        raced = seqs & drop_seqs
        assert len(raced) <= 1, raced
        in_spans = [k for k in stored if any(d[3] <= k[2] <= d[4] for d in drops)]
        assert len(in_spans) == n_batch * len(raced), (raced, in_spans)
        lost = set(range(1, max(seqs) + 1)) - seqs
        assert lost == drop_seqs - raced
        first, last = min(lost), max(lost)
        assert lost == set(range(first, last + 1)), "not one run of the oldest batches"
        assert last + 1 in seqs and min(s for s in seqs if s > first) == last + 1
        assert max(seqs) - last >= 2  # the newest batches were kept
        # The window's result: the dropped link, how many samples, when; a gap per series.
        t_lost = (min(d[3] for d in drops), max(d[4] for d in drops))
        ts = sorted(stored_t for _, _, stored_t in stored)
        result = col.window(t_lost[0] - 4 * 10**9, ts[-1] - 10**9)
        quality = result["quality"]
        chain = quality["chain"]["agents"][AGENT]
        assert chain["dropped"] == [last + 1]
        assert chain["gaps"] == chain["gaps_open"] == chain["breaks"] == []
        assert chain["dropped_samples"] == dropped
        spans = chain["dropped_spans"]
        assert sum(s["samples"] for s in spans) == dropped
        assert {(s["first_seq"], s["last_seq"]) for s in spans} == {d[:2] for d in drops}
        issue = [i for i in quality["issues"] if "dropped batches" in i]
        assert len(issue) == 1 and f"{dropped} samples missing" in issue[0], issue
        span_s = (t_lost[1] - t_lost[0]) / 1e9
        for q in quality["sources"]:
            assert q["longest_gap_s"] >= span_s, q
        print(f"dropped batches {first}-{last}: {dropped} samples ({len(missing)} seen in the buffer) over {span_s:.1f} s")
    finally:
        if col.store:
            col.stop()


def test_disk_full_agent_keeps_polling_and_writes_the_held_readings_later(
    tmp_path: Path, meters: MeterThread, store_location: Callable[[str], Path | str]
) -> None:
    key = Ed25519PrivateKey.generate()
    served = Served(meters)
    col = SiteCollector(store_location("collector"), tmp_path, key)
    col.start()
    cfg = write_agent_config(tmp_path, col.url, key, served.ports)
    try:
        with running_agent(cfg) as agent:
            wait_for(lambda: len(col.samples()) >= 12, 20, "the first batches to arrive")
            # The disk is full: no file of the agent's can grow past its first byte.
            resource.prlimit(agent.pid, resource.RLIMIT_FSIZE, (1, resource.RLIM_INFINITY))
            t_full = time.time()
            wait_for(lambda: bool(agent.events("cannot write the buffer")), 5,
                     "the agent to report the write failure")
            time.sleep(5)
            assert agent.alive()
            t_free = time.time()
            resource.prlimit(agent.pid, resource.RLIMIT_FSIZE,
                             (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
            wait_for(lambda: bool(agent.events("buffer writable again")), 5,
                     "the agent to write the held readings")
            wait_for(lambda: max(t for _, _, t, _ in col.samples()) > (t_free + 2) * 1e9, 10,
                     "samples after the disk has room again")
            samples = col.samples()
        failed = agent.events("cannot write the buffer")
        assert len(failed) == 1, failed  # once, not every tick
        assert "Error" in failed[0]["reason"] and failed[0]["path"].endswith("buffer.sqlite")
        assert agent.events("buffer writable again")[0]["lost_readings"] == 0
        assert Counter((s, m, t) for s, m, t, _ in samples).most_common(1)[0][1] == 1
        # Every tick the meters answered, before, during and after the full disk: stored.
        for source in SOURCES:
            polled = served.polled_seconds(source, t_full - 2, t_free + 2)
            assert len(polled) >= 8
            for metric in ("power_w", "energy_import_kwh"):
                got = stored_seconds(samples, source, metric, t_full - 2, t_free + 2)
                assert got == sorted(polled), (source, metric, set(polled) ^ set(got))
    finally:
        if col.store:
            col.stop()


def readable_samples(path: Path, max_seq: int) -> dict[Key, float]:
    """What an independent reader still reads of a damaged buffer: each batch looked up by
    its seq on its own, kept when it decodes; lookups that raise are skipped."""
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    db.execute("PRAGMA writable_schema=ON")  # else SQLite refuses a file cut short at all
    out: dict[Key, float] = {}
    try:
        for seq in range(1, max_seq + 1):
            try:
                row = db.execute("SELECT raw FROM batches WHERE seq = ?", (seq,)).fetchone()
                b = wire.decode_body(envelope_body(row[0])) if row else None
            except (sqlite3.DatabaseError, wire.WireError):
                continue
            if b is not None:
                out |= {(b.sources[s].id, b.metrics[m].spec.name, t): v
                        for t, s, m, v in zip(b.ts, b.src, b.met, b.val, strict=True)}
    finally:
        db.close()
    return out


def max_seq(buffer: Path) -> int:
    """The last sealed seq of a stopped agent's buffer."""
    db = sqlite3.connect(buffer)
    try:
        return int(db.execute("SELECT v FROM state WHERE k = 'last_seq'").fetchone()[0])
    finally:
        db.close()


def overwrite_a_leaf(path: Path, table: str) -> int:
    """Write garbage over a leaf page of `table` in the middle of its leaves; its number."""
    db = sqlite3.connect(path)
    try:
        leaves = [p for (p,) in db.execute(
            "SELECT pageno FROM dbstat WHERE name = ? AND pagetype = 'leaf' ORDER BY pageno",
            (table,))]
    finally:
        db.close()
    assert len(leaves) >= 3, f"{table} has {len(leaves)} leaf pages: too few to damage one"
    page = leaves[len(leaves) // 2]
    with path.open("r+b") as f:
        f.seek((page - 1) * PAGE)
        f.write(os.urandom(PAGE))
    return int(page)


def damaged_events(agent_lines: list[str]) -> list[dict[str, object]]:
    """The agent's "buffer file damaged" log events."""
    out = []
    for line in agent_lines:
        try:
            e = json.loads(line)
        except ValueError:
            continue
        if "buffer file damaged" in str(e.get("event")):
            out.append(e)
    return out


def test_damaged_buffer_is_kept_aside_and_what_is_readable_arrives(
    tmp_path: Path, meters: MeterThread, store_location: Callable[[str], Path | str]
) -> None:
    key = Ed25519PrivateKey.generate()
    served = Served(meters)
    col = SiteCollector(store_location("collector"), tmp_path, key)  # down for now
    # One sample per batch: many batches, several pages of them, in a few ticks.
    cfg = write_agent_config(tmp_path, col.url, key, served.ports, "batch_max_samples = 1")
    state = tmp_path / "state"
    buffer = state / "buffer.sqlite"
    # 1. Garbage where the buffer should be: kept aside, a new buffer, polling goes on.
    garbage = os.urandom(2 * PAGE)
    buffer.write_bytes(garbage)
    with running_agent(cfg) as agent:
        wait_for(lambda: len(agent.events("buffer file damaged")) == 1, 10, "the report")
        time.sleep(8)
    (first,) = damaged_events(agent.lines)
    assert Path(str(first["kept_as"])).read_bytes() == garbage
    assert Path(str(first["kept_as"])).name.startswith("buffer.sqlite.corrupt-")
    before = committed(buffer)
    assert len(before) >= 6 * 6

    # 2. A page of sealed batches overwritten while the agent is stopped.
    last = max_seq(buffer)
    overwrite_a_leaf(buffer, "batches")
    with running_agent(cfg) as agent:
        wait_for(lambda: len(agent.events("buffer file damaged")) == 1, 10, "the report")
        time.sleep(2)
    (second,) = damaged_events(agent.lines)
    aside = Path(str(second["kept_as"]))
    readable = readable_samples(aside, last)
    lost = before.keys() - readable.keys()
    assert readable and lost, "the damage hit nothing, or everything"
    salvaged = committed(buffer)
    assert readable.items() <= salvaged.items()  # all that was readable, values unchanged
    assert not (lost & salvaged.keys())  # and nothing made up
    assert isinstance(second["batches"], int) and second["batches"] > 0
    assert second["chain"] == "continues" and second["last_seq"] == last

    # 3. The file cut short; the collector back: what is readable arrives, and more.
    last = max_seq(buffer)
    before = committed(buffer)
    with buffer.open("r+b") as f:
        f.truncate(buffer.stat().st_size * 3 // 4 // PAGE * PAGE)
    col.start()
    try:
        with running_agent(cfg) as agent:
            wait_for(lambda: len(agent.events("buffer file damaged")) == 1, 10, "the report")
            third = damaged_events(agent.lines)[0]
            readable = readable_samples(Path(str(third["kept_as"])), last)
            t_up = time.time()
            wait_for(lambda: readable.keys() <= {k[:3] for k in col.samples()}, 20,
                     "the readable samples to arrive")
            wait_for(lambda: max(t for _, _, t, _ in col.samples()) > (t_up + 2) * 1e9, 10,
                     "new samples to arrive")
            samples = col.samples()
        assert readable and before.keys() - readable.keys(), "the cut hit nothing or everything"
        values = {(s, m, t): v for s, m, t, v in samples}
        assert len(values) == len(samples), "a sample stored twice"
        assert all(values[k] == v for k, v in readable.items())
        assert not (before.keys() - readable.keys()) & values.keys()
        assert col.store
        # No batch refused: the sequence went on where the damaged buffer left it.
        assert buffer_counts(buffer)["rejected"] == 0
        assert max(b["seq"] for b in col.store.batches(AGENT)) > last
        assert sorted(p.name for p in state.glob("buffer.sqlite.corrupt-*")
                      if not p.name.endswith(("-wal", "-shm"))) == sorted(
            Path(str(e["kept_as"])).name for e in (first, second, third))
    finally:
        if col.store:
            col.stop()


def test_salvage_keeps_every_readable_unsealed_reading(tmp_path: Path) -> None:
    src = SourceInfo("meter-total", "modbus", "127.0.0.1:502/1", {"point": "total"})
    power = MetricSpec("power_w", "W")
    path = tmp_path / "buffer.sqlite"
    buf = Buffer(path, AGENT)
    for t in range(1, 301):
        buf.append([(src, Reading(power, t + i / 100, t * 10**9 + i)) for i in range(10)])
    buf.close()
    page = overwrite_a_leaf(path, "samples")
    # Each row looked up on its own: what is still readable.
    db = sqlite3.connect(path)
    readable = set()
    for rowid in range(1, 3001):
        try:
            row = db.execute("SELECT ts, value FROM samples WHERE id = ?", (rowid,)).fetchone()
        except sqlite3.DatabaseError:
            continue
        if row:
            readable.add(tuple(row))
    db.close()
    assert 0 < len(readable) < 3000, page

    buf = Buffer(path, AGENT)
    kept = set(buf._db.execute("SELECT ts, value FROM samples").fetchall())
    assert readable <= kept
    assert all(math.isclose(v, ts // 10**9 + ts % 10**9 / 100) for ts, v in kept)
    # The new buffer works: seal and read back every kept reading.
    assert buf.seal(lambda body: wire.envelope(body, Ed25519PrivateKey.generate()),
                    wire.ClockStatus(True, 0.0), 1) == 1
    b = wire.decode_body(envelope_body(buf.pending()[0][1]))
    assert set(zip(b.ts, b.val, strict=True)) == kept
    buf.close()
    assert len(list(tmp_path.glob("buffer.sqlite.corrupt-*"))) >= 1
