"""Which agent owns which source, over time: a source's samples count only from its owner.

Every source id of the site belongs to one agent. The binding is made when the collector
starts from the `sources` list of an `[[agents]]` entry (via "enrolment", confirmed), or on
the first batch that carries the source (via "first_delivery", to be confirmed by an
engineer), and is changed only by an engineer's explicit action (POST
/api/v1/sources/{id}/owner: "moved", or "confirmed" for the same agent), which is logged
and kept: the `source_owners` table holds every span, none is ever deleted. A batch with
samples of a source that another agent owned at those samples' times is refused whole
(403 "source_owned"); an agent whose `[[agents]]` entry lists its sources may report only
those (403 "source_not_allowed"). The evaluation reads a series only for the spans its agent
owned its source (collectors/storage/store.py series_by_id). docs/security.md.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from dcmeter.agent.wire import Batch
from dcmeter.collectors.storage.db import Connection

# Schema version 4 (collectors/storage/store.py MIGRATIONS). `until_ns` NULL: the span is open.
OWNERS_SCHEMA = """
CREATE TABLE IF NOT EXISTS source_owners (
    source TEXT NOT NULL, agent TEXT NOT NULL, from_ns INTEGER NOT NULL, until_ns INTEGER,
    via TEXT NOT NULL, by_name TEXT, reason TEXT, added_ns INTEGER NOT NULL{rowid});
CREATE INDEX IF NOT EXISTS source_owners_source ON source_owners(source);
"""
VIA = ("enrolment", "first_delivery", "migration", "moved", "confirmed")
CONFIRMED = ("enrolment", "moved", "confirmed")
FOREVER = 2**63 - 1


class Refused(Exception):
    """A batch refused inside the store's transaction, before anything was written."""

    def __init__(self, status: int, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.reason, self.detail = status, reason, detail


@dataclass(frozen=True, slots=True)
class Span:
    """An agent's ownership of a source over sample times [from_ns, until_ns)."""

    agent: str
    from_ns: int
    until_ns: int | None
    via: str
    by_name: str | None
    reason: str | None
    added_ns: int

    def covers(self, ts: np.ndarray) -> np.ndarray:
        """Which of the sample times `ts` (int64 ns) lie in this span."""
        end = FOREVER if self.until_ns is None else self.until_ns
        out: np.ndarray = (ts >= self.from_ns) & (ts < end)
        return out

    def as_json(self) -> dict[str, Any]:
        """The span as the API shows it (times in ns; the API adds RFC 3339)."""
        return {"agent": self.agent, "from_ns": self.from_ns, "until_ns": self.until_ns,
                "via": self.via, "by": self.by_name, "reason": self.reason,
                "confirmed": self.via in CONFIRMED}


class Owners:
    """The `source_owners` table, kept in memory; every change is written in the caller's
    transaction (the store's lock serialises them)."""

    def __init__(self, allowed: Mapping[str, Sequence[str]] | None = None) -> None:
        """`allowed`: per agent, the only source ids it may report (its `[[agents]]`
        `sources`); agents not named may report any source nobody else owns."""
        self.allowed = {a: frozenset(s) for a, s in (allowed or {}).items()}
        self._spans: dict[str, list[Span]] = {}
        # Bumped at every change of the spans: the per-agent verdicts below are kept for one.
        self._version = 0
        # Per agent, its last batch's source layout (the src column, the source ids, the
        # spans' version, its allowed set) and the sample times [lo, hi) over which the
        # agent owns every source of that layout: a steady agent's next batch inside them
        # passes without a per-source check.
        self._owned: dict[str, tuple[tuple[Any, ...], int, int]] = {}

    @property
    def version(self) -> int:
        """A number that changes at every change of the spans held (a load included)."""
        return self._version

    def load(self, db: Connection) -> None:
        """Read the table again (at start, and after a failed transaction)."""
        table: dict[str, list[Span]] = {}
        for row in db.execute(
            "SELECT source, agent, from_ns, until_ns, via, by_name, reason, added_ns"
            " FROM source_owners ORDER BY source, from_ns, rowid"
        ):
            table.setdefault(str(row[0]), []).append(Span(*row[1:]))
        self._spans = table
        self._version += 1

    def spans(self, source: str) -> list[Span]:
        """Every span of `source`, oldest first (empty: nobody owns it yet)."""
        return list(self._spans.get(source, ()))

    def sources(self) -> dict[str, list[Span]]:
        """Every source with its spans."""
        return {s: list(v) for s, v in sorted(self._spans.items())}

    def series_spans(self, agent: str, source: str) -> list[tuple[int, int]] | None:
        """The sample-time spans [from, until) in which `agent` owned `source`; None: the
        whole time (the common case, no filter needed); [] never."""
        mine = [s for s in self._spans.get(source, ()) if s.agent == agent]
        if len(mine) == 1 and mine[0].from_ns <= 0 and mine[0].until_ns is None:
            return None
        return [(s.from_ns, FOREVER if s.until_ns is None else s.until_ns) for s in mine]

    def check(self, db: Connection, batch: Batch, now_ns: int) -> list[str]:
        """Raise Refused unless `batch.agent` owns every source its samples read, at those
        samples' times; bind the sources nobody owns yet to it (first delivery) and return
        them."""
        if not len(batch):
            return []
        src = np.frombuffer(batch.src, dtype=np.uint32)
        ts = np.frombuffer(batch.ts, dtype=np.int64)
        lo, hi = int(ts.min()), int(ts.max())
        allowed = self.allowed.get(batch.agent)
        layout = (bytes(batch.src), tuple(s.id for s in batch.sources), allowed)
        owned = self._owned.get(batch.agent)
        if (owned is not None and owned[0] == (*layout, self._version)
                and owned[1] <= lo and hi < owned[2]):
            return []
        used = np.unique(src).tolist()
        unbound: list[str] = []
        for i in used:
            sid = batch.sources[i].id
            if allowed is not None and sid not in allowed:
                raise Refused(
                    403, "source_not_allowed",
                    f"source {sid!r} is not among the sources agent {batch.agent!r} may report"
                    f" (its [[agents]] sources: {', '.join(sorted(allowed)) or 'none'})",
                )
            spans = self._spans.get(sid)
            if not spans:
                unbound.append(sid)
                continue
            times = ts[src == i]
            mine = np.zeros(len(times), dtype=bool)
            for s in spans:
                if s.agent == batch.agent:
                    mine |= s.covers(times)
            if not mine.all():
                at = int(times[~mine][0])
                owner = next((s for s in spans if s.covers(np.array([at]))[0]), spans[-1])
                raise Refused(
                    403, "source_owned",
                    f"source {sid!r} belongs to agent {owner.agent!r} (via {owner.via}) at"
                    f" {at} ns, not to {batch.agent!r}; an engineer moves a source with"
                    " POST /api/v1/sources/{id}/owner",
                )
        self._add_many(db, [(sid, batch.agent) for sid in unbound], "first_delivery", now_ns)
        self._remember(batch.agent, layout, [batch.sources[i].id for i in used], lo, hi)
        return unbound

    def _remember(
        self, agent: str, layout: tuple[Any, ...], sources: list[str], lo: int, hi: int
    ) -> None:
        """Keep the sample times around [lo, hi] over which `agent` owns every one of
        `sources` through one span each (none kept if one is owned in pieces)."""
        start, end = -FOREVER, FOREVER
        for sid in sources:
            span = next((s for s in self._spans.get(sid, ()) if s.agent == agent
                         and s.from_ns <= lo and hi < (FOREVER if s.until_ns is None
                                                        else s.until_ns)), None)
            if span is None:
                self._owned.pop(agent, None)
                return
            start = max(start, span.from_ns)
            end = min(end, FOREVER if span.until_ns is None else span.until_ns)
        self._owned[agent] = ((*layout, self._version), start, end)

    def _add(
        self, db: Connection, source: str, agent: str, from_ns: int, via: str,
        by_name: str | None, reason: str | None, now_ns: int,
    ) -> Span:
        span = Span(agent, from_ns, None, via, by_name, reason, now_ns)
        self._version += 1
        db.execute(
            "INSERT INTO source_owners(source, agent, from_ns, until_ns, via, by_name, reason,"
            " added_ns) VALUES (?,?,?,?,?,?,?,?)",
            (source, agent, from_ns, None, via, by_name, reason, now_ns),
        )
        self._spans.setdefault(source, []).append(span)
        return span

    def _add_many(
        self, db: Connection, pairs: Sequence[tuple[str, str]], via: str, now_ns: int
    ) -> None:
        """Bind each (source, agent) from the start of time, in one executemany (pipelined
        on PostgreSQL: a new agent's thousand sources in one round trip)."""
        if not pairs:
            return
        self._version += 1
        db.executemany(
            "INSERT INTO source_owners(source, agent, from_ns, until_ns, via, by_name, reason,"
            " added_ns) VALUES (?,?,0,NULL,?,NULL,NULL,?)",
            [(source, agent, via, now_ns) for source, agent in pairs],
        )
        for source, agent in pairs:
            self._spans.setdefault(source, []).append(
                Span(agent, 0, None, via, None, None, now_ns))

    def enrol(
        self, db: Connection, bindings: Mapping[str, Iterable[str]], now_ns: int
    ) -> list[str]:
        """Bind each listed source nobody owns to its agent (via "enrolment"); return the
        conflicts (a source owned by another agent: left as it is, moved only explicitly)."""
        conflicts = []
        for agent, sources in sorted(bindings.items()):
            for sid in sorted(set(sources)):
                spans = self._spans.get(sid)
                if not spans:
                    self._add(db, sid, agent, 0, "enrolment", None, None, now_ns)
                elif spans[-1].agent != agent:
                    conflicts.append(
                        f"source {sid!r} is listed for agent {agent!r} but owned by"
                        f" {spans[-1].agent!r}: move it explicitly if that is right"
                    )
        return conflicts

    def move(
        self, db: Connection, source: str, agent: str, from_ns: int, by_name: str,
        reason: str, now_ns: int,
    ) -> Span:
        """Give `source` to `agent` from sample time `from_ns` on; when `agent` owns it
        already, confirm the binding instead (via "confirmed", times unchanged). ValueError
        if `from_ns` is not after the current span's start: history is never rewritten."""
        self._version += 1
        spans = self._spans.setdefault(source, [])
        current = spans[-1] if spans else None
        if current is not None and current.agent == agent:
            db.execute(
                "UPDATE source_owners SET via = 'confirmed', by_name = ?, reason = ?"
                " WHERE source = ? AND agent = ? AND from_ns = ? AND until_ns IS NULL",
                (by_name, reason, source, agent, current.from_ns),
            )
            spans[-1] = Span(agent, current.from_ns, None, "confirmed", by_name, reason,
                             current.added_ns)
            return spans[-1]
        if current is not None:
            if from_ns <= current.from_ns:
                raise ValueError(
                    f"from ({from_ns} ns) must be after the current owner's span start"
                    f" ({current.from_ns} ns): ownership history is kept, never rewritten"
                )
            db.execute(
                "UPDATE source_owners SET until_ns = ? WHERE source = ? AND agent = ?"
                " AND from_ns = ? AND until_ns IS NULL",
                (from_ns, source, current.agent, current.from_ns),
            )
            spans[-1] = Span(current.agent, current.from_ns, from_ns, current.via,
                             current.by_name, current.reason, current.added_ns)
        return self._add(db, source, agent, from_ns if current else 0, "moved", by_name,
                         reason, now_ns)


def migrate_owners(db: Connection) -> None:
    """Schema step: the table, and each source already stored bound to the agent that
    delivered it first (via "migration"), so stores made before ownership keep their results."""
    db.ddl(OWNERS_SCHEMA)
    if db.execute("SELECT 1 FROM source_owners").fetchone():
        return
    rows = db.execute(
        "SELECT s.source, s.agent FROM series s WHERE s.id = (SELECT MIN(t.id) FROM series t"
        " WHERE t.source = s.source)"
    ).fetchall()
    db.executemany(
        "INSERT INTO source_owners(source, agent, from_ns, until_ns, via, by_name, reason,"
        " added_ns) VALUES (?,?,0,NULL,'migration',NULL,NULL,0)",
        [(str(s), str(a)) for s, a in rows],
    )

