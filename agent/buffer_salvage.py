"""A damaged buffer file: move it aside, salvage what SQLite can still read into a new one.

At open, SQLite may find the buffer corrupt (a disk fault, a torn copy, an overwritten
page). The agent then renames the file and its -wal/-shm to `<name>.corrupt-<UTC time>`,
so nothing is destroyed and an operator can look at it, creates a fresh buffer, and copies
every row of the damaged one it can still read, table by table and row by row: a row that
raises is skipped and the scan resumes past it. Sealed batches are checked (they must decode
and carry their own seq) and kept byte for byte, so their signatures and chain still hold;
unsealed samples are kept when their source and metric rows are readable too. The chain
state (last seq and hash) comes from the damaged state table, or else from the last
salvaged batch, so the next batch follows on without a break wherever that was readable.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog

from dcmeter.agent.wire import GENESIS, WireError, batch_hash, decode_body, open_envelope

log = structlog.get_logger("dcmeter.agent.buffer")

# The columns kept per table, in the order of the buffer's schema (agent/buffer.py).
TABLES = {
    "sources": "idx, key",
    "metrics": "idx, key",
    "batches": "seq, raw, samples, first_ts, last_ts",
    "dropped": "first_seq, last_seq, samples, first_ts, last_ts",
    "rejected": "seq, raw, status, reason",
    "state": "k, v",
    "samples": "id, ts, src, met, value",
}


class Damaged(Exception):
    """SQLite found the buffer file corrupt; the message says what it found."""


def corrupt(exc: sqlite3.DatabaseError) -> bool:
    """Whether `exc` says the file is damaged (not locked, missing or unwritable)."""
    name = getattr(exc, "sqlite_errorname", "")
    return name.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB"))


def move_aside(path: Path) -> Path:
    """Rename `path` and its -wal/-shm to `<name>.corrupt-<UTC time>`; return the new path."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    aside = path.with_name(f"{path.name}.corrupt-{stamp}")
    n = 1
    while aside.exists():
        n += 1
        aside = path.with_name(f"{path.name}.corrupt-{stamp}-{n}")
    for suffix in ("", "-wal", "-shm"):
        src = Path(str(path) + suffix)
        if src.exists():
            os.replace(src, str(aside) + suffix)
    return aside


def _first(db: sqlite3.Connection, table: str, at: int) -> tuple[Any, ...] | None:
    """The first row of `table` with rowid >= `at` (None: none); raises if unreadable."""
    cols = TABLES[table]
    row: tuple[Any, ...] | None = db.execute(
        f"SELECT rowid, {cols} FROM {table} WHERE rowid >= ? ORDER BY rowid LIMIT 1", (at,)
    ).fetchone()
    return row


def _ok(db: sqlite3.Connection, table: str, at: int) -> bool:
    try:
        _first(db, table, at)
    except sqlite3.DatabaseError:
        return False
    return True


def _skip(db: sqlite3.Connection, table: str, at: int) -> int | None:
    """The smallest rowid >= `at` from which the table reads again (None: nowhere)."""
    if _ok(db, table, at):
        return at
    step = 1
    while not _ok(db, table, at + step):
        step *= 2
        if step > 2**62:
            return None
    lo, hi = at + step // 2, at + step  # reading fails from lo, works from hi
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if _ok(db, table, mid) else (mid, hi)
    return hi


def readable_rows(db: sqlite3.Connection, table: str) -> Iterator[tuple[Any, ...]]:
    """Every row of `table` SQLite can read, in rowid order, skipping the ones that raise."""
    cols = TABLES[table]
    at = 0  # the smallest rowid not looked at yet
    while True:
        try:
            for row in db.execute(
                f"SELECT rowid, {cols} FROM {table} WHERE rowid >= ? ORDER BY rowid", (at,)
            ):
                at = row[0] + 1
                yield row[1:]
            return
        except sqlite3.DatabaseError:
            # A scan may fail on the row after the last one it delivered: from where reads
            # work again, take one row alone, then scan on.
            nxt = _skip(db, table, at)
            row = None if nxt is None else _first(db, table, nxt)
            if row is None:
                return
            at = row[0] + 1
            yield row[1:]


def _batch_ok(agent_id: str, seq: Any, raw: Any) -> bool:
    if not isinstance(raw, bytes):
        return False
    try:
        b = decode_body(open_envelope(raw)[0])
    except WireError:
        return False
    return b.seq == seq and b.agent == agent_id


def _keep(table: str, row: tuple[Any, ...], agent_id: str, known: dict[str, set[int]]) -> bool:
    """Whether a readable row is sound: identities parse, batches decode as themselves,
    samples name a kept source and metric. Sources and metrics kept are added to `known`."""
    if table in known:
        try:
            json.loads(row[1])
        except (TypeError, ValueError):
            return False
        known[table].add(row[0])
        return True
    if table in ("batches", "rejected"):
        return _batch_ok(agent_id, row[0], row[1])
    if table == "samples":
        return row[2] in known["sources"] and row[3] in known["metrics"]
    return True


def _copy(old: sqlite3.Connection, new: sqlite3.Connection, agent_id: str) -> dict[str, Any]:
    """Copy the readable, consistent rows of `old` into `new`; return what was kept."""
    kept: dict[str, Any] = {t: 0 for t in TABLES if t != "state"}
    state: dict[str, Any] = {}
    known: dict[str, set[int]] = {"sources": set(), "metrics": set()}
    last_raw: dict[int, bytes] = {}
    for table in TABLES:
        rows = []
        for row in readable_rows(old, table):
            if table == "state":
                state[str(row[0])] = row[1]
                continue
            if not _keep(table, row, agent_id, known):
                continue
            if table == "batches":
                last_raw = {row[0]: row[1]} if row[0] > max(last_raw, default=0) else last_raw
            rows.append(row)
        marks = ",".join("?" * len(TABLES[table].split(",")))
        new.executemany(f"INSERT OR IGNORE INTO {table} VALUES ({marks})", rows)
        kept[table] = len(rows)
    # The chain goes on from the damaged file's state, or else from its last batch.
    seqs = [v for k, v in state.items() if k == "last_seq" and isinstance(v, int)]
    for q in ("SELECT MAX(seq) FROM batches", "SELECT MAX(last_seq) FROM dropped",
              "SELECT MAX(seq) FROM rejected"):
        seqs.append(new.execute(q).fetchone()[0] or 0)
    last_seq = max(seqs, default=0)
    last_hash = state.get("last_hash") if state.get("last_seq") == last_seq else None
    if last_hash is None and last_seq in last_raw:
        last_hash = batch_hash(open_envelope(last_raw[last_seq])[0])
    if last_seq:
        new.executemany(
            "INSERT OR REPLACE INTO state(k, v) VALUES (?, ?)",
            [("last_seq", last_seq), ("last_hash", last_hash or GENESIS)],
        )
    kept["last_seq"] = last_seq
    kept["chain"] = "continues" if last_hash is not None or not last_seq else "restarts"
    return kept


def salvage(aside: Path, new: sqlite3.Connection, agent_id: str, reason: str) -> None:
    """Copy what is readable of the damaged buffer moved to `aside` into `new`; log it."""
    kept: dict[str, Any] = {}
    try:
        old = sqlite3.connect(aside, isolation_level=None)
        # Otherwise SQLite refuses every read of a file shorter than its header says.
        old.execute("PRAGMA writable_schema=ON")
    except sqlite3.Error as exc:
        reason += f"; nothing readable: {exc}"
    else:
        try:
            new.execute("BEGIN IMMEDIATE")
            kept = _copy(old, new, agent_id)
            new.execute("COMMIT")
        except sqlite3.Error as exc:  # unreadable beyond the row level: start empty
            if new.in_transaction:
                new.execute("ROLLBACK")
            reason += f"; nothing salvaged: {exc}"
            kept = {}
        finally:
            old.close()
    log.error(
        "buffer file damaged: moved aside, its readable batches and samples salvaged into a"
        " new buffer",
        kept_as=str(aside), reason=reason, **kept,
    )
