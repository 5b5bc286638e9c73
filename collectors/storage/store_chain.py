"""The hash chain and key history inside the store's transactions, and a window's evidence.

Functions over one open `Connection`, called by `Store` under its lock:

- how an arriving batch links to its stored predecessor, and, arriving late, to its stored
  successor (whose `prev` must be this batch's hash, else the batch is refused);
- whether a key the batch announces may be recorded (never a key the agent had before);
- which batches are a window's evidence: those sealed in its span and those holding a
  sample in it (`batches.min_ts` / `max_ts`, schema version 4), whenever sealed.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from dcmeter.agent.wire import GENESIS, Batch
from dcmeter.collectors.storage.db import Connection

# A batch whose samples span more than this, ns, is found through its own (small) index
# rather than by its first sample time: honest batches span one poll interval, or a few
# hours when a buffer catches up, so the scan by first sample time stays bounded by the
# batches of the window's span plus this much before it.
LONG_SPAN_NS = 6 * 3600 * 10**9

# What recording an announced key would do: new, already recorded (a retry), a key the
# agent had before, or a key announced in a batch a later key already follows.
KeyCheck = Literal["new", "known", "key_reused", "key_out_of_order"]


def predecessor_link(db: Connection, batch: Batch) -> str:
    """How this batch links to the agent's previous one: ok, break, dropped or gap."""
    row = db.execute(
        "SELECT hash FROM batches WHERE agent = ? AND seq = ?", (batch.agent, batch.seq - 1)
    ).fetchone()
    if row is not None:
        return "ok" if bytes(row[0]) == batch.prev else "break"
    if batch.seq == 1:
        return "ok" if batch.prev == GENESIS else "break"
    if any(d.first_seq <= batch.seq - 1 <= d.last_seq for d in batch.dropped):
        return "dropped"
    return "gap"


def successor_links(db: Connection, agent: str, seq: int, digest: bytes) -> bool:
    """Whether the stored batch seq + 1 (if any) names `digest` as its `prev`; if it does,
    its link, recorded as a "gap" on arrival, is now verified: record it "ok"."""
    row = db.execute(
        "SELECT prev, chain FROM batches WHERE agent = ? AND seq = ?", (agent, seq + 1)
    ).fetchone()
    if row is None:
        return True
    if bytes(row[0]) != digest:
        return False
    if row[1] == "gap":
        db.execute(
            "UPDATE batches SET chain = 'ok' WHERE agent = ? AND seq = ?", (agent, seq + 1)
        )
    return True


def key_check(db: Connection, agent: str, seq: int, public_key: str) -> KeyCheck:
    """Whether `public_key`, announced in `agent`'s batch `seq`, may be recorded as valid
    from seq + 1: never a key of the agent's history (except this very announcement, a
    retry), never behind a key already recorded from a later seq."""
    row = db.execute(
        "SELECT valid_from_seq FROM agent_keys WHERE agent = ? AND public_key = ?",
        (agent, public_key),
    ).fetchone()
    if row is not None:
        return "known" if int(row[0]) == seq + 1 else "key_reused"
    (later,) = db.execute(
        "SELECT COUNT(*) FROM agent_keys WHERE agent = ? AND valid_from_seq > ?", (agent, seq)
    ).fetchone()
    return "key_out_of_order" if later else "new"


def record_key(
    db: Connection, agent: str, seq: int, rotation: tuple[str, str], now_ns: int
) -> None:
    """Record the key (public key text, fingerprint) announced in batch `seq` from seq + 1."""
    db.execute(
        "INSERT INTO agent_keys VALUES (?,?,?,?,?,'rotation') ON CONFLICT DO NOTHING",
        (agent, rotation[0], seq + 1, rotation[1], now_ns),
    )


def sample_span(batch: Batch) -> tuple[int | None, int | None]:
    """The first and last sample time of a batch, ns; (None, None) without samples."""
    if not len(batch):
        return None, None
    ts = np.frombuffer(batch.ts, dtype=np.int64)
    return int(ts.min()), int(ts.max())


def evidence(t0_ns: int, t1_ns: int) -> tuple[str, tuple[int, ...]]:
    """A `WITH sel(agent, seq)` clause naming the batches sealed in [t0, t1] or holding a
    sample in it, and its parameters. Each branch reads one index: the seal time, the first
    sample time (batches spanning at most LONG_SPAN_NS), the long batches' last sample time."""
    sql = (
        "WITH sel(agent, seq) AS ("
        "SELECT agent, seq FROM batches WHERE sealed_ns BETWEEN ? AND ?"
        " UNION SELECT agent, seq FROM batches WHERE min_ts BETWEEN ? AND ? AND max_ts >= ?"
        " UNION SELECT agent, seq FROM batches"
        f" WHERE max_ts - min_ts > {LONG_SPAN_NS} AND max_ts >= ? AND min_ts <= ?) "
    )
    return sql, (t0_ns, t1_ns, t0_ns - LONG_SPAN_NS, t1_ns, t0_ns, t0_ns, t1_ns)


def add_sample_spans(db: Connection) -> None:
    """Schema version 4: batches.min_ts and max_ts, filled from the stored samples."""
    have = db.columns("batches")
    for name in ("min_ts", "max_ts"):
        if name not in have:
            db.ddl(f"ALTER TABLE batches ADD COLUMN {name} INTEGER")
    # One pass over the samples, grouped, then a keyed update: no scan per batch. Batches
    # without samples keep NULL and are found by their seal time alone.
    db.ddl(
        "CREATE TEMP TABLE batch_spans (agent TEXT NOT NULL, seq INTEGER NOT NULL,"
        " lo INTEGER NOT NULL, hi INTEGER NOT NULL, PRIMARY KEY (agent, seq))"
    )
    db.execute(
        "INSERT INTO batch_spans SELECT s.agent, x.seq, MIN(x.ts), MAX(x.ts)"
        " FROM samples x JOIN series s ON s.id = x.series GROUP BY s.agent, x.seq"
    )
    db.execute(
        "UPDATE batches SET"
        " min_ts = (SELECT lo FROM batch_spans t WHERE t.agent = batches.agent"
        " AND t.seq = batches.seq),"
        " max_ts = (SELECT hi FROM batch_spans t WHERE t.agent = batches.agent"
        " AND t.seq = batches.seq) WHERE min_ts IS NULL"
    )
    db.execute("DROP TABLE batch_spans")
    db.ddl(
        "CREATE INDEX IF NOT EXISTS batches_min_ts ON batches(min_ts);"
        "CREATE INDEX IF NOT EXISTS batches_long ON batches(max_ts)"
        f" WHERE max_ts - min_ts > {LONG_SPAN_NS}"
    )
