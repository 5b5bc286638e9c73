"""Samples stored as columns: one `sample_blocks` row per batch (schema version 13).

A batch's samples are kept as it arrived, one row holding three little-endian arrays: `ts`
(int64, ns since the epoch) and `val` (float64) are the batch's own columns, byte for byte,
`series` (int64) the series id of each sample (store.py `_sample_series`). `min_ts` and
`max_ts` (ns) are the batch's sample span (the same as `batches.min_ts`/`max_ts`). One row
per batch instead of one per sample: a 10,000-sample batch costs one row and two index
entries, not 10,000 rows and 10,000 index entries, and is read back with numpy.

Readers find an agent's blocks overlapping a time span through `(agent, min_ts)` (blocks
spanning at most store_chain.LONG_SPAN_NS, so a block overlapping [t0, t1] has its first
sample in [t0 - LONG_SPAN_NS, t1]) and the few long ones through a partial index on
`(agent, max_ts)`, as store_chain.evidence finds batches.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from dcmeter.collectors.storage.db import Connection
from dcmeter.collectors.storage.store_chain import LONG_SPAN_NS

BLOCKS_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS sample_blocks (
    agent TEXT NOT NULL, seq INTEGER NOT NULL, min_ts INTEGER NOT NULL,
    max_ts INTEGER NOT NULL, n INTEGER NOT NULL, series BLOB NOT NULL, ts BLOB NOT NULL,
    val BLOB NOT NULL, PRIMARY KEY (agent, seq));
CREATE INDEX IF NOT EXISTS sample_blocks_min_ts ON sample_blocks(agent, min_ts);
CREATE INDEX IF NOT EXISTS sample_blocks_long ON sample_blocks(agent, max_ts)
    WHERE max_ts - min_ts > {LONG_SPAN_NS};
"""
INSERT_BLOCK = "INSERT INTO sample_blocks VALUES (?,?,?,?,?,?,?,?)"
# Blocks fetched per query (and per hold of the store's lock) by a reader.
READ_CHUNK = 16
# Rows the migration reads per fetch from the old `samples` table.
MIGRATE_FETCH = 100_000
I8, F8 = np.dtype("<i8"), np.dtype("<f8")
# A span holding every sample time a reader may ask for, ns (its start minus LONG_SPAN_NS
# still fits an int64).
EVER = (-(2**62), 2**63 - 1)


@dataclass(frozen=True, slots=True)
class Block:
    """One stored batch's samples: parallel arrays of series ids, times (ns), values."""

    seq: int
    series: np.ndarray[Any, np.dtype[np.int64]]
    ts: np.ndarray[Any, np.dtype[np.int64]]
    val: np.ndarray[Any, np.dtype[np.float64]]


def le_bytes(column: Any, dtype: np.dtype[Any]) -> bytes:
    """A column (array.array, numpy array or bytes, native order) as little-endian bytes:
    on a little-endian host a plain copy of the buffer."""
    arr = np.frombuffer(column, dtype=dtype.newbyteorder("="))
    return arr.tobytes() if sys.byteorder == "little" else arr.astype(dtype).tobytes()


def write(
    db: Connection, agent: str, seq: int, series: bytes, ts: bytes, val: bytes,
    n: int, min_ts: int, max_ts: int,
) -> None:
    """Store one batch's block (its columns as little-endian bytes); none for no samples."""
    if n:
        db.execute(INSERT_BLOCK, (agent, seq, min_ts, max_ts, n, series, ts, val))


def block_seqs(db: Connection, agent: str, t0_ns: int, t1_ns: int) -> list[int]:
    """The seqs of `agent`'s blocks holding a sample time in [t0, t1], ordered by their first
    sample time (each branch reads one index; no block bytes are read)."""
    return [seq for seq, _ in block_starts(db, agent, t0_ns, t1_ns)]


def block_starts(db: Connection, agent: str, t0_ns: int, t1_ns: int) -> list[tuple[int, int]]:
    """(seq, first sample time ns) of `agent`'s blocks holding a sample time in [t0, t1],
    by first sample time."""
    rows = db.execute(
        "SELECT seq, min_ts FROM sample_blocks WHERE agent = ? AND min_ts BETWEEN ? AND ?"
        " AND max_ts >= ?"
        " UNION SELECT seq, min_ts FROM sample_blocks WHERE agent = ?"
        f" AND max_ts - min_ts > {LONG_SPAN_NS} AND max_ts >= ? AND min_ts <= ?"
        " ORDER BY 2, 1",
        (agent, t0_ns - LONG_SPAN_NS, t1_ns, t0_ns, agent, t0_ns, t1_ns),
    ).fetchall()
    return [(int(r[0]), int(r[1])) for r in rows]


def read(db: Connection, agent: str, seqs: Sequence[int]) -> list[Block]:
    """`agent`'s blocks of `seqs`, in the order given (missing ones left out)."""
    if not seqs:
        return []
    rows = db.execute(
        "SELECT seq, series, ts, val FROM sample_blocks WHERE agent = ? AND seq IN ("
        + ",".join("?" * len(seqs)) + ")", (agent, *seqs),
    ).fetchall()
    by = {int(r[0]): r for r in rows}
    return [
        Block(s, np.frombuffer(bytes(r[1]), dtype=I8).astype(np.int64, copy=False),
              np.frombuffer(bytes(r[2]), dtype=I8).astype(np.int64, copy=False),
              np.frombuffer(bytes(r[3]), dtype=F8).astype(np.float64, copy=False))
        for s in seqs if (r := by.get(s)) is not None
    ]


def chunks(seqs: Sequence[int], size: int = READ_CHUNK) -> Iterator[Sequence[int]]:
    """`seqs` in slices of `size`."""
    for i in range(0, len(seqs), size):
        yield seqs[i:i + size]


def count(db: Connection) -> int:
    """Samples stored in every block."""
    return int(db.execute("SELECT COALESCE(SUM(n), 0) FROM sample_blocks").fetchone()[0])


def ns_seconds(ts: np.ndarray[Any, np.dtype[np.int64]]) -> np.ndarray[Any, np.dtype[np.float64]]:
    """Epoch ns to s exactly as the store always converted them (store_folds.ns_s): whole
    seconds and nanoseconds apart, truncating toward zero, each exact in a float64."""
    q = np.abs(ts) // 10**9
    q = np.where(ts < 0, -q, q)
    r = ts - q * 10**9
    out: np.ndarray[Any, np.dtype[np.float64]] = q.astype(np.float64) + r.astype(np.float64) / 1e9
    return out


def add_sample_blocks(db: Connection) -> None:
    """Schema step 13: the `sample_blocks` table; an old `samples` table's rows become the
    blocks of their (agent, seq) (the agent of their series) and the table is dropped.
    Idempotent: without `samples` only the table is made."""
    db.ddl(BLOCKS_SCHEMA)
    lz4_columns(db)
    if not db.columns("samples"):
        return
    merge = db.execute("SELECT 1 FROM sample_blocks LIMIT 1").fetchone() is not None
    key: tuple[str, int] | None = None
    rows: list[tuple[int, int, float]] = []
    out: list[tuple[Any, ...]] = []
    for agent, seq, sid, ts, value in db.stream(
        "SELECT s.agent, x.seq, x.series, x.ts, x.value FROM samples x JOIN series s"
        " ON s.id = x.series ORDER BY s.agent, x.seq, x.ts, x.series", MIGRATE_FETCH,
    ):
        if key != (agent, seq):
            if key is not None:
                out.append(_block_row(db, key, rows, merge))
            key, rows = (str(agent), int(seq)), []
            if len(out) >= 256:
                db.executemany(INSERT_BLOCK, out)
                out = []
        rows.append((sid, ts, value))
    if key is not None:
        out.append(_block_row(db, key, rows, merge))
    db.executemany(INSERT_BLOCK, out)
    db.execute("DROP TABLE samples")


def lz4_columns(db: Connection) -> None:
    """PostgreSQL 14+ built with lz4: compress the blocks' columns and the batches' raw
    envelopes with lz4 instead of the default pglz. pglz spent most of a batch's write
    compressing them (bench/ingest.py raw_blocks, 10,000-sample batches: 0.72 M samples/s
    with pglz, 5.0 M/s with lz4, the same size within 20 %); without lz4 nothing changes."""
    if db.dialect != "postgresql":
        return
    row = db.execute(
        "SELECT 1 FROM pg_settings WHERE name = 'default_toast_compression'"
        " AND 'lz4' = ANY(enumvals)").fetchone()
    if row is None:
        return
    for table, column in (("sample_blocks", "series"), ("sample_blocks", "ts"),
                          ("sample_blocks", "val"), ("batches", "raw")):
        db.execute(f"ALTER TABLE {table} ALTER COLUMN {column} SET COMPRESSION lz4")


def _block_row(
    db: Connection, key: tuple[str, int], rows: list[tuple[int, int, float]], merge: bool
) -> tuple[Any, ...]:
    """The sample_blocks row of one (agent, seq)'s old rows; merged with a block already
    stored under that key (a store migrated by hand twice), which is then deleted."""
    series = np.array([r[0] for r in rows], dtype=I8)
    ts = np.array([r[1] for r in rows], dtype=I8)
    val = np.array([r[2] for r in rows], dtype=F8)
    if merge:
        had = read(db, key[0], [key[1]])
        if had:
            series = np.concatenate([had[0].series.astype(I8), series])
            ts = np.concatenate([had[0].ts.astype(I8), ts])
            val = np.concatenate([had[0].val.astype(F8), val])
            db.execute("DELETE FROM sample_blocks WHERE agent = ? AND seq = ?", key)
    return (key[0], key[1], int(ts.min()), int(ts.max()), len(ts), series.tobytes(),
            ts.tobytes(), val.tobytes())
