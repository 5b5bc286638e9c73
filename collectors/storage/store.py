"""The collector's store: verified batches, their samples, windows.

SQLite (one file, the default) or PostgreSQL (a `postgresql://` URL), through the small
dialect layer of collectors/storage/db.py: one schema, one list of migrations, one set of queries.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Container, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from dcmeter.agent.wire import Batch
from dcmeter.collectors.evaluation.gauge_fold import GaugeFold
from dcmeter.collectors.evaluation.series import Series
from dcmeter.collectors.storage import audit, generation, sample_reads
from dcmeter.collectors.storage import db as dbm
from dcmeter.collectors.storage import sample_blocks as blocks_db
from dcmeter.collectors.storage import source_failures as failures_db
from dcmeter.collectors.storage import store_chain as chain_db
from dcmeter.collectors.storage.calibration_table import CalibrationTable, add_calibration_tables
from dcmeter.collectors.storage.db import Connection, Migration
from dcmeter.collectors.storage.deadline import Deadline
from dcmeter.collectors.storage.instruments import Instrument, add_device_columns, instruments
from dcmeter.collectors.storage.ownership import Owners, Refused, migrate_owners
from dcmeter.collectors.storage.records import Drop, StoredRun, Window
from dcmeter.collectors.storage.series_table import (
    SeriesLimits,
    SeriesTable,
    identity_labels,
    migrate_series_identity,
    source_changes,
)
from dcmeter.collectors.storage.store_folds import (
    WindowFolds,
    add_fold_columns,
    add_fold_marks,
    fold_of,
)
from dcmeter.collectors.storage.store_results import ResultTable, migrate_results
from dcmeter.collectors.storage.token_table import TOKENS_SCHEMA, TokenTable
from dcmeter.collectors.storage.value_labels import merge_value_label_series

# The first release's tables, in SQLite's words (collectors/storage/db.py translates them for
# PostgreSQL). `{rowid}`: the tables read in insertion order get an explicit `rowid` column on
# PostgreSQL; SQLite has its implicit one.
SCHEMA = """
CREATE TABLE IF NOT EXISTS batches (
    agent TEXT NOT NULL, seq INTEGER NOT NULL, hash BLOB NOT NULL, prev BLOB NOT NULL,
    sealed_ns INTEGER NOT NULL, received_ns INTEGER NOT NULL, samples INTEGER NOT NULL,
    chain TEXT NOT NULL, clock_synced INTEGER, clock_max_error_s REAL, raw BLOB NOT NULL,
    PRIMARY KEY (agent, seq){rowid});
CREATE INDEX IF NOT EXISTS batches_sealed ON batches(sealed_ns);
CREATE TABLE IF NOT EXISTS series (
    id INTEGER PRIMARY KEY, key TEXT UNIQUE NOT NULL, agent TEXT NOT NULL,
    source TEXT NOT NULL, protocol TEXT NOT NULL, address TEXT NOT NULL,
    source_labels TEXT NOT NULL, accuracy REAL, metric TEXT NOT NULL, unit TEXT NOT NULL,
    kind TEXT NOT NULL, modulus REAL, labels TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS series_source ON series(source, metric);
CREATE TABLE IF NOT EXISTS samples (
    series INTEGER NOT NULL, ts INTEGER NOT NULL, value REAL NOT NULL, seq INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS samples_series_ts ON samples(series, ts);
CREATE TABLE IF NOT EXISTS dropped (
    agent TEXT NOT NULL, first_seq INTEGER NOT NULL, last_seq INTEGER NOT NULL,
    samples INTEGER NOT NULL, first_ts INTEGER NOT NULL, last_ts INTEGER NOT NULL,
    reported_in INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS windows (
    id INTEGER PRIMARY KEY, kind TEXT NOT NULL, start_ns INTEGER NOT NULL, end_ns INTEGER,
    note TEXT, created_ns INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY, window_id INTEGER NOT NULL REFERENCES windows(id),
    phase TEXT NOT NULL, model TEXT NOT NULL, repetition INTEGER NOT NULL,
    start_ns INTEGER NOT NULL, end_ns INTEGER NOT NULL, body TEXT NOT NULL,
    created_ns INTEGER NOT NULL, UNIQUE (window_id, phase, model, repetition));
CREATE TABLE IF NOT EXISTS rejections (
    ts_ns INTEGER NOT NULL, status INTEGER NOT NULL, reason TEXT NOT NULL, agent TEXT{rowid});
CREATE TABLE IF NOT EXISTS agent_keys (
    agent TEXT NOT NULL, public_key TEXT NOT NULL, valid_from_seq INTEGER NOT NULL,
    fingerprint TEXT NOT NULL, added_ns INTEGER NOT NULL, via TEXT NOT NULL,
    PRIMARY KEY (agent, public_key){rowid});
CREATE TABLE IF NOT EXISTS window_folds (
    window_id INTEGER NOT NULL, series_id INTEGER NOT NULL, state TEXT NOT NULL,
    PRIMARY KEY (window_id, series_id));
"""

Stored = Literal["stored", "duplicate", "conflict"]
# What `insert_batch` did: a refusal (nothing stored) for the last four; see store_chain.py.
Inserted = Literal["stored", "duplicate"]
# Refusals of insert_batch (raised as Refused, nothing written): status, reason, detail.
REFUSED: dict[str, tuple[int, str, str]] = {
    "seq_conflict": (409, "seq_conflict", "seq {seq} already stored with other content"),
    "chain_mismatch": (
        409, "chain_mismatch",
        "batch {seq} does not hash to the prev of the stored batch {nxt}: not the batch the"
        " agent chained there",
    ),
    "key_reused": (
        409, "key_reused",
        "batch {seq} announces a key this agent had before; rotate to a new key",
    ),
    "key_out_of_order": (
        409, "key_out_of_order",
        "batch {seq} announces a key, but a key valid from a later seq is already recorded",
    ),
}


def _refused(why: str, batch: Batch) -> Refused:
    status, reason, detail = REFUSED[why]
    return Refused(status, reason, detail.format(seq=batch.seq, nxt=batch.seq + 1))
WINDOW_COLUMNS = "id, kind, start_ns, end_ns, note, opened_by, scope, closed_by, closed_ns"
# Columns added after the first release: (name, type) added to a store that lacks them.
WINDOW_ADDED = (("opened_by", "TEXT"), ("scope", "TEXT"))


def _first_tables(db: Connection) -> None:
    db.ddl(SCHEMA + TOKENS_SCHEMA)


def _window_columns(db: Connection) -> None:
    have = db.columns("windows")
    for name, kind in WINDOW_ADDED:
        if name not in have:
            db.execute(f"ALTER TABLE windows ADD COLUMN {name} {kind}")


# The store's schema history, applied in order on both dialects (collectors/storage/db.py migrate);
# a new step is appended here with the next version. Each is idempotent on a SQLite file made
# before `schema_version` existed (version 0).
def _batch_steps(db: Connection) -> None:
    if "clock_stepped_s" not in db.columns("batches"):
        db.execute("ALTER TABLE batches ADD COLUMN clock_stepped_s REAL")


def _change_gens(db: Connection) -> None:
    generation.add_change_gens(db)
    add_fold_columns(db)


MIGRATIONS = (
    Migration(1, "batches, samples, windows, runs, keys, folds, tokens", _first_tables),
    Migration(2, "windows.opened_by and windows.scope", _window_columns),
    Migration(3, "batches.clock_stepped_s: the agent's wall-clock step", _batch_steps),
    Migration(4, "batches.min_ts and max_ts: the span of a batch's samples",
              chain_db.add_sample_spans),
    Migration(5, "series keyed by identity; source_meta: sources' metadata over time",
              migrate_series_identity),
    Migration(6, "source_owners: which agent owns which source, over time", migrate_owners),
    Migration(7, "window_results: frozen results of closed windows; windows.closed_by",
              migrate_results),
    Migration(8, "series split by a value label (DCMI period_s) merged; its periods as"
              " power_avg_period_s samples", merge_value_label_series),
    Migration(9, "series.source_device and source_meta.device: what each device says it is",
              add_device_columns),
    Migration(10, "source_failures: per agent and source, the failing run its batches report",
              failures_db.add_source_failures),
    Migration(11, "calibrations and calibration_readings (issue 18, seed 004)",
              add_calibration_tables),
    Migration(12, "store_generation: replicas on one PostgreSQL serialise their writes;"
              " batches_received index",
              generation.add_generation),
    Migration(13, "sample_blocks: a batch's samples as one row of columns; samples dropped",
              blocks_db.add_sample_blocks),
    Migration(14, "fold_marks: the newest batch each window's stored gauge folds have seen",
              add_fold_marks),
    Migration(15, "store_generation.owners_gen, windows_gen; window_folds.gen, packed: a"
              " replica re-reads only what others changed", _change_gens),
)


@dataclass(slots=True)
class _Shape:
    """An agent's last batch layout (its tables and src/met columns as bytes), the series
    id of each of its samples (int64, and as little-endian bytes: the block's `series`),
    and the positions of the samples whose series a window folds (None: not asked yet)."""

    layout: tuple[Any, ...]
    series: np.ndarray[Any, np.dtype[np.int64]]
    series_le: bytes
    folded: np.ndarray[Any, np.dtype[np.intp]] | None = None


def _window(row: Sequence[Any]) -> Window:
    scope = None if row[6] is None else tuple(json.loads(row[6]))
    return Window(row[0], row[1], row[2], row[3], row[4], row[5], scope, row[7],
                  None if row[8] is None else int(row[8]))


class Store(TokenTable, ResultTable, CalibrationTable):
    """One database connection (SQLite in WAL mode, or PostgreSQL); every write is one
    transaction, and every use of the connection is serialised by one lock."""

    def __init__(
        self, location: Path | str, *, fold_gap_s: float = 900.0,
        limits: SeriesLimits | None = None,
    ) -> None:
        """Open (or create) the store at `location`: a SQLite file path, or a
        `postgresql://user@host:port/db` URL (psycopg 3, the `postgresql` extra);
        `fold_gap_s` is the site's max_gap_s, the margin and interval limit the gauge folds of
        general windows are kept for; `limits` caps the series per agent and per source.
        StoreError (a ConfigError) if it cannot be opened."""
        self._db: Connection = dbm.open_migrated(location, MIGRATIONS)
        self.dialect = self._db.dialect
        self._lock = threading.Lock()
        self._closed = False
        # The store_generation this process's memory is true at (generation.py): read
        # before the caches below, so that a write between them makes the next use re-read.
        self._gen = generation.current(self._db)
        self._table = SeriesTable(limits)
        self._table.load(self._db)
        self._owners = Owners()
        self._owners.load(self._db)
        # (source identity, metric identity) -> series id: a cache over the series table's
        # keys that spares the JSON key of a known series (_sample_series below).
        self._pair_ids: dict[tuple[tuple[Any, ...], tuple[Any, ...]], int] = {}
        # Per agent, its last batch's layout (tables, src and met columns), its series ids
        # (a column and its little-endian bytes) and, once a window folds, the positions of
        # the samples whose series are folded (None until asked).
        self._shapes: dict[str, _Shape] = {}
        # SQLite: one collector per file, so its memory holds the folds and they are
        # written back every few seconds; PostgreSQL: replicas read them from the table.
        self._folds = WindowFolds(fold_gap_s, defer=self.dialect == "sqlite")
        self._load_folds()

    def close(self) -> None:
        """Write back the gauge folds not written yet, and close the database (once: a
        second close does nothing)."""
        if self._closed:
            return
        self._closed = True
        try:
            if self._folds.defer and (self._folds.dirty or self._folds.windows):
                with self._tx() as db:
                    self._folds.flush(db)
        finally:
            self._db.close()

    @contextmanager
    def _tx(self) -> Iterator[Connection]:
        with self._lock:
            try:
                with self._db.transaction():
                    gen = generation.bump(self._db)
                    self._synced(gen, writing=True)
                    owners, self._folds.reshaped = self._owners.version, False
                    yield self._db
                    if gen is not None:  # tell other replicas what to re-read
                        generation.mark(self._db, owners=self._owners.version != owners,
                                        windows=self._folds.reshaped)
            except Refused:
                self._gen = None  # the bump was rolled back: re-read at the next use
                self._owners.load(self._db)  # a first-delivery binding may be rolled back
                raise
            except BaseException:
                self._gen = None
                self._table.load(self._db)
                self._owners.load(self._db)
                self._pair_ids, self._shapes = {}, {}
                self._load_folds()
                raise

    def _synced(self, gen: generation.Gen | None, *, writing: bool = False) -> None:
        """Under the lock, given the store's generation (a writer's own bump, or the
        committed one for a read): if another replica wrote since this process last did
        (PostgreSQL; SQLite passes None), read what it changed: the series made since, the
        owners if it changed any, the folds it wrote (all folds if it opened, closed or
        deleted any)."""
        if gen is None:
            return
        last = self._gen
        mine = None if last is None else last.gen + (1 if writing else 0)
        if gen.gen != mine:
            self._table.catch_up(self._db)
            if last is None or gen.owners > last.gen:
                self._owners.load(self._db)
            if last is None or gen.windows > last.gen:
                self._load_folds()  # live windows judged by the last receipt, as at start
            else:
                self._folds.catch_up(self._db, last.gen)
        self._gen = gen
        self._folds.gen = gen.gen

    @property
    def owners(self) -> Owners:
        """The source owners (ownership.py), caught up with other replicas' writes."""
        with self._lock:
            self._fresh()
            return self._owners

    def _fresh(self) -> None:
        """Before a read that uses the memory (owners): catch up with other replicas."""
        if self.dialect == "postgresql":
            self._synced(generation.current(self._db))

    def insert_batch(
        self, batch: Batch, digest: bytes, raw: bytes, received_ns: int,
        rotation: tuple[str, str] | None = None,
    ) -> tuple[Inserted, str]:
        """Store a verified batch and its samples once; say whether it was new, and its chain.

        A batch arriving after its successor must hash to the successor's `prev`, else it is
        refused ("chain_mismatch"); if it does, the successor's link is recorded "ok".
        `rotation` (public key text, fingerprint): the batch announces the agent's next key,
        recorded in the same transaction as valid from the next seq; a key the agent had
        before is refused ("key_reused"), and so is an announcement behind a later key
        ("key_out_of_order"). A duplicate whose announcement is not recorded yet (an envelope
        statement stripped on first delivery) gets it recorded, and its envelope kept.
        Refused (ownership.py, series_table.py) if the agent does not own a source it reports
        or would pass a series cap: then nothing of the batch is stored."""
        with self._tx() as db:
            row = db.execute(
                "SELECT hash FROM batches WHERE agent = ? AND seq = ?", (batch.agent, batch.seq)
            ).fetchone()
            if row is not None:
                if bytes(row[0]) != digest:
                    raise _refused("seq_conflict", batch)
                if rotation is not None and chain_db.key_check(
                    db, batch.agent, batch.seq, rotation[0]
                ) == "new" and not db.execute(
                    "SELECT 1 FROM batches WHERE agent = ? AND seq > ?", (batch.agent, batch.seq)
                ).fetchone():
                    chain_db.record_key(db, batch.agent, batch.seq, rotation, received_ns)
                    db.execute(
                        "UPDATE batches SET raw = ? WHERE agent = ? AND seq = ?",
                        (raw, batch.agent, batch.seq),
                    )
                return "duplicate", ""
            bound = self._owners.check(db, batch, received_ns)  # Refused: nothing is written
            if not chain_db.successor_links(db, batch.agent, batch.seq, digest):
                raise _refused("chain_mismatch", batch)
            if rotation is not None:
                check = chain_db.key_check(db, batch.agent, batch.seq, rotation[0])
                if check in ("key_reused", "key_out_of_order"):
                    raise _refused(check, batch)
                chain_db.record_key(db, batch.agent, batch.seq, rotation, received_ns)
            chain = chain_db.predecessor_link(db, batch)
            min_ts, max_ts = chain_db.sample_span(batch)
            db.execute(
                "INSERT INTO batches(agent, seq, hash, prev, sealed_ns, received_ns, samples,"
                " chain, clock_synced, clock_max_error_s, raw, clock_stepped_s, min_ts, max_ts)"
                " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    batch.agent, batch.seq, digest, batch.prev, batch.sealed_ns, received_ns,
                    len(batch), chain,
                    None if batch.clock.synced is None else int(batch.clock.synced),
                    batch.clock.max_error_s, raw, batch.clock.stepped_s, min_ts, max_ts,
                ),
            )
            shape = self._sample_series(db, batch, received_ns)
            if shape is not None:
                if self._folds.windows or self._folds.gone:  # else nothing to fold
                    self._fold_batch(db, batch, shape, received_ns)
                blocks_db.write(
                    db, batch.agent, batch.seq, shape.series_le,
                    blocks_db.le_bytes(batch.ts, blocks_db.I8),
                    blocks_db.le_bytes(batch.val, blocks_db.F8),
                    len(batch), int(min_ts or 0), int(max_ts or 0),
                )
            db.executemany(
                "INSERT INTO dropped VALUES (?,?,?,?,?,?,?)",
                [
                    (batch.agent, d.first_seq, d.last_seq, d.samples, d.first_ts_ns,
                     d.last_ts_ns, batch.seq)
                    for d in batch.dropped
                ],
            )
            failures_db.record(db, batch)
        audit.sources_bound(batch.agent, bound, "first_delivery")  # once committed
        return "stored", chain

    # agents' public keys over time (collectors/intake/agent_keys.py)

    def source_failures(
        self, sources: Sequence[str] | None = None
    ) -> list[failures_db.SourceFailure]:
        """Each (agent, source)'s current or last failing run, or those of `sources`
        (collectors/storage/source_failures.py)."""
        with self._lock:
            return failures_db.source_failures(self._db, sources)

    def enrol_key(self, agent: str, public_key: str, fingerprint: str, now_ns: int) -> int | None:
        """Record an enrolled key unless known: valid from seq 1 for an agent without keys,
        else from the seq after its last stored batch. Return that seq, None if known."""
        with self._tx() as db:
            if db.execute(
                "SELECT 1 FROM agent_keys WHERE agent = ? AND public_key = ?", (agent, public_key)
            ).fetchone():
                return None
            has = db.execute("SELECT 1 FROM agent_keys WHERE agent = ?", (agent,)).fetchone()
            (last,) = db.execute(
                "SELECT COALESCE(MAX(seq), 0) FROM batches WHERE agent = ?", (agent,)
            ).fetchone()
            start = int(last) + 1 if has else 1
            db.execute(
                "INSERT INTO agent_keys VALUES (?,?,?,?,?,'enrolled')",
                (agent, public_key, start, fingerprint, now_ns),
            )
            return start

    def agent_keys(self, agent: str | None = None) -> list[tuple[str, str, int, str, int, str]]:
        """(agent, public key, valid_from_seq, fingerprint, added_ns, via), in force order."""
        with self._lock:
            return self._db.execute(
                "SELECT agent, public_key, valid_from_seq, fingerprint, added_ns, via"
                " FROM agent_keys" + (" WHERE agent = ?" if agent else "")
                + " ORDER BY agent, valid_from_seq, rowid",
                (agent,) if agent else (),
            ).fetchall()

    def raw_batches(self, agent: str | None = None) -> Iterator[tuple[str, int, bytes, bytes]]:
        """Every stored batch as (agent, seq, hash, raw envelope), in order, for audits."""
        last: tuple[str, int] = ("", 0)
        while True:
            with self._lock:
                rows = self._db.execute(
                    "SELECT agent, seq, hash, raw FROM batches WHERE (agent, seq) > (?, ?)"
                    + (" AND agent = ?" if agent else "") + " ORDER BY agent, seq LIMIT 256",
                    (*last, agent) if agent else last,
                ).fetchall()
            if not rows:
                return
            yield from rows
            last = (rows[-1][0], rows[-1][1])

    def _fold_batch(
        self, db: Connection, batch: Batch, shape: _Shape, received_ns: int
    ) -> None:
        """Feed the gauge folds the samples of `batch` whose series are folded: their
        positions are found once per agent layout, so a batch without any costs nothing."""
        if shape.folded is None:
            shape.folded = self._folds.folded_positions(db, shape.series)
        at = shape.folded
        if not len(at):
            return
        ts = np.frombuffer(batch.ts, dtype=np.int64)[at]
        val = np.frombuffer(batch.val, dtype=np.float64)[at]
        self._folds.fold_rows(db, list(zip(shape.series[at].tolist(), ts.tolist(), val.tolist(),
                                           strict=True)), received_ns)

    def _sample_series(self, db: Connection, batch: Batch, received_ns: int) -> _Shape | None:
        """The series id of every sample of `batch`, in order (None without samples).
        Columnar: each (source, metric) pair the batch uses is resolved once, through an
        in-memory map keyed by the pair's identity (no JSON on a hit); the per-sample work
        is numpy indexing."""
        if not len(batch):
            return None
        # An agent sends the same tables and layout tick after tick: reuse the last column.
        layout = (batch.sources, batch.metrics, bytes(batch.src), bytes(batch.met))
        last = self._shapes.get(batch.agent)
        if last is not None and last.layout == layout:
            return last
        n_met = len(batch.metrics)
        codes = np.frombuffer(batch.src, dtype=np.uint32).astype(np.int64) * n_met
        codes += np.frombuffer(batch.met, dtype=np.uint32)
        pairs, where = np.unique(codes, return_inverse=True)
        src_keys: dict[int, tuple[Any, ...]] = {}
        met_keys: dict[int, tuple[Any, ...]] = {}
        ids: list[int] = []
        missing: dict[tuple[tuple[Any, ...], tuple[Any, ...]], list[int]] = {}
        for code in pairs.tolist():
            s, m = divmod(code, n_met)
            if s not in src_keys:
                src = batch.sources[s]
                src_keys[s] = (batch.agent, src.id, src.protocol, src.address,
                               tuple(sorted(src.labels.items())), src.accuracy,
                               tuple(sorted(src.device.items())))
            if m not in met_keys:
                met = batch.metrics[m]
                spec = met.spec
                met_keys[m] = (spec.name, spec.unit, spec.kind, spec.modulus,
                               tuple(sorted(identity_labels(met.labels).items())))
            ident = (src_keys[s], met_keys[m])
            sid = self._pair_ids.get(ident)
            if sid is None:
                missing.setdefault(ident, []).append(len(ids))
                sid = s * n_met + m  # replaced below by the series id
            ids.append(sid)
        if missing:
            found = self._table.ids_of(db, batch, [divmod(ids[at[0]], n_met)
                                                   for at in missing.values()], received_ns)
            for (ident, at), sid in zip(missing.items(), found, strict=True):
                self._pair_ids[ident] = sid
                for i in at:
                    ids[i] = sid
        column = np.asarray(ids, dtype=np.int64)[where.reshape(-1)]
        out = _Shape(layout, column, blocks_db.le_bytes(column, blocks_db.I8))
        self._shapes[batch.agent] = out
        return out

    def record_rejection(self, ts_ns: int, status: int, reason: str, agent: str | None) -> None:
        """Keep a line for every refused batch (never its content)."""
        with self._tx() as db:
            db.execute("INSERT INTO rejections VALUES (?,?,?,?)", (ts_ns, status, reason, agent))

    def counts(self) -> dict[str, int]:
        """Batches and samples stored, batches rejected."""
        with self._lock:
            q = self._db.execute
            return {
                "batches": q("SELECT COUNT(*) FROM batches").fetchone()[0],
                "samples": blocks_db.count(self._db),
                "rejected": q("SELECT COUNT(*) FROM rejections").fetchone()[0],
            }

    def series(
        self, sources: Sequence[str], t0_ns: int, t1_ns: int, deadline: Deadline | None = None
    ) -> list[Series]:
        """Every series of the given source ids, with its samples in [t0, t1]."""
        return list(self.series_by_id(sources, t0_ns, t1_ns, deadline=deadline).values())

    def series_by_id(
        self, sources: Sequence[str], t0_ns: int, t1_ns: int, skip: Container[int] = (),
        deadline: Deadline | None = None,
    ) -> dict[int, Series]:
        """Every series of the given source ids by series id, with its samples in [t0, t1];
        those in `skip` without samples (their figures come from their gauge folds).
        `deadline` is checked between chunks of blocks (collectors/storage/deadline.py:
        raises Abandoned); the lock is taken per chunk, so ingest goes on during a long read
        (collectors/storage/sample_reads.py)."""
        with self._lock:
            self._fresh()  # the owners' spans
        return sample_reads.read_series(self._db, self._lock, self._owners.series_spans,
                                        sources, t0_ns, t1_ns, skip, deadline)

    def seen_sources(self) -> set[str]:
        """The source ids any agent has reported samples of (the series table)."""
        with self._lock:
            return {str(r[0]) for r in self._db.execute("SELECT DISTINCT source FROM series")}

    def source_changes(
        self, sources: Sequence[str], t0_ns: int, t1_ns: int
    ) -> list[dict[str, Any]]:
        """Metadata changes of `sources` that took effect in [t0, t1] (series_table.py)."""
        with self._lock:
            return source_changes(self._db, sources, t0_ns, t1_ns)

    def instruments(self, sources: Sequence[str], t0_ns: int, t1_ns: int) -> list[Instrument]:
        """Each (agent, source) of `sources` with samples in [t0, t1]: its newest metadata
        and device identity, and its sample count there (collectors/storage/instruments.py)."""
        return instruments(self._db, self._lock, sources, t0_ns, t1_ns)

    # source ownership (collectors/storage/ownership.py)

    def bind_sources(self, bindings: Mapping[str, Sequence[str]], now_ns: int) -> list[str]:
        """Let each agent in `bindings` report only its listed sources, binding those nobody
        owns to it; return the conflicts (listed for one agent, owned by another)."""
        self._owners.allowed = {a: frozenset(s) for a, s in bindings.items()}
        with self._tx() as db:
            return self._owners.enrol(db, bindings, now_ns)

    def move_source(
        self, source: str, agent: str, from_ns: int, by_name: str, reason: str, now_ns: int
    ) -> None:
        """Give `source` to `agent` from sample time `from_ns` on, or confirm its binding
        (ownership.py Owners.move); ValueError if that would rewrite history."""
        with self._tx() as db:
            self._owners.move(db, source, agent, from_ns, by_name, reason, now_ns)

    def batches(self, agent: str | None = None) -> list[dict[str, Any]]:
        """Batch metadata (no samples), oldest first."""
        with self._lock:
            cur = self._db.execute(
                "SELECT agent, seq, samples, chain, clock_synced, clock_max_error_s, sealed_ns"
                " FROM batches"
                + (" WHERE agent = ?" if agent else "") + " ORDER BY agent, seq",
                (agent,) if agent else (),
            )
            cols = [c[0] for c in cur.description]
            return [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]

    def chain_summary(self, t0_ns: int, t1_ns: int) -> list[dict[str, Any]]:
        """Per agent, the batches sealed in [t0, t1] or holding a sample in it, whenever
        sealed: counts, sequence range, clock reports, and the batches whose chain link is
        not "ok" ("break", "gap", "dropped"; `gaps_open`: gaps whose previous batch is still
        missing). SQL aggregates over indexed selections (store_chain.evidence): the cost
        grows with the batches in the span, not with the store's history."""
        sel, params = chain_db.evidence(t0_ns, t1_ns)
        with self._lock:
            q = self._db.execute
            rows = q(
                sel + "SELECT b.agent, COUNT(*), MIN(b.seq), MAX(b.seq),"
                " SUM(CASE WHEN b.clock_synced = 1 THEN 1 ELSE 0 END),"
                " SUM(CASE WHEN b.clock_synced = 0 THEN 1 ELSE 0 END),"
                " SUM(CASE WHEN b.clock_synced IS NULL THEN 1 ELSE 0 END),"
                " MAX(b.clock_max_error_s) FROM batches b"
                " JOIN sel ON sel.agent = b.agent AND sel.seq = b.seq"
                " GROUP BY b.agent ORDER BY b.agent",
                params,
            ).fetchall()
            events = q(
                sel + "SELECT b.agent, b.seq, b.chain, EXISTS(SELECT 1 FROM batches p"
                " WHERE p.agent = b.agent AND p.seq = b.seq - 1) FROM batches b"
                " JOIN sel ON sel.agent = b.agent AND sel.seq = b.seq"
                " WHERE b.chain != 'ok' ORDER BY b.agent, b.seq",
                params,
            ).fetchall()
        out = {
            r[0]: {
                "agent": r[0], "batches": r[1], "first_seq": r[2], "last_seq": r[3],
                "synced": r[4], "unsynced": r[5], "unknown": r[6], "max_error_s": r[7],
                "breaks": [], "gaps": [], "gaps_open": [], "dropped": [],
            }
            for r in rows
        }
        for agent, seq, chain, before in events:
            a = out[agent]
            a[{"break": "breaks", "gap": "gaps", "dropped": "dropped"}[chain]].append(seq)
            if chain == "gap" and not before:
                a["gaps_open"].append(seq)
        return list(out.values())

    def clock_steps(self, t0_ns: int, t1_ns: int) -> dict[str, list[tuple[int, float]]]:
        """Per agent, (seq, stepped_s) of the batches sealed in [t0, t1] or holding a sample
        in it that report a wall-clock step (agent/clock.py); batches stored before schema
        version 3 report none."""
        sel, params = chain_db.evidence(t0_ns, t1_ns)
        with self._lock:
            rows = self._db.execute(
                sel + "SELECT b.agent, b.seq, b.clock_stepped_s FROM batches b"
                " JOIN sel ON sel.agent = b.agent AND sel.seq = b.seq"
                " WHERE b.clock_stepped_s IS NOT NULL ORDER BY b.agent, b.seq",
                params,
            ).fetchall()
        out: dict[str, list[tuple[int, float]]] = {}
        for agent, seq, stepped in rows:
            out.setdefault(agent, []).append((int(seq), float(stepped)))
        return out

    def dropped_records(self, t0_ns: int, t1_ns: int) -> dict[str, list[Drop]]:
        """Per agent, the drop records (first_seq, last_seq, samples, first_ts_ns, last_ts_ns)
        the agents reported whose dropped samples were read in [t0, t1], oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT DISTINCT agent, first_seq, last_seq, samples, first_ts, last_ts"
                " FROM dropped WHERE last_ts >= ? AND first_ts <= ? ORDER BY agent, first_seq",
                (t0_ns, t1_ns),
            ).fetchall()
        out: dict[str, list[Drop]] = {}
        for agent, first_seq, last_seq, samples, first_ts, last_ts in rows:
            out.setdefault(str(agent), []).append(
                (int(first_seq), int(last_seq), int(samples), int(first_ts), int(last_ts))
            )
        return out

    def samples(self, agent: str | None = None) -> list[tuple[str, str, int, float]]:
        """Every stored sample (of `agent`'s batches) as (source, metric, ts_ns, value), by
        time: for audits and tests."""
        return sample_reads.every_sample(self._db, self._lock, agent)

    # windows

    def open_window(
        self,
        kind: str,
        start_ns: int,
        note: str | None,
        now_ns: int,
        opened_by: str | None = None,
        scope: Sequence[str] | None = None,
    ) -> Window:
        """Open a window starting at `start_ns`."""
        scope_t = None if scope is None else tuple(scope)
        with self._tx() as db:
            wid = db.insert_returning_id(
                "INSERT INTO windows(kind, start_ns, end_ns, note, created_ns, opened_by, scope)"
                " VALUES (?,?,?,?,?,?,?)",
                (kind, start_ns, None, note, now_ns, opened_by,
                 None if scope_t is None else json.dumps(scope_t)),
            )
            w = Window(wid, kind, start_ns, None, note, opened_by, scope_t)
            if kind == "general":
                self._folds.opened(w)
                self._folds.reshaped = True
        return w

    def window(self, wid: int) -> Window | None:
        """One window, or None."""
        with self._lock:
            row = self._db.execute(
                f"SELECT {WINDOW_COLUMNS} FROM windows WHERE id = ?", (wid,)
            ).fetchone()
        return _window(row) if row else None

    def windows(self) -> list[Window]:
        """All windows, newest first."""
        with self._lock:
            rows = self._db.execute(
                f"SELECT {WINDOW_COLUMNS} FROM windows ORDER BY id DESC"
            ).fetchall()
        return [_window(r) for r in rows]

    def close_window(
        self, wid: int, end_ns: int, closed_by: str | None = None, now_ns: int | None = None
    ) -> bool:
        """Close an open window at `end_ns`, recording who stopped it and when (`now_ns`);
        False if it was already closed."""
        with self._tx() as db:
            cur = db.execute(
                "UPDATE windows SET end_ns = ?, closed_by = ?, closed_ns = ?"
                " WHERE id = ? AND end_ns IS NULL",
                (end_ns, closed_by, time.time_ns() if now_ns is None else now_ns, wid),
            )
            if cur.rowcount == 1:
                self._folds.closed(db, wid, end_ns)
                self._folds.reshaped = True
            return cur.rowcount == 1

    # gauge folds of general windows (collectors/storage/store_folds.py)

    def _load_folds(self) -> None:
        rows = self._db.execute(
            f"SELECT {WINDOW_COLUMNS} FROM windows WHERE kind = 'general'"
        ).fetchall()
        self._folds.load(self._db, (_window(r) for r in rows))

    def fold_samples(self, rows: Sequence[tuple[int, int, float]], received_ns: int) -> None:
        """Fold (series id, ts ns, value) rows as `insert_batch` does, in one transaction,
        without storing them (the benchmark's store is filled by direct inserts)."""
        with self._tx() as db:
            self._folds.fold_rows(db, rows, received_ns)

    def window_folds(self, wid: int) -> dict[int, GaugeFold]:
        """The gauge folds of a window by series id: copies, safe while ingest goes on."""
        with self._lock:
            # PostgreSQL: the table, which every replica's transaction keeps current.
            held = None if self.dialect == "postgresql" else self._folds.copies(wid)
            if held is not None:
                return held
            rows = self._db.execute(
                "SELECT series_id, state, packed FROM window_folds WHERE window_id = ?", (wid,)
            ).fetchall()
        return {int(sid): fold_of(state, packed) for sid, state, packed in rows}

    # runs of AI windows

    def add_run(
        self, wid: int, body: dict[str, Any], start_ns: int, end_ns: int, now_ns: int
    ) -> tuple[Stored, StoredRun]:
        """Record a run once per (window, phase, model, repetition).

        The same body again is a duplicate (a retry); another body for the same repetition
        is a conflict, and the stored run is returned in both cases.
        """
        text = json.dumps(body, sort_keys=True)
        key = (wid, body["phase"], str(body["model"]).strip().lower(), body["repetition"])
        with self._tx() as db:
            row = db.execute(
                "SELECT id, body FROM runs WHERE window_id = ? AND phase = ? AND model = ?"
                " AND repetition = ?",
                key,
            ).fetchone()
            if row is not None:
                found = StoredRun(int(row[0]), wid, json.loads(row[1]))
                return ("duplicate" if row[1] == text else "conflict"), found
            rid = db.insert_returning_id(
                "INSERT INTO runs(window_id, phase, model, repetition, start_ns, end_ns, body,"
                " created_ns) VALUES (?,?,?,?,?,?,?,?)",
                (*key, start_ns, end_ns, text, now_ns),
            )
            return "stored", StoredRun(rid, wid, body)

    def runs(self, wid: int) -> list[StoredRun]:
        """The runs of a window, by start time."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, body FROM runs WHERE window_id = ? ORDER BY start_ns, id", (wid,)
            ).fetchall()
        return [StoredRun(int(i), wid, json.loads(b)) for i, b in rows]

    # aggregates for GET /metrics (collectors/web/metrics.py): one GROUP BY query each

    def agent_totals(self, after_rowid: int = 0) -> tuple[list[dict[str, Any]], int]:
        """Sum per agent the batches stored after row `after_rowid`; return the newest row id too.

        Per agent: batches, samples, newest seal and receipt (ns), chain breaks. Batches are only
        ever appended, so a caller adds up the later rows instead of scanning them all again.
        """
        with self._lock:
            cur = self._db.execute(
                "SELECT agent, COUNT(*) AS batches, CAST(SUM(samples) AS BIGINT) AS samples,"
                " MAX(sealed_ns) AS last_sealed_ns, MAX(received_ns) AS last_received_ns,"
                " SUM(CASE WHEN chain = 'break' THEN 1 ELSE 0 END) AS breaks,"
                " MAX(rowid) AS last_rowid FROM batches"
                " WHERE rowid > ? GROUP BY agent ORDER BY agent",
                (after_rowid,),
            )
            cols = [c[0] for c in cur.description]
            rows = [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]
        return rows, max((int(r["last_rowid"]) for r in rows), default=after_rowid)

    def rejection_totals(self, after_rowid: int = 0) -> tuple[list[tuple[int, str, int]], int]:
        """Count refused batches after row `after_rowid` by (HTTP status, reason); newest row id."""
        with self._lock:
            rows = self._db.execute(
                "SELECT status, reason, COUNT(*), MAX(rowid) FROM rejections WHERE rowid > ?"
                " GROUP BY status, reason",
                (after_rowid,),
            ).fetchall()
        last = max((int(r[3]) for r in rows), default=after_rowid)
        return [(int(st), str(r), int(n)) for st, r, n, _ in rows], last

    def open_window_totals(self) -> dict[str, int]:
        """Open windows counted by kind."""
        with self._lock:
            rows = self._db.execute(
                "SELECT kind, COUNT(*) FROM windows WHERE end_ns IS NULL GROUP BY kind"
            ).fetchall()
        return {str(k): int(n) for k, n in rows}
