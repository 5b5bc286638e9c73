"""A series' identity, its source's metadata over time, and the caps on how many there are.

A series is one quantity of one source of one agent: (agent, source id, metric name, unit,
kind, modulus, metric labels such as a GPU or a port). The source's protocol, address,
labels, accuracy and device identity (what the device says it is: model, serial…) are
**metadata**, not identity: reconfiguring an instrument (a meter's
new address, a better accuracy class) keeps its series and adds a row to `source_meta`
(from the first sample time of the batch that brought the change), and the window result
lists the change (collectors/results/windows.py). Caps bound what one agent can make the collector
keep and read: `max_series_per_agent` and `max_series_per_source` (collector.toml); a batch
that would pass one is refused whole with 422 "series_limit".
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from dcmeter.agent.samples import SourceInfo
from dcmeter.agent.wire import Batch
from dcmeter.collectors.storage.db import Connection
from dcmeter.collectors.storage.ownership import Refused

SOURCE_META_SCHEMA = """
CREATE TABLE IF NOT EXISTS source_meta (
    agent TEXT NOT NULL, source TEXT NOT NULL, from_ts INTEGER NOT NULL,
    protocol TEXT NOT NULL, address TEXT NOT NULL, labels TEXT NOT NULL, accuracy REAL,
    received_ns INTEGER NOT NULL{rowid});
CREATE INDEX IF NOT EXISTS source_meta_source ON source_meta(source, from_ts);
"""

# Metric labels that carried a changing value (an old agent's DCMI `period_s`): never part
# of a series' identity, dropped at ingest (value_labels.py, docs/wire-format.md).
VALUE_LABELS = frozenset({"period_s"})

# (protocol, address, labels as sorted JSON, accuracy, device as sorted JSON)
Meta = tuple[str, str, str, float | None, str]
META_NAMES = ("protocol", "address", "labels", "accuracy", "device")


@dataclass(frozen=True, slots=True)
class SeriesLimits:
    """How many series one agent, and one source of an agent, may have."""

    per_agent: int = 50_000
    per_source: int = 4_096


def series_key(
    agent: str, source: str, name: str, unit: str, kind: str, modulus: float | None,
    labels: str,
) -> str:
    """The unique key of a series: its identity, never its source's metadata."""
    return json.dumps([agent, source, name, unit, kind, modulus, labels])


def identity_labels(labels: Mapping[str, str]) -> Mapping[str, str]:
    """Return a metric's labels without the value labels (the same mapping when it has none:
    the common case costs no copy)."""
    if VALUE_LABELS.isdisjoint(labels):
        return labels
    return {k: v for k, v in labels.items() if k not in VALUE_LABELS}


def meta_of(src: SourceInfo) -> Meta:
    """A source's metadata as stored."""
    return (src.protocol, src.address, json.dumps(dict(src.labels), sort_keys=True),
            src.accuracy, json.dumps(dict(src.device), sort_keys=True))


class SeriesTable:
    """The `series` table's keys, per-source metadata and counts, kept in memory."""

    def __init__(self, limits: SeriesLimits | None = None) -> None:
        self.limits = limits or SeriesLimits()
        self.ids: dict[str, int] = {}
        self.meta: dict[tuple[str, str], Meta] = {}
        self.per_agent: Counter[str] = Counter()
        self.per_source: Counter[tuple[str, str]] = Counter()
        self._last_id = 0  # the newest series id read
        self._last_meta = 0  # the newest source_meta row read

    def load(self, db: Connection) -> None:
        """Read the table again (at start, and after a failed transaction)."""
        self.ids, self.meta = {}, {}
        self.per_agent, self.per_source = Counter(), Counter()
        self._last_id = 0
        self._last_meta = int(db.execute(
            "SELECT COALESCE(MAX(rowid), 0) FROM source_meta").fetchone()[0])
        self._add_rows(db)

    def catch_up(self, db: Connection) -> None:
        """Read what other replicas wrote since (store.py `_synced`, under the store's
        write lock): the series made after the last one known (ids grow, and writes are one
        at a time, so they commit in id order) and the metadata recorded since."""
        self._add_rows(db)
        for agent, source, *meta in db.execute(
            "SELECT agent, source, protocol, address, labels, accuracy, device, rowid"
            " FROM source_meta WHERE rowid > ? ORDER BY rowid", (self._last_meta,)
        ):
            self.meta[(agent, source)] = tuple(meta[:5])
            self._last_meta = int(meta[5])

    def _add_rows(self, db: Connection) -> None:
        for sid, key, agent, source, proto, addr, labels, acc, device in db.execute(
            "SELECT id, key, agent, source, protocol, address, source_labels, accuracy,"
            " source_device FROM series WHERE id > ? ORDER BY id", (self._last_id,)
        ):
            self.ids[str(key)] = int(sid)
            self.meta[(agent, source)] = (proto, addr, labels, acc, device)
            self.per_agent[agent] += 1
            self.per_source[(agent, source)] += 1
            self._last_id = int(sid)

    def ids_of(
        self, db: Connection, batch: Batch, pairs: Sequence[tuple[int, int]], received_ns: int
    ) -> list[int]:
        """The series ids of (source index, metric index) pairs of `batch`; those not stored
        yet are inserted, and a source whose metadata changed is updated and recorded.
        Refused (422 series_limit) before any write if new series would pass a cap."""
        keyed: list[tuple[str, tuple[Any, ...]]] = []
        # Each source's metadata and each metric's labels as JSON once, not once a pair.
        metas: dict[int, Meta] = {}
        texts: dict[int, str] = {}
        for s, m in pairs:
            src, met = batch.sources[s], batch.metrics[m]
            spec = met.spec
            if m not in texts:
                texts[m] = json.dumps(dict(identity_labels(met.labels)), sort_keys=True)
            labels = texts[m]
            if s not in metas:
                metas[s] = meta_of(src)
            meta = metas[s]
            row = (batch.agent, src.id, *meta, spec.name, spec.unit, spec.kind, spec.modulus,
                   labels)
            keyed.append((series_key(batch.agent, src.id, spec.name, spec.unit, spec.kind,
                                     spec.modulus, labels), row))
        new = list({key: (key, *row) for key, row in keyed if key not in self.ids}.values())
        self._check_caps(batch.agent, [r[2] for r in new])
        self._record_meta(db, batch, received_ns)
        made = (_insert_pg(db, new) if db.dialect == "postgresql" and len(new) > 1 else
                db.insert_returning_ids(f"INSERT INTO series({SERIES_COLUMNS})"
                                        " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)", new))
        self.ids.update(zip((r[0] for r in new), made, strict=True))
        self._last_id = max([self._last_id, *made])
        for r in new:
            self.per_agent[batch.agent] += 1
            self.per_source[(batch.agent, r[2])] += 1
        return [self.ids[key] for key, _ in keyed]

    def _check_caps(self, agent: str, new_sources: Sequence[str]) -> None:
        if not new_sources:
            return
        lim = self.limits
        if self.per_agent[agent] + len(new_sources) > lim.per_agent:
            raise Refused(
                422, "series_limit",
                f"agent {agent!r} has {self.per_agent[agent]} series; this batch adds"
                f" {len(new_sources)}, over max_series_per_agent = {lim.per_agent}"
                " (collector.toml [collector]); check the agent's sources and labels",
            )
        for source, n in Counter(new_sources).items():
            if self.per_source[(agent, source)] + n > lim.per_source:
                raise Refused(
                    422, "series_limit",
                    f"source {source!r} of agent {agent!r} has"
                    f" {self.per_source[(agent, source)]} series; this batch adds {n}, over"
                    f" max_series_per_source = {lim.per_source} (collector.toml [collector])",
                )

    def _record_meta(self, db: Connection, batch: Batch, received_ns: int) -> None:
        """Update and record every source of `batch` whose metadata differs from the
        stored one (the first time a source is seen, its metadata is recorded too)."""
        first_ts = min(batch.ts) if len(batch) else batch.sealed_ns
        recorded = []  # one executemany (pipelined on PostgreSQL), not a round trip each
        for src in batch.sources:
            meta, pair = meta_of(src), (batch.agent, src.id)
            known = self.meta.get(pair)
            if known == meta:
                continue
            recorded.append((batch.agent, src.id, first_ts, *meta, received_ns))
            if known is not None:
                db.execute(
                    "UPDATE series SET protocol = ?, address = ?, source_labels = ?,"
                    " accuracy = ?, source_device = ? WHERE agent = ? AND source = ?",
                    (*meta, *pair),
                )
            self.meta[pair] = meta
        db.executemany(
            "INSERT INTO source_meta(agent, source, from_ts, protocol, address, labels,"
            " accuracy, device, received_ns) VALUES (?,?,?,?,?,?,?,?,?)", recorded)


SERIES_COLUMNS = ("key, agent, source, protocol, address, source_labels, accuracy,"
                  " source_device, metric, unit, kind, modulus, labels")
# Each column's type, for one INSERT … SELECT over a JSON array of rows (PostgreSQL).
_PG_TYPES = ("text", "text", "text", "text", "text", "text", "float8", "text", "text", "text",
             "text", "float8", "text")
_PG_INSERT = (
    f"INSERT INTO series({SERIES_COLUMNS}) SELECT "
    + ", ".join(f"(r->>{i})::{t}" for i, t in enumerate(_PG_TYPES))
    + " FROM json_array_elements(?::json) r RETURNING id, key"
)


def _insert_pg(db: Connection, rows: Sequence[tuple[Any, ...]]) -> list[int]:
    """PostgreSQL: insert series rows (key first) in one statement over one JSON text of
    them (a batch's 10,000 new series in one round trip, where a pipelined executemany
    sends a statement each, and text arrays are escaped value by value in Python); their
    ids in the order of `rows`, matched by the unique key. (`json`, not `jsonb`: each value
    keeps its text; a float8 goes through its shortest repr, which reads back exactly.)"""
    got = {str(k): int(i) for i, k in db.execute(_PG_INSERT, (json.dumps(rows),)).fetchall()}
    return [got[str(r[0])] for r in rows]


def source_changes(
    db: Connection, sources: Sequence[str], t0_ns: int, t1_ns: int
) -> list[dict[str, Any]]:
    """Metadata changes of `sources` that took effect in [t0, t1] (not first sightings)."""
    if not sources:
        return []
    marks = ",".join("?" * len(sources))
    rows = db.execute(
        f"SELECT agent, source, from_ts, protocol, address, labels, accuracy, device"
        f" FROM source_meta"
        f" WHERE source IN ({marks}) ORDER BY agent, source, from_ts, rowid", tuple(sources),
    ).fetchall()
    out: list[dict[str, Any]] = []
    last: dict[tuple[str, str], tuple[Any, ...]] = {}
    for agent, source, ts, *meta in rows:
        before = last.get((agent, source))
        last[(agent, source)] = tuple(meta)
        if before is None or not t0_ns <= ts <= t1_ns:
            continue
        out.append({
            "agent": agent, "source": source, "ts_ns": int(ts),
            "changed": {n: [b, a] for n, b, a in zip(META_NAMES, before, meta, strict=True)
                        if b != a},
        })
    return out


def migrate_series_identity(db: Connection) -> None:
    """Schema step: series keyed by identity only. Series of one identity that differ only
    in their source's metadata are merged into the oldest (their samples moved to it, their
    gauge folds dropped, so windows read those samples raw), and each source's newest
    metadata is recorded as its first `source_meta` row."""
    if db.columns("source_meta"):
        return
    db.ddl(SOURCE_META_SCHEMA)
    rows = db.execute(
        "SELECT id, agent, source, protocol, address, source_labels, accuracy, metric, unit,"
        " kind, modulus, labels FROM series ORDER BY id"
    ).fetchall()
    groups: dict[str, list[tuple[Any, ...]]] = {}
    for r in rows:
        groups.setdefault(series_key(r[1], r[2], r[7], r[8], r[9], r[10], r[11]), []).append(r)
    newest: dict[tuple[str, str], tuple[Any, ...]] = {}
    for key, group in groups.items():
        keep, latest = group[0], group[-1]
        for dup in group[1:]:
            db.execute("UPDATE samples SET series = ? WHERE series = ?", (keep[0], dup[0]))
            db.execute("DELETE FROM window_folds WHERE series_id IN (?, ?)", (keep[0], dup[0]))
            db.execute("DELETE FROM series WHERE id = ?", (dup[0],))
        db.execute(
            "UPDATE series SET key = ?, protocol = ?, address = ?, source_labels = ?,"
            " accuracy = ? WHERE id = ?", (key, *latest[3:7], keep[0]),
        )
        pair = (latest[1], latest[2])
        if pair not in newest or latest[0] > newest[pair][0]:
            newest[pair] = latest
    db.executemany(
        "INSERT INTO source_meta(agent, source, from_ts, protocol, address, labels, accuracy,"
        " received_ns) VALUES (?,?,0,?,?,?,?,0)",
        [(a, s, *r[3:7]) for (a, s), r in newest.items()],
    )
