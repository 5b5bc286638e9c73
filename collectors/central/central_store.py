"""The central's own store: windows and gauges pulled from site collectors, site health, tokens.

A SQLite file or a PostgreSQL database, through the collector's dialect layer
(collectors/storage/db.py: `connect`, `Connection`, `migrate`): one store mechanism, its schema
as migrations, every query with `?` placeholders in the subset both engines read alike; every
write one transaction. The token methods have the same signatures as
`dcmeter.collectors.storage.store.Store`'s, which is all `dcmeter.collectors.web.auth` uses.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dcmeter.collectors.storage import db as dbm
from dcmeter.collectors.storage.db import Connection, Migration
from dcmeter.collectors.storage.token_table import TOKENS_SCHEMA, TokenTable

# The central's first tables, in SQLite's words (db.py translates them for PostgreSQL). They
# are the tables central files had before `schema_version` (version 0): CREATE … IF NOT EXISTS
# makes the first migration a no-op on such a file, which then only gets its version recorded.
SCHEMA = """
CREATE TABLE IF NOT EXISTS windows (
    site TEXT NOT NULL, id INTEGER NOT NULL, kind TEXT NOT NULL, state TEXT NOT NULL,
    start TEXT NOT NULL, "end" TEXT, note TEXT, result TEXT, pulled_ns INTEGER NOT NULL,
    PRIMARY KEY (site, id));
CREATE TABLE IF NOT EXISTS gauges (
    site TEXT NOT NULL, name TEXT NOT NULL, labels TEXT NOT NULL, value REAL NOT NULL,
    pulled_ns INTEGER NOT NULL, PRIMARY KEY (site, name, labels));
CREATE TABLE IF NOT EXISTS sites (
    site TEXT PRIMARY KEY, url TEXT NOT NULL, last_ok_ns INTEGER, last_error TEXT,
    failures INTEGER NOT NULL DEFAULT 0, down_since_ns INTEGER);
"""


def _first_tables(db: Connection) -> None:
    db.ddl(SCHEMA + TOKENS_SCHEMA)


# The central store's schema history (db.migrate); a new step is appended with the next version.
MIGRATIONS = (Migration(1, "central: windows, gauges, sites, tokens", _first_tables),)


@dataclass(frozen=True, slots=True)
class PulledWindow:
    """A window as pulled from a site: its summary, its result (JSON object) and when."""

    site: str
    id: int
    kind: str
    state: str
    start: str
    end: str | None
    note: str | None
    result: dict[str, Any] | None
    pulled_ns: int

    def summary(self) -> dict[str, Any]:
        """The site collector's list object plus `site`."""
        return {"site": self.site, "id": self.id, "kind": self.kind, "state": self.state,
                "start": self.start, "end": self.end, "note": self.note}


@dataclass(frozen=True, slots=True)
class SiteState:
    """What the central knows of a site's health; `failures` counts consecutive failed pulls."""

    site: str
    url: str
    last_ok_ns: int | None
    last_error: str | None
    failures: int
    down_since_ns: int | None


@dataclass(frozen=True, slots=True)
class Gauge:
    """One pulled gauge sample: metric name, labels as the site sent them, value."""

    name: str
    labels: dict[str, str]
    value: float


class CentralStore(TokenTable):
    """The central's database: a SQLite file (WAL) or PostgreSQL, one connection under a lock."""

    def __init__(self, location: Path | str) -> None:
        """Open (or create) the store at `location`, a SQLite file path or a
        `postgresql://user@host:port/db` URL, and migrate it to the latest schema.
        StoreError (a ConfigError naming the location, password masked) if it cannot."""
        self._db: Connection = dbm.open_migrated(location, MIGRATIONS)
        self.dialect = self._db.dialect
        self._lock = threading.Lock()

    def close(self) -> None:
        """Close the database."""
        self._db.close()

    @contextmanager
    def _tx(self) -> Iterator[Connection]:
        with self._lock, self._db.transaction():
            yield self._db

    # windows

    def windows(self, site: str | None = None) -> list[PulledWindow]:
        """Stored windows, by site then newest first (optionally of one site)."""
        with self._lock:
            rows = self._db.execute(
                'SELECT site, id, kind, state, start, "end", note, result, pulled_ns FROM windows'
                + (" WHERE site = ?" if site is not None else ""),
                (site,) if site is not None else (),
            ).fetchall()
        # Sorted here, not by ORDER BY: PostgreSQL orders text by the database's collation
        # (en_US puts "site_b" before "site-a"), SQLite by bytes; the API promises one order.
        return sorted((_window(r) for r in rows), key=lambda w: (w.site, -w.id))

    def window(self, site: str, wid: int) -> PulledWindow | None:
        """One stored window, or None."""
        with self._lock:
            row = self._db.execute(
                'SELECT site, id, kind, state, start, "end", note, result, pulled_ns FROM windows'
                " WHERE site = ? AND id = ?", (site, wid),
            ).fetchone()
        return None if row is None else _window(row)

    def save_pull(
        self, site: str, url: str, windows: Sequence[PulledWindow], gauges: Sequence[Gauge],
        now_ns: int,
    ) -> None:
        """Store one successful pull of a site in one transaction: the windows fetched, the
        site's gauges (replacing the previous set: a gauge the site no longer serves goes),
        and the site marked up."""
        with self._tx() as db:
            db.executemany(
                'INSERT INTO windows(site, id, kind, state, start, "end", note, result,'
                " pulled_ns) VALUES (?,?,?,?,?,?,?,?,?) ON CONFLICT(site, id) DO UPDATE SET"
                ' kind = excluded.kind, state = excluded.state, start = excluded.start,'
                ' "end" = excluded."end", note = excluded.note, result = excluded.result,'
                " pulled_ns = excluded.pulled_ns",
                [(w.site, w.id, w.kind, w.state, w.start, w.end, w.note,
                  None if w.result is None else json.dumps(w.result), w.pulled_ns)
                 for w in windows],
            )
            db.execute("DELETE FROM gauges WHERE site = ?", (site,))
            # The last of two samples with one name and kept label set wins (as INSERT OR
            # REPLACE did), in the words both engines read.
            db.executemany(
                "INSERT INTO gauges VALUES (?,?,?,?,?) ON CONFLICT(site, name, labels)"
                " DO UPDATE SET value = excluded.value, pulled_ns = excluded.pulled_ns",
                [(site, g.name, json.dumps(g.labels, sort_keys=True), g.value, now_ns)
                 for g in gauges],
            )
            db.execute(
                "INSERT INTO sites(site, url, last_ok_ns, last_error, failures, down_since_ns)"
                " VALUES (?,?,?,NULL,0,NULL) ON CONFLICT(site) DO UPDATE SET url = excluded.url,"
                " last_ok_ns = excluded.last_ok_ns, last_error = NULL, failures = 0,"
                " down_since_ns = NULL",
                (site, url, now_ns),
            )

    def record_failure(self, site: str, url: str, error: str, now_ns: int) -> SiteState:
        """Count one failed pull of a site; the first of a run sets `down_since`."""
        with self._tx() as db:
            db.execute(
                "INSERT INTO sites(site, url, last_ok_ns, last_error, failures, down_since_ns)"
                " VALUES (?,?,NULL,?,1,?) ON CONFLICT(site) DO UPDATE SET url = excluded.url,"
                " last_error = excluded.last_error, failures = sites.failures + 1,"
                " down_since_ns = COALESCE(sites.down_since_ns, excluded.down_since_ns)",
                (site, url, error, now_ns),
            )
        state = self.site(site)
        assert state is not None
        return state

    def site(self, site: str) -> SiteState | None:
        """A site's health, or None if it was never pulled."""
        with self._lock:
            row = self._db.execute(
                "SELECT site, url, last_ok_ns, last_error, failures, down_since_ns FROM sites"
                " WHERE site = ?", (site,),
            ).fetchone()
        return None if row is None else SiteState(*row)

    def gauges(self) -> list[tuple[str, Gauge, int]]:
        """Every stored gauge as (site, gauge, pulled_ns), by name, site and labels."""
        with self._lock:
            rows = self._db.execute(
                "SELECT site, name, labels, value, pulled_ns FROM gauges"
            ).fetchall()
        rows.sort(key=lambda r: (r[1], r[0], r[2]))  # in Python: one order on both engines
        return [(s, Gauge(n, json.loads(lb), float(v)), int(t)) for s, n, lb, v, t in rows]


def _window(row: tuple[Any, ...]) -> PulledWindow:
    site, wid, kind, state, start, end, note, result, pulled = row
    return PulledWindow(site, wid, kind, state, start, end, note,
                        None if result is None else json.loads(result), pulled)
