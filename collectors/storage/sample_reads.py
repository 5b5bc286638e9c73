"""Reading samples back from their blocks (sample_blocks.py): a window's series, the
instruments' sample counts, seeding a gauge fold, every sample for audits.

Each reader goes agent by agent: the seqs of the agent's blocks overlapping the span come
from the indexes, then the blocks are read a few at a time (`READ_CHUNK`), each chunk under
the store's lock, so a long read lets ingest go on between them; numpy keeps the samples of
the series asked for, in the span.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Container, Sequence
from typing import Any

import numpy as np

from dcmeter.collectors.evaluation.series import Series
from dcmeter.collectors.storage import sample_blocks as blocks_db
from dcmeter.collectors.storage.db import Connection
from dcmeter.collectors.storage.deadline import Deadline, check

I64 = np.ndarray[Any, np.dtype[np.int64]]
F64 = np.ndarray[Any, np.dtype[np.float64]]
# (agent, source) -> the sample-time spans [from, until) the agent owned the source in;
# None: no filter; []: never (ownership.py Owners.series_spans).
Spans = Callable[[str, str], "list[tuple[int, int]] | None"]


def scan(
    db: Connection, lock: threading.Lock, agent: str, t0_ns: int, t1_ns: int,
    wanted: I64, deadline: Deadline | None = None,
) -> tuple[I64, I64, F64]:
    """The samples of `agent`'s series `wanted` (sorted ids) with times in [t0, t1], as
    (series, ts, value) columns, in block order (blocks by first sample time, then batch
    order inside a block). `deadline` is checked between chunks of blocks."""
    with lock:
        seqs = blocks_db.block_seqs(db, agent, t0_ns, t1_ns)
    parts: list[tuple[I64, I64, F64]] = []
    for chunk in blocks_db.chunks(seqs):
        check(deadline)
        with lock:
            got = blocks_db.read(db, agent, chunk)
        for b in got:
            keep = (b.ts >= t0_ns) & (b.ts <= t1_ns) & np.isin(b.series, wanted)
            if keep.any():
                parts.append((b.series[keep], b.ts[keep], b.val[keep]))
    if not parts:
        return np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.float64)
    return (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]),
            np.concatenate([p[2] for p in parts]))


def _by_series(series: I64, ts: I64) -> tuple[I64, I64, I64]:
    """The order sorting samples by (series, ts) (stable: equal times keep block order),
    and the distinct series ids with where each one's run starts and ends in that order."""
    order = np.lexsort((ts, series))
    ids, first = np.unique(series[order], return_index=True)
    ends = np.append(first[1:], len(order))[:len(first)]
    return order, ids, np.stack([first, ends], axis=1)


def read_series(
    db: Connection, lock: threading.Lock, spans_of: Spans, sources: Sequence[str],
    t0_ns: int, t1_ns: int, skip: Container[int] = (), deadline: Deadline | None = None,
) -> dict[int, Series]:
    """Every series of `sources` by id, with its samples in [t0, t1] sorted by time, only
    those its agent took while owning its source; those in `skip` (owned throughout)
    without samples (their figures come from their gauge folds)."""
    out: dict[int, Series] = {}
    if not sources:  # `IN ()` is SQLite's, not PostgreSQL's
        return out
    marks = ",".join("?" * len(sources))
    with lock:
        meta = db.execute(
            f"SELECT id, agent, source, source_labels, accuracy, metric, unit, kind,"
            f" modulus, labels FROM series WHERE source IN ({marks}) ORDER BY id",
            tuple(sources),
        ).fetchall()
    wanted: dict[str, list[int]] = {}
    spans: dict[int, list[tuple[int, int]] | None] = {}
    for sid, agent, source, slabels, acc, metric, unit, kind, modulus, labels in meta:
        span = spans_of(agent, source)
        if span == []:
            continue
        merged = {**json.loads(slabels), **json.loads(labels)}
        out[sid] = Series(source, metric, unit, kind, (), (), modulus, merged, acc)
        if sid not in skip or span is not None:
            wanted.setdefault(agent, []).append(sid)
            spans[sid] = span
    for agent, sids in wanted.items():
        check(deadline)
        series, ts, val = scan(db, lock, agent, t0_ns, t1_ns,
                               np.array(sorted(sids), dtype=np.int64), deadline)
        order, ids, runs = _by_series(series, ts)
        for sid, (a, b) in zip(ids.tolist(), runs.tolist(), strict=True):
            at = order[a:b]
            t, v = ts[at], val[at]
            span = spans[sid]
            if span is not None:
                mine = np.zeros(len(t), dtype=bool)
                for lo, hi in span:
                    mine |= (t >= lo) & (t < hi)
                t, v = t[mine], v[mine]
            s = out[sid]
            out[sid] = Series(s.source, s.metric, s.unit, s.kind, blocks_db.ns_seconds(t), v,
                              s.modulus, s.labels, s.accuracy)
    return out


def sample_counts(
    db: Connection, lock: threading.Lock, agent: str, sids: Sequence[int], t0_ns: int,
    t1_ns: int,
) -> dict[int, int]:
    """How many samples of each of `agent`'s series `sids` have times in [t0, t1]."""
    series, _, _ = scan(db, lock, agent, t0_ns, t1_ns, np.array(sorted(sids), dtype=np.int64))
    ids, n = np.unique(series, return_counts=True)
    return dict(zip(ids.tolist(), n.tolist(), strict=True))


def first_samples(
    db: Connection, agent: str, sids: Sequence[int], lo_ns: int, hi_ns: int, limit: int,
) -> dict[int, list[tuple[int, float]]]:
    """Each of `sids`' first `limit` samples (ts ns, value) in [lo, hi], by time (under the
    caller's lock, inside its transaction). Blocks are read by first sample time, stopping
    once every series has `limit` samples before the first time of the blocks left."""
    starts = blocks_db.block_starts(db, agent, lo_ns, hi_ns)
    seqs, firsts = [s for s, _ in starts], [t for _, t in starts]
    wanted = np.array(sorted(sids), dtype=np.int64)
    got: dict[int, list[tuple[I64, F64]]] = {}
    held: dict[int, int] = {}
    for i in range(0, len(seqs), blocks_db.READ_CHUNK):
        if (len(held) == len(wanted) and min(held.values()) >= limit
                and _enough(got, limit, firsts[i])):
            break
        for b in blocks_db.read(db, agent, seqs[i:i + blocks_db.READ_CHUNK]):
            keep = (b.ts >= lo_ns) & (b.ts <= hi_ns) & np.isin(b.series, wanted)
            if not keep.any():
                continue
            order, ids, runs = _by_series(b.series[keep], b.ts[keep])
            t, v = b.ts[keep][order], b.val[keep][order]
            for sid, (a, e) in zip(ids.tolist(), runs.tolist(), strict=True):
                got.setdefault(sid, []).append((t[a:e], v[a:e]))
                held[sid] = held.get(sid, 0) + e - a
    out: dict[int, list[tuple[int, float]]] = {}
    for sid, parts in got.items():
        t = np.concatenate([p[0] for p in parts])
        v = np.concatenate([p[1] for p in parts])
        order = np.argsort(t, kind="stable")[:limit]
        out[sid] = list(zip(t[order].tolist(), v[order].tolist(), strict=True))
    return out


def _enough(got: dict[int, list[tuple[I64, F64]]], limit: int, next_min_ts: int) -> bool:
    """Whether every series has `limit` samples before `next_min_ts` (then no block from
    there on, all starting at or after it, can change its first `limit`)."""
    return all(sum(int((p[0] < next_min_ts).sum()) for p in parts) >= limit
               for parts in got.values())


def every_sample(
    db: Connection, lock: threading.Lock, agent: str | None = None
) -> list[tuple[str, str, int, float]]:
    """Every stored sample (of `agent`'s batches) as (source, metric, ts ns, value), by time
    then storage order."""
    with lock:
        names = {int(i): (str(s), str(m)) for i, s, m in db.execute(
            "SELECT id, source, metric FROM series")}
        agents = [str(r[0]) for r in db.execute("SELECT DISTINCT agent FROM sample_blocks")
                  if agent is None or r[0] == agent]
    cols = [scan(db, lock, a, *blocks_db.EVER, np.array(sorted(names), dtype=np.int64))
            for a in agents]
    if not cols:
        return []
    series = np.concatenate([c[0] for c in cols])
    ts = np.concatenate([c[1] for c in cols])
    val = np.concatenate([c[2] for c in cols])
    order = np.argsort(ts, kind="stable")
    return [(*names[s], t, v) for s, t, v in zip(
        series[order].tolist(), ts[order].tolist(), val[order].tolist(), strict=True)]
