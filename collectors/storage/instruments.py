"""The instruments behind a window: each source's newest metadata and device identity, and
how many samples it delivered in the window (the report's instrument list)."""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field

from dcmeter.collectors.storage.db import Connection
from dcmeter.collectors.storage.sample_reads import sample_counts


@dataclass(frozen=True, slots=True)
class Instrument:
    """One (agent, source) as the store knows it: metadata as of the newest batch, and its
    sample count in the span asked for (all its series together)."""

    agent: str
    source: str
    protocol: str
    address: str
    labels: dict[str, str] = field(default_factory=dict)
    accuracy: float | None = None
    device: dict[str, str] = field(default_factory=dict)
    samples: int = 0


def add_device_columns(db: Connection) -> None:
    """Schema step: `series.source_device` and `source_meta.device`, the device identity as
    sorted JSON ('{}' where the agent reported none, as every agent before it did)."""
    for table, column in (("series", "source_device"), ("source_meta", "device")):
        if column not in db.columns(table):
            db.execute(f"ALTER TABLE {table} ADD COLUMN {column} TEXT NOT NULL DEFAULT '{{}}'")


def instruments(
    db: Connection, lock: threading.Lock, sources: Sequence[str], t0_ns: int, t1_ns: int
) -> list[Instrument]:
    """Each (agent, source) of `sources` with at least one sample in [t0, t1], ordered by
    source then agent: its metadata as its series hold it now (the newest a batch brought)
    and its sample count in the span. Every agent's samples count (an owner change shows in
    the result's `quality.owners`). The blocks are read agent by agent, each chunk under
    `lock` (sample_reads.py)."""
    if not sources:  # `IN ()` is SQLite's, not PostgreSQL's
        return []
    marks = ",".join("?" * len(sources))
    with lock:
        rows = db.execute(
            f"SELECT id, agent, source, protocol, address, source_labels, accuracy,"
            f" source_device FROM series WHERE source IN ({marks}) ORDER BY source, agent, id",
            tuple(sources),
        ).fetchall()
    by_agent: dict[str, list[int]] = {}
    for r in rows:
        by_agent.setdefault(str(r[1]), []).append(int(r[0]))
    counts: dict[int, int] = {}
    for agent, sids in by_agent.items():
        counts.update(sample_counts(db, lock, agent, sids, t0_ns, t1_ns))
    out: dict[tuple[str, str], Instrument] = {}
    for sid, agent, source, proto, addr, labels, acc, device in rows:
        n = counts.get(int(sid), 0)
        if not n:
            continue
        # One source's series share its metadata (series_table.py updates them together).
        had = out.get((agent, source))
        out[(agent, source)] = Instrument(
            agent, source, proto, addr, json.loads(labels),
            None if acc is None else float(acc), json.loads(device or "{}"),
            n + (had.samples if had else 0),
        )
    return list(out.values())
