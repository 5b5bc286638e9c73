"""The agent's durable buffer: SQLite in WAL mode under the state directory.

Each tick's readings are committed in one transaction; sealing moves them into one signed
batch row in one transaction; a batch row is deleted only once the collector acknowledged
it. A crash or power loss at any point therefore loses nothing and duplicates nothing.
When the sealed batches exceed the size bound, the oldest are dropped and a record of
exactly what was dropped rides in the next batch, so the gap is visible at the collector.
A buffer file SQLite finds damaged at open is moved aside and what is still readable is
salvaged into a new one (agent/buffer_salvage.py). While the file cannot be written (disk
full, I/O error), `Held` keeps the readings in memory, up to a bound.
"""

from __future__ import annotations

import json
import sqlite3
from collections import deque
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import structlog

from dcmeter.agent.buffer_keys import KeyCache
from dcmeter.agent.buffer_salvage import Damaged, corrupt, move_aside, salvage
from dcmeter.agent.samples import MetricSpec, Reading, SourceInfo
from dcmeter.agent.wire import (
    FAILURE_ID_MAX,
    FAILURE_REASON_MAX,
    GENESIS,
    MAX_FAILURES,
    Batch,
    ClockStatus,
    Dropped,
    Failure,
    MetricEntry,
    batch_hash,
    decode_body,
    encode_body,
    open_envelope,
    pack_arrays,
)

SCHEMA = """
CREATE TABLE IF NOT EXISTS sources (idx INTEGER PRIMARY KEY, key TEXT UNIQUE NOT NULL);
CREATE TABLE IF NOT EXISTS metrics (idx INTEGER PRIMARY KEY, key TEXT UNIQUE NOT NULL);
CREATE TABLE IF NOT EXISTS samples (
    id INTEGER PRIMARY KEY, ts INTEGER NOT NULL, src INTEGER NOT NULL,
    met INTEGER NOT NULL, value REAL NOT NULL);
CREATE TABLE IF NOT EXISTS batches (
    seq INTEGER PRIMARY KEY, raw BLOB NOT NULL, samples INTEGER NOT NULL,
    first_ts INTEGER, last_ts INTEGER);
CREATE TABLE IF NOT EXISTS dropped (
    first_seq INTEGER PRIMARY KEY, last_seq INTEGER, samples INTEGER,
    first_ts INTEGER, last_ts INTEGER);
CREATE TABLE IF NOT EXISTS rejected (
    seq INTEGER PRIMARY KEY, raw BLOB NOT NULL, status INTEGER, reason TEXT);
CREATE TABLE IF NOT EXISTS state (k TEXT PRIMARY KEY, v BLOB);
"""
# Targets' failed reads waiting for the next batch. Made at the first failure, so the
# buffer of an agent whose targets never failed keeps the layout of earlier releases.
FAILURES_SCHEMA = """CREATE TABLE IF NOT EXISTS failures (
    id INTEGER PRIMARY KEY, source TEXT NOT NULL, ts INTEGER NOT NULL, reason TEXT NOT NULL)"""

Sealer = Callable[[bytes], bytes]  # body -> envelope (signs it)
Tick = list[tuple[SourceInfo, Reading]]

log = structlog.get_logger("dcmeter.agent.buffer")

# Readings held in memory while the buffer file cannot be written (disk full, I/O error):
# about 20 MB; 100 targets of 5 metrics at 60 s for more than 3 hours.
HELD_MAX_READINGS = 100_000


def _source_key(s: SourceInfo) -> str:
    key: list[object] = [s.id, s.protocol, s.address, dict(s.labels), s.accuracy]
    if s.device:  # keys of buffers written before `device` keep their five entries
        key.append(dict(s.device))
    return json.dumps(key, sort_keys=True)


def _metric_key(m: MetricSpec, labels: dict[str, str]) -> str:
    return json.dumps([m.name, m.unit, m.kind, m.modulus, labels], sort_keys=True)


class Buffer:
    """Samples waiting to be sealed and sealed batches waiting for an acknowledgement."""

    def __init__(self, path: Path, agent_id: str, max_bytes: int = 256 * 2**20) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.agent_id = agent_id
        self.max_bytes = max_bytes
        try:
            self._db = connect(path, check=True)
        except Damaged as exc:
            aside = move_aside(path)
            self._db = connect(path, check=False)
            salvage(aside, self._db, agent_id, str(exc))
        self._load_keys()
        self._has_failures = self._db.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'failures'"
        ).fetchone() is not None

    def close(self) -> None:
        """Close the database; everything committed stays."""
        self._db.close()

    def _load_keys(self) -> None:
        """(Re)load the interned keys and forget every cache built on them: the ids interned
        by a rolled-back transaction are gone, and may name other keys later."""
        self._src_idx: dict[str, int] = dict(self._db.execute("SELECT key, idx FROM sources"))
        self._met_idx: dict[str, int] = dict(self._db.execute("SELECT key, idx FROM metrics"))
        self._keys = KeyCache()
        self._src_entry: dict[int, SourceInfo] = {}
        self._met_entry: dict[int, MetricEntry] = {}

    def _rollback(self) -> None:
        # SQLite has already rolled back after some errors (disk full, I/O error).
        if self._db.in_transaction:
            self._db.execute("ROLLBACK")

    def _intern(self, table: str, cache: dict[str, int], key: str) -> int:
        idx = cache.get(key)
        if idx is None:
            cur = self._db.execute(f"INSERT INTO {table}(key) VALUES (?)", (key,))
            idx = cache[key] = int(cur.lastrowid or 0)
        return idx

    def append(self, tick: Iterable[tuple[SourceInfo, Reading]]) -> int:
        """Commit one tick's readings in one transaction; return how many."""
        rows = []
        keys = self._keys
        self._db.execute("BEGIN IMMEDIATE")
        try:
            # The JSON keys are made once per source and metric identity (KeyCache), not
            # once per reading: they were a third of the commit's CPU.
            last: SourceInfo | None = None
            s = 0
            metrics = keys.metrics  # KeyCache.metric's hit path inlined: a call per reading
            for info, r in tick:
                if info is not last:  # a source's readings come together
                    s = keys.source(info, self._source_idx)
                    last = info
                hit = metrics.get((id(r.metric), tuple(r.labels.items())))
                m = hit[1] if hit is not None and hit[0] is r.metric else keys.metric(
                    r, self._metric_idx)
                rows.append((r.ts_ns, s, m, r.value))
            self._db.executemany("INSERT INTO samples(ts, src, met, value) VALUES (?,?,?,?)", rows)
            self._db.execute("COMMIT")
        except BaseException:
            self._rollback()
            self._load_keys()
            raise
        return len(rows)

    def _source_idx(self, info: SourceInfo) -> int:
        return self._intern("sources", self._src_idx, _source_key(info))

    def _metric_idx(self, r: Reading) -> int:
        return self._intern("metrics", self._met_idx, _metric_key(r.metric, dict(r.labels)))

    def note_failures(self, failures: Iterable[tuple[str, int, str]]) -> None:
        """Keep a tick's failed reads (source id, ns, reason) for the next batch. Reasons are
        cut to FAILURE_REASON_MAX characters; beyond MAX_FAILURES waiting, the oldest go (a
        long outage of the collector with every target dead must not fill the disk)."""
        rows = [(sid[:FAILURE_ID_MAX], ts, reason[:FAILURE_REASON_MAX])
                for sid, ts, reason in failures]
        if not rows:
            return
        self._db.execute("BEGIN IMMEDIATE")
        try:
            self._db.execute(FAILURES_SCHEMA)
            self._db.executemany("INSERT INTO failures(source, ts, reason) VALUES (?,?,?)", rows)
            self._db.execute(
                "DELETE FROM failures WHERE id <= (SELECT MAX(id) FROM failures) - ?",
                (MAX_FAILURES,),
            )
            self._db.execute("COMMIT")
        except BaseException:
            self._rollback()
            raise
        self._has_failures = True

    def _state(self, k: str, default: Any) -> Any:
        row = self._db.execute("SELECT v FROM state WHERE k = ?", (k,)).fetchone()
        return default if row is None else row[0]

    def last_seq(self) -> int:
        """Sequence number of the last sealed batch (0 before the first)."""
        return int(self._state("last_seq", 0))

    def seal(
        self, sealer: Sealer, clock: ClockStatus, sealed_ns: int, max_samples: int = 50_000,
        next_key: bytes | None = None,
    ) -> int | None:
        """Move up to `max_samples` oldest samples into one signed batch; return its seq.
        `next_key`: the agent's next public key, announced in this batch's body."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            rows = self._db.execute(
                "SELECT id, ts, src, met, value FROM samples ORDER BY id LIMIT ?", (max_samples,)
            ).fetchall()
            dropped = self._db.execute(
                "SELECT first_seq, last_seq, samples, first_ts, last_ts FROM dropped"
            ).fetchall()
            failures = self._db.execute(
                "SELECT id, source, ts, reason FROM failures ORDER BY id LIMIT ?",
                (MAX_FAILURES,),
            ).fetchall() if self._has_failures else []
            # Drop records and failures alone make a batch only when no batch waits: else
            # they ride in the next batch of samples (a drop never cascades into more
            # batches, and batches without samples are never dropped for space).
            if not rows and ((not dropped and not failures) or self._db.execute(
                "SELECT 1 FROM batches LIMIT 1"
            ).fetchone()):
                self._rollback()
                return None
            seq = self.last_seq() + 1
            prev = self._state("last_hash", GENESIS)
            assert isinstance(prev, bytes)
            body, batch = self._body(rows, dropped, seq, prev, clock, sealed_ns, next_key,
                                     [Failure(f[1], f[2], f[3]) for f in failures])
            raw = sealer(body)
            ts = batch.ts
            self._db.execute(
                "INSERT INTO batches(seq, raw, samples, first_ts, last_ts) VALUES (?,?,?,?,?)",
                (seq, raw, len(ts), min(ts) if ts else None, max(ts) if ts else None),
            )
            if rows:
                self._db.execute("DELETE FROM samples WHERE id <= ?", (rows[-1][0],))
            self._db.execute("DELETE FROM dropped")
            if failures:
                self._db.execute("DELETE FROM failures WHERE id <= ?", (failures[-1][0],))
            self._db.executemany(
                "INSERT OR REPLACE INTO state(k, v) VALUES (?, ?)",
                [("last_seq", seq), ("last_hash", batch_hash(body))],
            )
            self._db.execute("COMMIT")
        except BaseException:
            self._rollback()
            raise
        self._enforce_bound()
        return seq

    def _body(
        self,
        rows: list[tuple[int, int, int, int, float]],
        dropped: list[tuple[int, int, int, int, int]],
        seq: int,
        prev: bytes,
        clock: ClockStatus,
        sealed_ns: int,
        next_key: bytes | None = None,
        failures: list[Failure] | None = None,
    ) -> tuple[bytes, Batch]:
        _, ts, src, met, val = zip(*rows, strict=True) if rows else ((),) * 5
        # Positions in first-seen order: dict.fromkeys keeps it, in C.
        src_pos = {idx: pos for pos, idx in enumerate(dict.fromkeys(src))}
        met_pos = {idx: pos for pos, idx in enumerate(dict.fromkeys(met))}
        sources = [self._source_entry(idx) for idx in src_pos]
        metrics = [self._metric_entry(idx) for idx in met_pos]
        arrays = pack_arrays(ts, list(map(src_pos.__getitem__, src)),
                             list(map(met_pos.__getitem__, met)), val)
        batch = Batch(
            self.agent_id, seq, prev, sealed_ns, clock, sources, metrics, *arrays,
            dropped=[Dropped(*d) for d in dropped], next_key=next_key,
            failures=failures or [],
        )
        return encode_body(batch), batch

    def _source_entry(self, idx: int) -> SourceInfo:
        """The batch entry of an interned source, decoded from its stored key once."""
        entry = self._src_entry.get(idx)
        if entry is None:
            (key,) = self._db.execute("SELECT key FROM sources WHERE idx=?", (idx,)).fetchone()
            sid, proto, addr, labels, acc, *device = json.loads(key)
            entry = self._src_entry[idx] = SourceInfo(sid, proto, addr, labels, acc, *device)
        return entry

    def _metric_entry(self, idx: int) -> MetricEntry:
        """The batch entry of an interned metric, decoded from its stored key once."""
        entry = self._met_entry.get(idx)
        if entry is None:
            (key,) = self._db.execute("SELECT key FROM metrics WHERE idx=?", (idx,)).fetchone()
            name, unit, kind, modulus, labels = json.loads(key)
            entry = MetricEntry(MetricSpec(name, unit, kind, modulus), labels)
            self._met_entry[idx] = entry
        return entry

    def _enforce_bound(self) -> None:
        """Drop the oldest sealed batches while they exceed `max_bytes`; record the drop.

        A dropped batch may itself carry records of earlier drops: they are kept, so the
        next batch reports every batch ever dropped, as contiguous seq ranges. A batch of drop
        records alone (no samples, a few hundred bytes) is never dropped.
        """
        (total,) = self._db.execute("SELECT COALESCE(SUM(LENGTH(raw)), 0) FROM batches").fetchone()
        if total <= self.max_bytes:
            return
        self._db.execute("BEGIN IMMEDIATE")
        try:
            for seq, size, n, first, last in self._db.execute(
                "SELECT seq, LENGTH(raw), samples, first_ts, last_ts FROM batches"
                " WHERE samples > 0 ORDER BY seq"
            ).fetchall():
                if total <= self.max_bytes:
                    break
                (raw,) = self._db.execute(
                    "SELECT raw FROM batches WHERE seq = ?", (seq,)
                ).fetchone()
                self._db.execute("DELETE FROM batches WHERE seq = ?", (seq,))
                carried = decode_body(open_envelope(raw)[0]).dropped
                self._db.executemany(
                    "INSERT OR IGNORE INTO dropped VALUES (?,?,?,?,?)",
                    [(d.first_seq, d.last_seq, d.samples, d.first_ts_ns, d.last_ts_ns)
                     for d in [*carried, Dropped(seq, seq, n, first or 0, last or 0)]],
                )
                total -= size
            self._coalesce_drops()
            self._db.execute("COMMIT")
        except BaseException:
            self._rollback()
            raise

    def _coalesce_drops(self) -> None:
        """Merge drop records of consecutive seqs into one (inside the caller's transaction)."""
        rows = self._db.execute(
            "SELECT first_seq, last_seq, samples, first_ts, last_ts FROM dropped"
            " ORDER BY first_seq"
        ).fetchall()
        merged: list[list[int]] = []
        for first, last, n, t0, t1 in rows:
            if merged and merged[-1][1] + 1 == first:
                m = merged[-1]
                # A time of 0 stands for "no samples" (a batch of drop records only).
                times = [t for t in (m[3], m[4], t0, t1) if t]
                m[1:] = [last, m[2] + n, min(times, default=0), max(times, default=0)]
            else:
                merged.append([first, last, n, t0, t1])
        if len(merged) < len(rows):
            self._db.execute("DELETE FROM dropped")
            self._db.executemany("INSERT INTO dropped VALUES (?,?,?,?,?)", merged)

    def pending(self, limit: int = 16) -> list[tuple[int, bytes]]:
        """The oldest sealed batches not yet acknowledged, as (seq, envelope bytes)."""
        return self._db.execute(
            "SELECT seq, raw FROM batches ORDER BY seq LIMIT ?", (limit,)
        ).fetchall()

    def ack(self, seq: int) -> None:
        """The collector has stored batch `seq`: forget it."""
        self._db.execute("DELETE FROM batches WHERE seq = ?", (seq,))

    def reject(self, seq: int, status: int, reason: str) -> None:
        """Set aside a batch the collector refuses for good, keeping its bytes."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            self._db.execute(
                "INSERT OR REPLACE INTO rejected SELECT seq, raw, ?, ? FROM batches"
                " WHERE seq = ?",
                (status, reason, seq),
            )
            self._db.execute("DELETE FROM batches WHERE seq = ?", (seq,))
            self._db.execute("COMMIT")
        except BaseException:
            self._rollback()
            raise

    def counts(self) -> dict[str, int]:
        """Unsealed samples, pending batches, rejected batches and dropped records."""
        q = self._db.execute
        return {
            "samples": q("SELECT COUNT(*) FROM samples").fetchone()[0],
            "batches": q("SELECT COUNT(*) FROM batches").fetchone()[0],
            "rejected": q("SELECT COUNT(*) FROM rejected").fetchone()[0],
            "dropped": q("SELECT COUNT(*) FROM dropped").fetchone()[0],
        }


def connect(path: Path, *, check: bool) -> sqlite3.Connection:
    """Open the buffer file in WAL mode with its tables; with `check`, raise Damaged if
    SQLite finds it corrupt (a full `quick_check`: its cost grows with the file)."""
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        db.executescript(SCHEMA)
        if check:
            found = [str(r[0]) for r in db.execute("PRAGMA quick_check(3)")]
            if found != ["ok"]:
                raise Damaged("; ".join(found).replace("\n", "; "))
    except sqlite3.DatabaseError as exc:
        db.close()
        if corrupt(exc):
            raise Damaged(str(exc)) from exc
        raise
    except BaseException:
        db.close()
        raise
    return db


class Held:
    """Ticks the buffer could not take (disk full, I/O error), kept in memory until it can.

    The first failure is logged once with its reason and the recovery once with what was
    written. Beyond `max_readings` the oldest held ticks are dropped: counted, logged once.
    """

    def __init__(self, max_readings: int = HELD_MAX_READINGS) -> None:
        self.max_readings = max_readings
        self.ticks: deque[Tick] = deque()
        self.readings = 0
        self.failing: str | None = None  # the reason the buffer cannot be written
        self.lost = 0
        self.lost_ns: list[int] = []  # first and last timestamp of what was lost

    def commit(self, buffer: Buffer, tick: Tick, then: Callable[[], None]) -> bool:
        """Commit the held ticks and `tick`, oldest first, then call `then` (sealing);
        return False, holding what was not committed, if the buffer cannot be written."""
        if tick:
            self.ticks.append(tick)
            self.readings += len(tick)
        try:
            while self.ticks:
                buffer.append(self.ticks[0])
                self.readings -= len(self.ticks.popleft())
            then()
        except sqlite3.Error as exc:
            self._failed(buffer, exc)
            return False
        if self.failing is not None:
            log.info("buffer writable again, held readings written", path=str(buffer.path),
                     lost_readings=self.lost, lost_span_ns=self.lost_ns or None)
            self.failing, self.lost, self.lost_ns = None, 0, []
        return True

    def _failed(self, buffer: Buffer, exc: sqlite3.Error) -> None:
        if self.failing is None:
            self.failing = f"{type(exc).__name__}: {exc}"
            log.error("cannot write the buffer (disk full?): holding readings in memory",
                      path=str(buffer.path), reason=self.failing, held=self.readings,
                      max_readings=self.max_readings)
        while self.readings > self.max_readings and len(self.ticks) > 1:
            old = self.ticks.popleft()
            self.readings -= len(old)
            if not self.lost:
                log.error("too many readings held in memory: dropping the oldest",
                          max_readings=self.max_readings)
            self.lost += len(old)
            times = [r.ts_ns for _, r in old] + self.lost_ns
            self.lost_ns = [min(times), max(times)] if times else []


def envelope_body(raw: bytes) -> bytes:
    """The body inside a stored envelope (for inspection and tests)."""
    return open_envelope(raw)[0]
