"""Targets' failed reads as agents report them (agent/wire.py `failures`): one compact row
per (agent, source), the current (or last) failing run.

A run starts with a failure after the previous run ended (or with the first failure ever);
it holds its first and last failure time (ns since the Unix epoch, the agent's clock), how
many failed reads it counted and the newest reason. A sample of the source newer than the
run's last failure ends it: `recovered_ns` is that sample's time. The table is written in
the same transaction as the batch that brought the failures or the sample (Store.insert_batch).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from dcmeter.agent.wire import Batch
from dcmeter.collectors.storage.db import Connection

SCHEMA = """
CREATE TABLE IF NOT EXISTS source_failures (
    agent TEXT NOT NULL, source TEXT NOT NULL, first_ns INTEGER NOT NULL,
    last_ns INTEGER NOT NULL, count INTEGER NOT NULL, reason TEXT NOT NULL,
    recovered_ns INTEGER, PRIMARY KEY (agent, source));
"""


@dataclass(frozen=True, slots=True)
class SourceFailure:
    """One (agent, source)'s current or last failing run; times in ns since the epoch."""

    agent: str
    source: str
    first_ns: int
    last_ns: int
    count: int
    reason: str
    recovered_ns: int | None  # None, or not after last_ns: still failing

    @property
    def failing(self) -> bool:
        """No sample of the source has been stored since its last failure."""
        return self.recovered_ns is None or self.recovered_ns <= self.last_ns


def add_source_failures(db: Connection) -> None:
    """Schema step: the `source_failures` table."""
    db.ddl(SCHEMA)


def record(db: Connection, batch: Batch) -> None:
    """Fold a stored batch's failures and samples into its agent's rows (inside the caller's
    transaction). Costs one query for a batch of an agent without failing sources."""
    runs: dict[str, list[int | str | None]] = {}  # source -> [first, last, count, reason, rec]
    for source, first, last, count, reason, rec in db.execute(
        "SELECT source, first_ns, last_ns, count, reason, recovered_ns FROM source_failures"
        " WHERE agent = ?" + ("" if batch.failures else
                              " AND (recovered_ns IS NULL OR recovered_ns <= last_ns)"),
        (batch.agent,),
    ):
        runs[str(source)] = [int(first), int(last), int(count), str(reason),
                             None if rec is None else int(rec)]
    if not runs and not batch.failures:
        return
    changed: set[str] = set()
    new: set[str] = set()
    for f in sorted(batch.failures, key=lambda f: f.ts_ns):
        run = runs.get(f.source)
        if run is None:
            runs[f.source] = [f.ts_ns, f.ts_ns, 1, f.reason, None]
            new.add(f.source)
            continue
        first, last, count, _, rec = run
        assert isinstance(last, int) and isinstance(count, int)
        if isinstance(rec, int) and rec > last and f.ts_ns >= rec:  # the run had ended
            run[:] = [f.ts_ns, f.ts_ns, 1, f.reason, rec]
        else:
            run[2] = count + 1
            if f.ts_ns >= last:
                run[1], run[3] = f.ts_ns, f.reason
        changed.add(f.source)
    _recoveries(batch, runs, changed)
    db.executemany(
        "INSERT INTO source_failures VALUES (?,?,?,?,?,?,?)",
        [(batch.agent, s, *runs[s]) for s in sorted(new)],
    )
    db.executemany(
        "UPDATE source_failures SET first_ns = ?, last_ns = ?, count = ?, reason = ?,"
        " recovered_ns = ? WHERE agent = ? AND source = ?",
        [(*runs[s], batch.agent, s) for s in sorted(changed - new)],
    )


def _recoveries(batch: Batch, runs: dict[str, list[int | str | None]], changed: set[str]) -> None:
    """End each open run whose source has a sample after the run's last failure: its
    recovery time is the first such sample."""
    open_at: dict[int, int] = {}  # index into batch.sources -> the run's last failure
    for i, s in enumerate(batch.sources):
        run = runs.get(s.id)
        if run is not None:
            last, rec = run[1], run[4]
            assert isinstance(last, int)
            if rec is None or (isinstance(rec, int) and rec <= last):
                open_at[i] = last
    if not open_at:
        return
    first: dict[int, int] = {}
    for t, i in zip(batch.ts, batch.src, strict=True):
        last = open_at.get(i)
        if last is not None and t > last and (i not in first or t < first[i]):
            first[i] = t
    for i, t in first.items():
        source = batch.sources[i].id
        runs[source][4] = t
        changed.add(source)


def source_failures(db: Connection, sources: Sequence[str] | None = None) -> list[SourceFailure]:
    """Every (agent, source) row, or those of `sources`, ordered by source then agent."""
    rows = db.execute(
        "SELECT agent, source, first_ns, last_ns, count, reason, recovered_ns"
        " FROM source_failures ORDER BY source, agent"
    ).fetchall()
    wanted = None if sources is None else set(sources)
    return [
        SourceFailure(str(a), str(s), int(f), int(la), int(c), str(r),
                      None if rec is None else int(rec))
        for a, s, f, la, c, r, rec in rows
        if wanted is None or s in wanted
    ]
