"""Frozen results of closed windows: the `window_results` table, one row per revision.

A closed window's result is computed once, when it stops, and kept here with what it was
computed from (the site file's SHA-256, the software) and its plot series and agents' key
fingerprints, so its report is rebuilt byte for byte from this row alone. An engineer's
re-evaluation adds a revision beside the first; no row is ever changed or deleted.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

from dcmeter.collectors.evaluation.jsonl import rfc3339
from dcmeter.collectors.storage.db import Connection

RESULTS_SCHEMA = """
CREATE TABLE IF NOT EXISTS window_results (
    window_id INTEGER NOT NULL REFERENCES windows(id), revision INTEGER NOT NULL,
    computed_ns INTEGER NOT NULL, site_sha256 TEXT, software TEXT NOT NULL,
    reason TEXT NOT NULL, by_name TEXT, result TEXT NOT NULL, series TEXT NOT NULL,
    fingerprints TEXT NOT NULL, PRIMARY KEY (window_id, revision));
"""
# Who closed a window (the token's name) and when the stop was asked for (ns): beside
# `opened_by`. Windows closed before schema version 7 have neither.
CLOSED_COLUMNS = (("closed_by", "TEXT"), ("closed_ns", "INTEGER"))
META = "window_id, revision, computed_ns, site_sha256, software, reason, by_name"


def migrate_results(db: Connection) -> None:
    """Schema version 7: the `window_results` table, windows.closed_by and closed_ns."""
    db.ddl(RESULTS_SCHEMA)
    have = db.columns("windows")
    for name, kind in CLOSED_COLUMNS:
        if name not in have:
            db.ddl(f"ALTER TABLE windows ADD COLUMN {name} {kind}")  # INTEGER: BIGINT on PG


@dataclass(frozen=True, slots=True)
class RevisionInfo:
    """One stored revision of a window's result, without the result itself."""

    window_id: int
    number: int
    computed_ns: int
    site_sha256: str | None  # None: the collector was built without a site file's bytes
    software: str
    reason: str
    by: str | None

    def block(self) -> dict[str, Any]:
        """The result's `revision` block."""
        return {"number": self.number, "computed_at": rfc3339(self.computed_ns / 1e9),
                "site_sha256": self.site_sha256, "software": self.software,
                "reason": self.reason, "by": self.by}


@dataclass(frozen=True, slots=True)
class Revision:
    """A stored revision: the result as computed, its report's plot series (ReportSeries as
    a dict) and the key fingerprints of the agents the report names."""

    info: RevisionInfo
    result: dict[str, Any]
    series: dict[str, Any]
    fingerprints: dict[str, str]

    def body(self) -> dict[str, Any]:
        """The result as every read returns it: as stored, with its `revision` block."""
        return {**self.result, "revision": self.info.block()}


def _info(row: Any) -> RevisionInfo:
    return RevisionInfo(int(row[0]), int(row[1]), int(row[2]), row[3], str(row[4]),
                        str(row[5]), row[6])


class ResultTable:
    """Revision methods for the Store (it has `_db`, `_lock` and a `_tx()` transaction)."""

    _db: Any
    _lock: threading.Lock

    def _tx(self) -> AbstractContextManager[Any]:
        raise NotImplementedError

    def add_revision(
        self, info: RevisionInfo, result: Mapping[str, Any], series: Mapping[str, Any],
        fingerprints: Mapping[str, str], *, first: bool = False,
    ) -> Revision:
        """Store a revision numbered after the window's last (`info.number` is ignored).

        `first`: only if the window has none yet; otherwise the stored revision 1 is
        returned unchanged (a stop and a first read racing to freeze it store one)."""
        text = json.dumps(result, sort_keys=False, allow_nan=True)
        with self._tx() as db:
            (last,) = db.execute(
                "SELECT COALESCE(MAX(revision), 0) FROM window_results WHERE window_id = ?",
                (info.window_id,),
            ).fetchone()
            if first and last:
                found = _load(db, info.window_id, 1)
                assert found is not None
                return found
            number = int(last) + 1
            db.execute(
                "INSERT INTO window_results VALUES (?,?,?,?,?,?,?,?,?,?)",
                (info.window_id, number, info.computed_ns, info.site_sha256, info.software,
                 info.reason, info.by, text, json.dumps(series), json.dumps(fingerprints)),
            )
        stored = RevisionInfo(info.window_id, number, info.computed_ns, info.site_sha256,
                              info.software, info.reason, info.by)
        # What a later read returns: the stored text parsed, not the dict passed in (tuples
        # become lists, keys strings), so the first answer equals every later one.
        return Revision(stored, json.loads(text), json.loads(json.dumps(series)),
                        dict(fingerprints))

    def revision(self, wid: int, number: int | None = None) -> Revision | None:
        """Revision `number` of window `wid` (the latest if None), or None."""
        with self._lock:
            return _load(self._db, wid, number)

    def revisions(self, wid: int) -> list[RevisionInfo]:
        """The revisions of window `wid`, oldest first, without their results."""
        with self._lock:
            rows = self._db.execute(
                f"SELECT {META} FROM window_results WHERE window_id = ? ORDER BY revision",
                (wid,),
            ).fetchall()
        return [_info(r) for r in rows]

    def latest_revisions(self) -> dict[int, int]:
        """The latest revision number of every window that has one."""
        with self._lock:
            rows = self._db.execute(
                "SELECT window_id, MAX(revision) FROM window_results GROUP BY window_id"
            ).fetchall()
        return {int(w): int(n) for w, n in rows}


def _load(db: Any, wid: int, number: int | None) -> Revision | None:
    if number is None:
        row = db.execute(
            f"SELECT {META}, result, series, fingerprints FROM window_results"
            " WHERE window_id = ? ORDER BY revision DESC LIMIT 1", (wid,),
        ).fetchone()
    else:
        row = db.execute(
            f"SELECT {META}, result, series, fingerprints FROM window_results"
            " WHERE window_id = ? AND revision = ?", (wid, number),
        ).fetchone()
    if row is None:
        return None
    return Revision(_info(row), json.loads(row[7]), json.loads(row[8]), json.loads(row[9]))
