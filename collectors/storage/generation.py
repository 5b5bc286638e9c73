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

What a replica re-reads is only what changed (schema step 15): the row also holds the
generation of the last write that changed source owners (`owners_gen`) and of the last that
opened, closed or deleted general windows' folds (`windows_gen`); each gauge fold row of
`window_folds` carries the generation that wrote it (`gen`). A writer sets the first two
to its own generation when its transaction changed them (`mark`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from dcmeter.collectors.storage.db import Connection


class Gen(NamedTuple):
    """The store's generation, and those of the last writes that changed source owners and
    general windows (opened, closed, folds deleted)."""

    gen: int
    owners: int
    windows: int

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


def add_change_gens(db: Connection) -> None:
    """Schema step 15 (with store_folds.add_fold_columns): `store_generation.owners_gen`
    and `windows_gen`. Idempotent."""
    have = db.columns("store_generation")
    for name in ("owners_gen", "windows_gen"):
        if name not in have:
            db.ddl(f"ALTER TABLE store_generation ADD COLUMN {name} INTEGER NOT NULL DEFAULT 0;")


def bump(db: Connection) -> Gen | None:
    """Inside a write transaction: on PostgreSQL take the store's write lock (the row's
    lock, until commit or rollback) and return the new generation; on SQLite None."""
    if db.dialect != "postgresql":
        return None
    row = db.execute(
        "UPDATE store_generation SET gen = gen + 1 WHERE id = 1"
        " RETURNING gen, owners_gen, windows_gen"
    ).fetchone()
    return Gen(*map(int, row))


def mark(db: Connection, *, owners: bool, windows: bool) -> None:
    """Inside a write transaction that bumped: record that it changed source owners and/or
    general windows (the row is locked by this transaction: no other writer waits longer)."""
    sets = [f"{n}_gen = gen" for n, on in (("owners", owners), ("windows", windows)) if on]
    if sets and db.dialect == "postgresql":
        db.execute(f"UPDATE store_generation SET {', '.join(sets)} WHERE id = 1")


def current(db: Connection) -> Gen | None:
    """The committed generation (no lock) on PostgreSQL; None on SQLite."""
    if db.dialect != "postgresql":
        return None
    row = db.execute(
        "SELECT gen, owners_gen, windows_gen FROM store_generation WHERE id = 1").fetchone()
    return None if row is None else Gen(*map(int, row))
