"""The central's store through the collector's dialect layer: one set of queries on SQLite
and PostgreSQL (`--store`), and a central SQLite file from before the migrations opening."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

from dcmeter.collectors.central.central_store import CentralStore, Gauge, PulledWindow
from dcmeter.collectors.web.auth import create_token

# The central's store as the code before issue 20 made it (collectors/central/central_store.py
# at 7272825): raw sqlite3, WAL, this schema by executescript, no schema_version table; copied
# verbatim so the test keeps meaning what an old file on a site's disk holds.
OLD_SCHEMA = """
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

CREATE TABLE IF NOT EXISTS tokens (
    name TEXT PRIMARY KEY, hash TEXT UNIQUE NOT NULL, role TEXT NOT NULL,
    created_ns INTEGER NOT NULL);
"""

NS = 1_700_000_000_000_000_000  # a pull time, ns (2023-11-14T22:13:20Z)


def window(site: str, wid: int, state: str, result: dict[str, object] | None) -> PulledWindow:
    return PulledWindow(site, wid, "general", state, "2023-11-14T21:00:00Z",
                        None if state == "open" else "2023-11-14T22:00:00Z", None, result, NS)


def test_an_old_sqlite_central_file_opens_and_migrates(tmp_path: Path) -> None:
    path = tmp_path / "central.sqlite"
    old = sqlite3.connect(path, isolation_level=None)
    old.execute("PRAGMA journal_mode=WAL")
    old.executescript(OLD_SCHEMA)
    old.execute('INSERT OR REPLACE INTO windows(site, id, kind, state, start, "end", note,'
                " result, pulled_ns) VALUES (?,?,?,?,?,?,?,?,?)",
                ("a", 7, "general", "closed", "s", "e", "old", '{"pue": 1.5}', NS))
    old.execute("INSERT OR REPLACE INTO gauges VALUES (?,?,?,?,?)",
                ("a", "dcmeter_pue_last_hour", "{}", 1.25, NS))
    old.execute("INSERT INTO sites VALUES ('a', 'http://a', ?, NULL, 0, NULL)", (NS,))
    old.execute("INSERT INTO tokens VALUES ('t1', 'ab12', 'reader', 5)")
    old.close()

    store = CentralStore(path)
    try:
        got = store.window("a", 7)
        assert got is not None and (got.note, got.result) == ("old", {"pue": 1.5})
        assert store.gauges() == [("a", Gauge("dcmeter_pue_last_hour", {}, 1.25), NS)]
        site = store.site("a")
        assert site is not None and (site.url, site.last_ok_ns, site.failures) == (
            "http://a", NS, 0)
        assert [t.name for t in store.tokens()] == ["t1"]
        # The file is now at version 1, and the old rows are still there to be updated.
        store.save_pull("a", "http://a", [window("a", 7, "closed", {"pue": 1.4})], [], NS + 1)
        assert store.window("a", 7) == window("a", 7, "closed", {"pue": 1.4})
        assert store.gauges() == []
    finally:
        store.close()
    check = sqlite3.connect(path)
    assert check.execute("SELECT version, note FROM schema_version").fetchall() == [
        (1, "central: windows, gauges, sites, tokens")]
    check.close()
    CentralStore(path).close()  # reopening a migrated file is a no-op


def test_pulls_failures_and_tokens_on_the_store_backend(
    store_location: Callable[[str], Path | str]
) -> None:
    store = CentralStore(store_location("central"))
    try:
        g1 = [Gauge("dcmeter_windows_open", {"kind": "general"}, 2.0),
              Gauge("dcmeter_pue_last_hour", {}, 1.5)]
        store.save_pull("site-a", "http://a", [window("site-a", 1, "closed", {"pue": 1.5}),
                                                window("site-a", 2, "open", None)], g1, NS)
        store.save_pull("site_b", "http://b", [window("site_b", 1, "open", {"x": [1, 2]})],
                        [Gauge("dcmeter_pue_last_hour", {}, 2.0)], NS)
        # By site (bytes: "-" 0x2D before "_" 0x5F) then newest first, on both engines.
        assert [(w.site, w.id) for w in store.windows()] == [
            ("site-a", 2), ("site-a", 1), ("site_b", 1)]
        assert store.window("site_b", 1) == window("site_b", 1, "open", {"x": [1, 2]})
        # A second pull replaces the window (upsert) and the site's gauge set.
        store.save_pull("site-a", "http://a2", [window("site-a", 2, "closed", {"pue": 1.6})],
                        [Gauge("dcmeter_pue_last_hour", {}, 1.6)], NS + 10)
        assert store.window("site-a", 2) == window("site-a", 2, "closed", {"pue": 1.6})
        assert store.gauges() == [
            ("site-a", Gauge("dcmeter_pue_last_hour", {}, 1.6), NS + 10),
            ("site_b", Gauge("dcmeter_pue_last_hour", {}, 2.0), NS)]
        # Two failures: counted, down since the first, the last error kept; then back up.
        store.record_failure("site_b", "http://b", "unreachable: one", NS + 20)
        state = store.record_failure("site_b", "http://b", "unreachable: two", NS + 30)
        assert (state.failures, state.down_since_ns, state.last_error, state.last_ok_ns) == (
            2, NS + 20, "unreachable: two", NS)
        store.save_pull("site_b", "http://b", [], [], NS + 40)
        back = store.site("site_b")
        assert back is not None and (back.failures, back.down_since_ns, back.last_ok_ns) == (
            0, None, NS + 40)
        # A site never pulled before that fails: one failure, never up.
        first = store.record_failure("c", "http://c", "x", NS + 50)
        assert (first.failures, first.last_ok_ns, first.down_since_ns) == (1, None, NS + 50)
        token = create_token(store, "reader")
        assert [t.role for t in store.tokens()] == ["reader"] and token[1].startswith("dcm_")
        assert store.revoke_token(store.tokens()[0].name) and store.tokens() == []
    finally:
        store.close()
    again = CentralStore(store_location("central"))  # reopens: migrations are a no-op
    try:
        assert len(again.windows()) == 3
    finally:
        again.close()
