"""The gauge folds of general windows, kept by the store as batches arrive.

For every general window still folding, each `cpu_util_pct` series gets a `GaugeFold`
(collectors/evaluation/gauge_fold.py) fed the samples the raw path would read for the
window (its span ± the margin); `Store.insert_batch` calls `fold_rows` in its transaction
and the changed states are written to the `window_folds` table there. collectors/results/windows.py
reads them through `Store.window_folds`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import numpy as np

from dcmeter.collectors.evaluation.gauge_fold import GaugeFold
from dcmeter.collectors.evaluation.general import A5_MAX_INTERVAL_S
from dcmeter.collectors.evaluation.loads import UTIL_UNITS
from dcmeter.collectors.storage.sample_reads import first_samples

if TYPE_CHECKING:
    from dcmeter.collectors.storage.db import Connection
    from dcmeter.collectors.storage.records import Window
# The metric folded; how long a closed window's folds stay in memory, beyond the margin,
# after the first batch received once it closed (a sample for it arriving later drops its
# fold: that series is then read raw; on start, a closed window stays when the last batch
# was received before its end + margin + this); how many stored samples a new fold may be
# seeded with (more: the window started in the past, and the fold is left to the raw path).
FOLD_METRIC = "cpu_util_pct"
FOLD_KEEP_NS = 3600 * 10**9
FOLD_SEED_LIMIT = 100
# A fold's state, written over the one stored (an upsert both SQLite and PostgreSQL read):
# `packed` (GaugeFold.to_packed, msgpack), `state` '' (JSON text in rows written before
# schema step 15, still read), `gen` the writer's store generation (generation.py: another
# replica re-reads only the rows written since it last wrote; SQLite 0).
FOLD_COLUMNS = "window_folds(window_id, series_id, state, gen, packed)"
ON_CONFLICT = (
    " ON CONFLICT (window_id, series_id)"
    " DO UPDATE SET state = excluded.state, gen = excluded.gen, packed = excluded.packed"
)
UPSERT_FOLD = f"INSERT INTO {FOLD_COLUMNS} VALUES (?,?,'',?,?)" + ON_CONFLICT
# PostgreSQL, many folds: one statement over two arrays (ids, packed states), one round trip.
UPSERT_FOLDS_PG = (
    f"INSERT INTO {FOLD_COLUMNS} SELECT ?, u.s, '', ?, u.p"
    " FROM unnest(?::bigint[], ?::bytea[]) AS u(s, p)" + ON_CONFLICT
)
# Deferred write-back (SQLite: one collector per file, its memory is the folds' truth): the
# changed folds are written at most this often, s, at a window's close and at the store's
# close, each time with the window's mark: the newest batch (rowid) the stored states have
# seen. On start, a window whose mark is behind the newest batch (a crash in between) has
# its folds dropped: its series are read raw, which gives the same result, slower.
FOLD_FLUSH_S = 10.0
MARKS_SCHEMA = """
CREATE TABLE IF NOT EXISTS fold_marks (
    window_id INTEGER NOT NULL PRIMARY KEY, through_rowid INTEGER NOT NULL);
"""
UPSERT_MARK = (
    "INSERT INTO fold_marks VALUES (?,?) ON CONFLICT (window_id)"
    " DO UPDATE SET through_rowid = excluded.through_rowid"
)


def add_fold_marks(db: Connection) -> None:
    """Schema step 14: `fold_marks`, how far each window's stored folds are current."""
    db.ddl(MARKS_SCHEMA)


def add_fold_columns(db: Connection) -> None:
    """Schema step 15 (with generation.add_change_gens): `window_folds.gen` (0 for rows
    written before) and `window_folds.packed` (NULL: read `state`'s JSON). Idempotent."""
    have = db.columns("window_folds")
    if "gen" not in have:
        db.ddl("ALTER TABLE window_folds ADD COLUMN gen INTEGER NOT NULL DEFAULT 0;")
    if "packed" not in have:
        db.ddl("ALTER TABLE window_folds ADD COLUMN packed BLOB;")


def fold_of(state: str, packed: bytes | None) -> GaugeFold:
    """A stored fold: its packed bytes, or (rows before schema step 15) its JSON state."""
    if packed is not None:
        return GaugeFold.from_packed(bytes(packed))
    return GaugeFold.from_state(json.loads(state))


def ns_s(ts_ns: int) -> float:
    """Epoch ns to s exactly as `Store.series` converts them (SQLite's truncating / and %)."""
    q, r = divmod(abs(ts_ns), 10**9)
    if ts_ns < 0:
        q, r = -q, -r
    return float(q) + float(r) / 1e9


class WindowFolds:
    """The folds in memory, by window and series id; every method runs under the store's
    lock, and those given `db` inside its transaction."""

    def __init__(self, gap_s: float, defer: bool = False,
                 clock: Callable[[], float] = time.monotonic) -> None:
        """`gap_s`: the site's max_gap_s; `defer`: write the folds back every FOLD_FLUSH_S
        (a store only one process writes), else in every batch's transaction."""
        self.defer, self.clock = defer, clock
        self.dirty: dict[int, set[int]] = {}  # window -> series whose fold changed, unwritten
        self.flushed = clock()
        self.margin_s = gap_s
        self.interval_s = min(gap_s, A5_MAX_INTERVAL_S)
        self.scale: dict[int, float | None] = {}
        self.agent: dict[int, str] = {}
        self.windows: dict[int, Window] = {}
        self.folds: dict[int, dict[int, GaugeFold]] = {}
        # Folds another replica wrote, read by `catch_up` and unpacked only when used (a
        # fold rewritten by several replicas in turn is unpacked once, not once each).
        self.unread: dict[int, dict[int, tuple[str, bytes | None]]] = {}
        self.gone: dict[int, tuple[int, int]] = {}  # evicted: window -> its span, ns
        self.until: dict[int, int] = {}  # closed: evicted after this receipt time, ns
        # The store generation of the write in progress (written with each fold; SQLite 0),
        # and whether it deleted stored folds (other replicas then re-read all: generation.py).
        self.gen = 0
        self.reshaped = False

    def load(self, db: Connection, general: Iterable[Window]) -> None:
        """Hold in memory the folds of the general windows still folding (from the table)."""
        self.windows, self.folds, self.gone, self.until = {}, {}, {}, {}
        self.unread = {}
        self.dirty = {}
        last_rx = db.execute("SELECT MAX(received_ns) FROM batches").fetchone()[0]
        newest = db.execute("SELECT MAX(rowid) FROM batches").fetchone()[0]
        marks = dict(db.execute("SELECT window_id, through_rowid FROM fold_marks").fetchall())
        for w in general:
            if w.id in marks and newest is not None and marks[w.id] < newest:
                # Written back before batches that moved them: read raw from now on.
                db.execute("DELETE FROM window_folds WHERE window_id = ?", (w.id,))
                db.execute("DELETE FROM fold_marks WHERE window_id = ?", (w.id,))
            if self._live(w, last_rx):
                self.windows[w.id] = w
                self.folds[w.id] = {
                    int(sid): fold_of(state, packed)
                    for sid, state, packed in db.execute(
                        "SELECT series_id, state, packed FROM window_folds WHERE window_id = ?",
                        (w.id,),
                    )
                }
            else:
                self._evict(w)

    def catch_up(self, db: Connection, since: int) -> int:
        """Read the folds of the windows held that other replicas wrote after generation
        `since` (their windows unchanged: else `load`); return how many."""
        if not self.windows:
            return 0
        wids = sorted(self.windows)
        rows = db.execute(
            "SELECT window_id, series_id, state, packed FROM window_folds WHERE window_id IN ("
            + ",".join("?" * len(wids)) + ") AND gen > ?", (*wids, since)).fetchall()
        for wid, sid, state, packed in rows:
            self.unread.setdefault(int(wid), {})[int(sid)] = (state, packed)
        return len(rows)

    def _read(self, wid: int, sids: Iterable[int] | None = None) -> dict[int, GaugeFold]:
        """The folds of window `wid` held, those of `sids` (None: all) read from what
        `catch_up` left unread first."""
        folds = self.folds[wid]
        unread = self.unread.get(wid)
        if unread:
            for sid in list(unread) if sids is None else [s for s in sids if s in unread]:
                folds[sid] = fold_of(*unread.pop(sid))
        return folds

    def opened(self, w: Window) -> None:
        """Start folding for a new general window."""
        self.windows[w.id] = w
        self.folds[w.id] = {}
        self.unread.pop(w.id, None)

    def closed(self, db: Connection, wid: int, end_ns: int) -> None:
        """Close the folds of a window that was just closed at `end_ns`."""
        if wid not in self.windows:
            return
        self.windows[wid] = replace(self.windows[wid], end_ns=end_ns)
        for fold in self._read(wid).values():
            fold.close(end_ns / 1e9)
        self.dirty[wid] = set(self.folds[wid])
        self.flush(db, [wid])

    def flush(self, db: Connection, wids: Iterable[int] | None = None) -> None:
        """Write the changed folds of `wids` (None: every window held, changed or not) and
        their marks: every fold held is then as current as the newest batch."""
        newest = db.execute("SELECT MAX(rowid) FROM batches").fetchone()[0] if self.defer else None
        for wid in sorted({*self.dirty, *self.windows}) if wids is None else list(wids):
            sids = self.dirty.pop(wid, set())
            folds = self.folds.get(wid, {})
            done = [sid for sid in sorted(sids) if sid in folds]
            if db.dialect == "postgresql" and len(done) > 1:
                # One statement over two arrays: a thousand upserts in one round trip, where
                # executemany sends a statement per row.
                db.execute(UPSERT_FOLDS_PG, (wid, self.gen, done,
                                             [folds[sid].to_packed() for sid in done]))
            else:
                db.executemany(UPSERT_FOLD, [(wid, sid, self.gen, folds[sid].to_packed())
                                             for sid in done])
            if newest is not None:
                db.execute(UPSERT_MARK, (wid, newest))
        if wids is None:
            self.flushed = self.clock()

    def copies(self, wid: int) -> dict[int, GaugeFold] | None:
        """Copies of a window's folds held in memory, or None when it is not held."""
        if wid not in self.folds:
            return None
        return {sid: f.copy() for sid, f in self._read(wid).items()}

    def _span(self, w: Window) -> tuple[int, int | None]:
        """The samples (ns) the raw path reads for `w`: its span ± the margin."""
        margin = int(self.margin_s * 1e9)
        return w.start_ns - margin, None if w.end_ns is None else w.end_ns + margin

    def _live(self, w: Window, now_ns: int | None) -> bool:
        _, hi = self._span(w)
        return hi is None or now_ns is None or now_ns <= hi + FOLD_KEEP_NS

    def _evict(self, w: Window) -> None:
        lo, hi = self._span(w)
        self.gone[w.id] = (lo, hi if hi is not None else lo)
        self.windows.pop(w.id, None)
        self.folds.pop(w.id, None)
        self.unread.pop(w.id, None)

    def _scale_of(self, db: Connection, sid: int) -> float | None:
        """The fraction per unit of a series folded (a `cpu_util_pct` gauge), else None."""
        if sid not in self.scale:
            row = db.execute(
                "SELECT metric, kind, unit FROM series WHERE id = ?", (sid,)
            ).fetchone()
            ok = row is not None and row[0] == FOLD_METRIC and row[1] == "gauge"
            self.scale[sid] = UTIL_UNITS.get(row[2].strip().lower()) if ok else None
        return self.scale[sid]

    def folded_positions(self, db: Connection, series: np.ndarray[Any, np.dtype[np.int64]]
                         ) -> np.ndarray[Any, np.dtype[np.intp]]:
        """The positions in a batch's column of series ids of the samples whose series are
        folded (`cpu_util_pct` gauges): the store keeps them per agent layout."""
        ids, where = np.unique(series, return_inverse=True)
        todo = [sid for sid in ids.tolist() if sid not in self.scale]
        for at in range(0, len(todo), 500):  # one query per 500 series, not one each
            chunk = todo[at:at + 500]
            rows = db.execute(
                "SELECT id, metric, kind, unit, agent FROM series WHERE id IN ("
                + ",".join("?" * len(chunk)) + ")", chunk).fetchall()
            for sid, metric, kind, unit, agent in rows:
                ok = metric == FOLD_METRIC and kind == "gauge"
                self.scale[int(sid)] = UTIL_UNITS.get(unit.strip().lower()) if ok else None
                self.agent[int(sid)] = str(agent)  # a new fold's seed is read per agent
        folded = np.array([self._scale_of(db, sid) is not None for sid in ids.tolist()],
                          dtype=bool)
        return np.flatnonzero(folded[where.reshape(-1)])

    def _new_folds(
        self, db: Connection, w: Window, sids: list[int]
    ) -> dict[int, GaugeFold]:
        """Folds of `sids` for `w`, each seeded with its samples already stored in the span
        (before the batch at hand); beyond FOLD_SEED_LIMIT of them it is left to the raw
        path. The stored samples are read for every series of one agent at once."""
        lo, hi = self._span(w)
        agents: dict[str, list[int]] = {}
        for sid in sids:
            agents.setdefault(self._agent_of(db, sid), []).append(sid)
        stored: dict[int, list[tuple[int, float]]] = {}
        for agent, mine in agents.items():
            stored.update(first_samples(db, agent, mine, lo, 2**63 - 1 if hi is None else hi,
                                        FOLD_SEED_LIMIT + 1))
        out = {}
        for sid in sids:
            fold = GaugeFold(w.start_ns / 1e9, None if w.end_ns is None else w.end_ns / 1e9,
                             self.scale[sid] or 1.0, self.interval_s, self.margin_s)
            had = stored.get(sid, [])
            if len(had) > FOLD_SEED_LIMIT:
                fold.from_raw_needed = True
            for ts, value in had if not fold.from_raw_needed else ():
                fold.add(ns_s(ts), value)
            out[sid] = fold
        return out

    def _agent_of(self, db: Connection, sid: int) -> str:
        """The agent of a series (cached: a series never changes agent)."""
        if sid not in self.agent:
            row = db.execute("SELECT agent FROM series WHERE id = ?", (sid,)).fetchone()
            self.agent[sid] = "" if row is None else str(row[0])
        return self.agent[sid]

    def fold_rows(
        self, db: Connection, rows: Sequence[tuple[int, int, float]], received_ns: int
    ) -> None:
        """Fold (series id, ts ns, value) rows, in arrival order, into the gauge folds of the
        general windows whose span holds them; write the changed folds in `db`'s transaction.
        Call it before the rows are stored (a new fold is seeded from the stored samples)."""
        if not self.windows and not self.gone:
            return
        by: dict[int, list[tuple[int, float]]] = {}
        for sid, ts, value in rows:
            if self._scale_of(db, sid) is not None:
                by.setdefault(sid, []).append((ts, value))
        if not by:
            return
        keep_ns = int(self.margin_s * 1e9) + FOLD_KEEP_NS
        for wid, w in list(self.windows.items()):
            if w.end_ns is not None and self.until.setdefault(
                wid, received_ns + keep_ns
            ) < received_ns:
                self.flush(db, [wid])
                # Its folds are final now: no mark (a window without one is current).
                db.execute("DELETE FROM fold_marks WHERE window_id = ?", (wid,))
                self._evict(w)
        for wid, w in self.windows.items():
            lo, hi = self._span(w)
            folds = self._read(wid, by)
            picked = {sid: chosen for sid, pts in by.items() if (chosen := [
                (t, v) for t, v in pts if t >= lo and (hi is None or t <= hi)])}
            folds.update(self._new_folds(db, w, [sid for sid in picked if sid not in folds]))
            for sid, chosen in picked.items():
                fold = folds[sid]
                for t, v in chosen:
                    fold.add(ns_s(t), v)
                self.dirty.setdefault(wid, set()).add(sid)
        late = [(wid, sid) for wid, (lo, hi) in self.gone.items()
                for sid, pts in by.items() if any(lo <= t <= hi for t, _ in pts)]
        db.executemany("DELETE FROM window_folds WHERE window_id = ? AND series_id = ?", late)
        self.reshaped |= bool(late)
        if not self.defer or self.clock() - self.flushed >= FOLD_FLUSH_S:
            self.flush(db)
