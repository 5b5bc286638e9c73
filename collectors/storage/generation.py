"""The store's write generation: several collectors (replicas) on one PostgreSQL store.

A collector keeps parts of the store in memory (the series keys, source owners, the gauge
folds of general windows: store.py). With one process its lock keeps them true; with
several processes on one PostgreSQL database another replica may write under them. Every
write transaction on PostgreSQL therefore starts by bumping the one row of
`store_generation`: the row lock, held until commit, serialises the replicas' writes (so a
batch is stored once, chain links and folds move in one order, and row ids commit in
order for /metrics' running sums), and the number returned tells the writer whether
anyone wrote since its own last write (then it reads its in-memory state again). SQLite
has one collector per file: nothing is bumped there. See docs/scaling.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dcmeter.collectors.storage.db import Connection

GENERATION_SCHEMA = """
CREATE TABLE IF NOT EXISTS store_generation (
    id INTEGER NOT NULL, gen INTEGER NOT NULL, PRIMARY KEY (id));
"""


def add_generation(db: Connection) -> None:
    """Schema step: the table and its one row, and an index on batches' receipt times (a
    replica re-reading the folds judges the windows still folding by the last receipt, as
    store_folds.py does at start: an index lookup, not a scan of every batch). Idempotent."""
    db.ddl(GENERATION_SCHEMA)
    db.ddl("CREATE INDEX IF NOT EXISTS batches_received ON batches(received_ns);")
    if db.execute("SELECT 1 FROM store_generation WHERE id = 1").fetchone() is None:
        db.execute("INSERT INTO store_generation VALUES (1, 0)")


def bump(db: Connection) -> int | None:
    """Inside a write transaction: on PostgreSQL take the store's write lock (the row's
    lock, until commit or rollback) and return the new generation; on SQLite None."""
    if db.dialect != "postgresql":
        return None
    (gen,) = db.execute(
        "UPDATE store_generation SET gen = gen + 1 WHERE id = 1 RETURNING gen"
    ).fetchone()
    return int(gen)


def current(db: Connection) -> int | None:
    """The committed generation (no lock) on PostgreSQL; None on SQLite."""
    if db.dialect != "postgresql":
        return None
    row = db.execute("SELECT gen FROM store_generation WHERE id = 1").fetchone()
    return None if row is None else int(row[0])
