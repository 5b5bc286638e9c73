"""A store as it was before schema version 13 (one row per sample), for migration tests, and
a reader of the samples a store holds now, by series id."""

from __future__ import annotations

import threading

import numpy as np

from dcmeter.collectors.storage import sample_reads
from dcmeter.collectors.storage.db import Connection
from dcmeter.collectors.storage.sample_blocks import EVER
from dcmeter.collectors.storage.store import Store

# The `samples` table of schema versions 1–12 (store.py SCHEMA before migration 13).
OLD_SAMPLES = """
CREATE TABLE IF NOT EXISTS samples (
    series INTEGER NOT NULL, ts INTEGER NOT NULL, value REAL NOT NULL, seq INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS samples_series_ts ON samples(series, ts);
"""


def back_to(db: Connection, version: int) -> None:
    """Inside a transaction: forget the migrations after `version` (they run again at the
    next open) and, from before 13, give the store its old `samples` table back, holding
    every sample of the blocks (which are deleted), as a store of that version held them."""
    db.execute("DELETE FROM schema_version WHERE version > ?", (version,))
    if version >= 13:
        return
    db.ddl(OLD_SAMPLES)
    for seq, series, ts, val in db.execute(
        "SELECT seq, series, ts, val FROM sample_blocks").fetchall():
        db.executemany("INSERT INTO samples VALUES (?,?,?,?)", [
            (s, t, v, int(seq)) for s, t, v in zip(
                np.frombuffer(bytes(series), "<i8").tolist(),
                np.frombuffer(bytes(ts), "<i8").tolist(),
                np.frombuffer(bytes(val), "<f8").tolist(), strict=True)])
    db.execute("DELETE FROM sample_blocks")


def stored(store: Store, sid: int) -> list[tuple[int, float]]:
    """(ts ns, value) of every sample of series `sid` the store holds, by time."""
    (agent,) = store._db.execute("SELECT agent FROM series WHERE id = ?", (sid,)).fetchone()
    _, ts, val = sample_reads.scan(store._db, threading.Lock(), str(agent), *EVER,
                                   np.array([sid], dtype=np.int64))
    order = np.argsort(ts, kind="stable")
    return list(zip(ts[order].tolist(), val[order].tolist(), strict=True))
