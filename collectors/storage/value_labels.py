"""Metric labels that carried a changing value: dropped from a series' identity.

A metric label is part of a series' identity (series_table.py), so a label must name what a
series measures (a port, a GPU) and never carry a figure that changes. Before issue 16 the
ipmi source put DCMI's statistics period into a `period_s` label of power_avg_w, power_min_w
and power_max_w: every new period value (it grows from 39 s to 60 s after a BMC starts; some
BMCs move it every poll) made a new series. The period is now a metric of its own,
`power_avg_period_s` (docs/sources.md). Here:

- **ingest** (series_table.identity_labels): an old agent's batch still carrying such a
  label is stored under the series without it; the label's value is dropped (the batch's
  raw bytes, kept for audits, still hold it). docs/wire-format.md says so.
- **migration 8** (`merge_value_label_series`): series already split by such a label are
  merged into one, the oldest (lowest id): the others' samples moved to it, a sample at a
  time the merged series already holds left out (the oldest series' sample wins, so the
  result does not depend on the database's row order), their gauge folds dropped (windows
  then read those samples raw, as migration 5 does), the others' rows deleted. The periods
  of power_avg_w's split series become samples of the source's `power_avg_period_s` series
  (made where missing) at the same times, so the AI evaluation's τ is kept for stored data.
  Source metadata (`source_meta`) and ownership (`source_owners`) are per source and are
  not touched: a merge changes no source.
"""

from __future__ import annotations

import json
from typing import Any

from dcmeter.collectors.storage.db import Connection
from dcmeter.collectors.storage.series_table import VALUE_LABELS, identity_labels, series_key

# A metric whose `period_s` label becomes a sample of this metric (s), by the migration.
PERIOD_METRIC = {"power_avg_w": ("power_avg_period_s", "s")}


def _period_series(db: Connection, row: tuple[Any, ...], ids: dict[str, int]) -> int:
    """Return the id of `row`'s source's period series, inserting it where missing."""
    _, _, agent, source, proto, addr, slabels, acc, metric, *_ = row
    name, unit = PERIOD_METRIC[metric]
    pkey = series_key(agent, source, name, unit, "gauge", None, "{}")
    if pkey not in ids:
        ids[pkey] = db.insert_returning_id(
            "INSERT INTO series(key, agent, source, protocol, address, source_labels,"
            " accuracy, metric, unit, kind, modulus, labels) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            (pkey, agent, source, proto, addr, slabels, acc, name, unit, "gauge", None, "{}"),
        )
    return ids[pkey]


def merge_value_label_series(db: Connection) -> None:
    """Schema step 8: merge series split by a value label (module docstring). Idempotent: a
    store without such labels is left as it is."""
    rows = db.execute(
        "SELECT id, key, agent, source, protocol, address, source_labels, accuracy, metric,"
        " unit, kind, modulus, labels FROM series ORDER BY id"
    ).fetchall()
    ids = {str(r[1]): int(r[0]) for r in rows}
    groups: dict[str, list[tuple[Any, ...]]] = {}
    split: set[str] = set()
    for r in rows:
        labels = json.loads(r[12])
        kept = json.dumps(dict(identity_labels(labels)), sort_keys=True)
        key = series_key(r[2], r[3], r[8], r[9], r[10], r[11], kept)
        groups.setdefault(key, []).append((*r, kept, labels))
        if not VALUE_LABELS.isdisjoint(labels):
            split.add(key)
    for key in sorted(split):
        group = groups[key]
        keep = group[0][0]
        for r in group:  # the periods first: the labels go with the rows below
            period = r[14].get("period_s")
            if r[8] in PERIOD_METRIC and period is not None:
                try:
                    value = float(period)
                except ValueError:
                    continue
                pid = _period_series(db, r, ids)
                db.execute(
                    "INSERT INTO samples(series, ts, value, seq) SELECT ?, ts, ?, seq FROM"
                    " samples WHERE series = ? AND ts NOT IN"
                    " (SELECT ts FROM samples WHERE series = ?)", (pid, value, r[0], pid),
                )
        for r in group[1:]:
            dup = r[0]
            db.execute(
                "DELETE FROM samples WHERE series = ? AND ts IN"
                " (SELECT ts FROM samples WHERE series = ?)", (dup, keep),
            )
            db.execute("UPDATE samples SET series = ? WHERE series = ?", (keep, dup))
            db.execute("DELETE FROM window_folds WHERE series_id IN (?, ?)", (keep, dup))
            db.execute("DELETE FROM series WHERE id = ?", (dup,))
        db.execute("UPDATE series SET key = ?, labels = ? WHERE id = ?", (key, group[0][13], keep))
