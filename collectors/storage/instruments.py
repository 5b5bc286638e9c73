"""The instruments behind a window: each source's newest metadata and device identity, and
how many samples it delivered in the window (the report's instrument list)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field

from dcmeter.collectors.storage.db import Connection


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
    db: Connection, sources: Sequence[str], t0_ns: int, t1_ns: int
) -> list[Instrument]:
    """Each (agent, source) of `sources` with at least one sample in [t0, t1], ordered by
    source then agent: its metadata as its series hold it now (the newest a batch brought)
    and its sample count in the span. Every agent's samples count (an owner change shows in
    the result's `quality.owners`)."""
    if not sources:  # `IN ()` is SQLite's, not PostgreSQL's
        return []
    marks = ",".join("?" * len(sources))
    rows = db.execute(
        f"SELECT s.agent, s.source, s.protocol, s.address, s.source_labels, s.accuracy,"
        f" s.source_device, COUNT(*) FROM series s JOIN samples x ON x.series = s.id"
        f" WHERE s.source IN ({marks}) AND x.ts BETWEEN ? AND ?"
        f" GROUP BY s.agent, s.source, s.protocol, s.address, s.source_labels, s.accuracy,"
        f" s.source_device ORDER BY s.source, s.agent",
        (*sources, t0_ns, t1_ns),
    ).fetchall()
    out: dict[tuple[str, str], Instrument] = {}
    for agent, source, proto, addr, labels, acc, device, n in rows:
        # One source's series share its metadata (series_table.py updates them together).
        had = out.get((agent, source))
        out[(agent, source)] = Instrument(
            agent, source, proto, addr, json.loads(labels),
            None if acc is None else float(acc), json.loads(device or "{}"),
            int(n) + (had.samples if had else 0),
        )
    return list(out.values())
