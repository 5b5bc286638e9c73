"""Cost of evaluating one window: a general window over N sources sampled every 60 s.

    .venv/bin/python bench/evaluate_window.py --sources 10000 --hours 24

Builds the series in memory (N hosts' cpu_util_pct, a total and an IT meter, a switch with
two ports), then times `evaluate("general", …)` on them: the evaluation code the collector
and `dcmeter evaluate` share, without the store. Prints a table and writes the figures as JSON
(`--json FILE`). Peak memory is the process's maximum RSS (the series themselves included),
and the evaluation's own peak allocation by tracemalloc in a second, separate run.

With `--store FILE` it then writes the same samples into a collector store (SQLite, the
collector's schema, one block of samples per 60 s tick written directly rather than as
signed batches) holding a general
window over the day, folding the hosts' samples into the window's gauge folds through the
step `insert_batch` runs (`store_fold_s`), and times the collector's whole path for it,
`window_result`: reading the series from the store, evaluating, checking batch chains and
clocks (the synthetic store holds no batches, so that part is near free here); once reading
every sample (`window_result_s`, the raw path) and once from the folds
(`window_result_folds_s`: the meters and switch ports are still read raw).
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import resource
import time
import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np

from dcmeter.collectors.evaluation.evaluate import evaluate
from dcmeter.collectors.evaluation.series import Series
from dcmeter.collectors.evaluation.site import Site
from dcmeter.collectors.results.windows import window_result
from dcmeter.collectors.storage import sample_blocks as blocks_db
from dcmeter.collectors.storage.db import Connection
from dcmeter.collectors.storage.store import Store

T0 = 1_793_491_200.0  # 2026-11-01T00:00:00Z
INTERVAL_S = 60.0


def build(n_sources: int, hours: float) -> tuple[Site, list[Series]]:
    """A site file with one compute group per 100 hosts, and its series."""
    n = int(hours * 3600 / INTERVAL_S) + 3
    ts = tuple(T0 - INTERVAL_S + i * INTERVAL_S for i in range(n))
    series: list[Series] = []
    groups = []
    for g in range(math.ceil(n_sources / 100)):
        ids = [f"host-{i:05d}" for i in range(g * 100, min((g + 1) * 100, n_sources))]
        groups.append({"name": f"group-{g}", "kind": "compute", "count": len(ids),
                       "rating": 20000.0, "rating_source": "benchmark", "sources": ids})
        for k, sid in enumerate(ids):
            util = tuple(30.0 + 20.0 * math.sin(i / 60.0 + k) for i in range(n))
            series.append(Series(sid, "cpu_util_pct", "%", "gauge", ts, util,
                                 labels={"kind": "compute"}))
    for sid, point, rate in (("meter-total", "total", 2.0), ("meter-it", "it_pdu", 1.5)):
        series.append(Series(sid, "energy_import_kwh", "kWh", "counter", ts,
                             tuple(1000.0 + rate * i for i in range(n)),
                             labels={"point": point}, accuracy=0.005))
    for port in (1, 2):
        labels = {"kind": "network", "if_index": str(port), "if_name": f"Eth1/{port}"}
        for metric in ("if_in_octets", "if_out_octets"):
            series.append(Series("switch-1", metric, "B", "counter", ts,
                                 tuple(1e9 * i for i in range(n)), 2.0**64, labels))
        series.append(Series("switch-1", "if_speed_bps", "bit/s", "gauge", ts,
                             tuple(1e11 for _ in range(n)), labels=labels))
    groups.append({"name": "egress", "kind": "network", "count": 1, "rating": 5000.0,
                   "rating_source": "benchmark", "sources": ["switch-1"]})
    site = Site.model_validate({
        "site": {"name": "benchmark", "region": "east-2023"},
        "energy": {"total": ["meter-total"], "it": ["meter-it"], "it_point": "it_pdu"},
        "general": {"groups": groups},
    })
    return site, series


def fill_store(path: Path, series: list[Series], start: float, end: float) -> tuple[Store, float]:
    """Write the series into a new collector store at `path` (bench only: direct inserts)
    with a general window over [start, end], and fold the samples of its load series as
    ingest would; return the reopened store and the seconds spent folding."""
    if path.exists():
        raise SystemExit(f"{path} exists: give a new file")
    store = Store(path)
    # The sources bound to the one agent "bench" (enrolment), as a collector.toml would:
    # a series whose agent owns nothing is never read (ownership.py).
    store.bind_sources({"bench": sorted({s.source for s in series})}, int(start * 1e9))
    w = store.open_window("general", int(start * 1e9), "benchmark", int(start * 1e9))
    store.close_window(w.id, int(end * 1e9))
    with store._tx() as db:  # the benchmark writes the collector's tables directly
        fold_s = _fill(store, db, series, end)
    store.close()
    return Store(path), fold_s


def _fill(store: Store, db: Connection, series: list[Series], end: float) -> float:
    """Insert the series and fold them as insert_batch would; return the fold time (s).
    The samples are stored as the collector stores them (collectors/storage/sample_blocks.py):
    one block per 60 s tick, as if one agent sent every tick in one batch."""
    fold_s = 0.0
    cols: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    for s in series:
        row = ("bench", s.source, "bench", "", json.dumps(dict(s.labels), sort_keys=True),
               s.accuracy, s.metric, s.unit, s.kind, s.modulus, "{}")
        sid = db.insert_returning_id(
            "INSERT INTO series(key, agent, source, protocol, address, source_labels, accuracy,"
            " metric, unit, kind, modulus, labels) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            (json.dumps(row), *row),
        )
        rows = [(sid, round(t * 1e9), v)
                for t, v in zip(np.asarray(s.ts).tolist(), np.asarray(s.values).tolist(),
                                strict=True)]
        t = time.perf_counter()
        # insert_batch's fold step, before the rows are stored, in the same transaction
        store._folds.fold_rows(db, rows, int(end * 1e9))
        fold_s += time.perf_counter() - t
        ts = np.array([r[1] for r in rows], dtype=np.int64)
        cols.append((np.full(len(ts), sid, dtype=np.int64), ts,
                     np.asarray(s.values, dtype=np.float64)))
    sid_all = np.concatenate([c[0] for c in cols])
    ts_all = np.concatenate([c[1] for c in cols])
    val_all = np.concatenate([c[2] for c in cols])
    order = np.argsort(ts_all, kind="stable")
    sid_all, ts_all, val_all = sid_all[order], ts_all[order], val_all[order]
    tick = (ts_all - ts_all[0]) // (60 * 10**9)
    cuts = np.flatnonzero(np.diff(tick)) + 1
    for seq, (a, b) in enumerate(zip([0, *cuts.tolist()], [*cuts.tolist(), len(ts_all)],
                                     strict=True), start=1):
        t = ts_all[a:b]
        blocks_db.write(db, "bench", seq, sid_all[a:b].astype("<i8").tobytes(),
                        t.astype("<i8").tobytes(), val_all[a:b].astype("<f8").tobytes(),
                        b - a, int(t.min()), int(t.max()))
    return fold_s


def main() -> None:
    """Run the benchmark and print its figures."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sources", type=int, default=10_000)
    p.add_argument("--hours", type=float, default=24.0)
    p.add_argument("--json", type=Path, default=None, help="write the figures here")
    p.add_argument("--store", type=Path, default=None,
                   help="also time the collector's path from a new SQLite store at this file")
    args = p.parse_args()

    t = time.perf_counter()
    site, series = build(args.sources, args.hours)
    build_s = time.perf_counter() - t
    samples = sum(len(s.ts) for s in series)
    start, end = T0, T0 + args.hours * 3600

    t = time.perf_counter()
    result: dict[str, Any] = evaluate("general", site, series, start, end)
    eval_s = time.perf_counter() - t
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    tracemalloc.start()
    evaluate("general", site, series, start, end)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()

    figures = {
        "sources": args.sources,
        "hours": args.hours,
        "samples": samples,
        "build_s": round(build_s, 2),
        "evaluate_s": round(eval_s, 3),
        "samples_per_s": round(samples / eval_s),
        "max_rss_mb": round(rss_mb),
        "evaluate_peak_alloc_mb": round(peak / 2**20, 1),
        "cee": result.get("cee"),
        "valid": result["quality"]["valid"],
        "machine": f"{platform.machine()}, {platform.python_version()}",
    }
    if args.store is not None:
        t = time.perf_counter()
        store, fold_s = fill_store(args.store, series, start, end)
        figures["store_fill_s"] = round(time.perf_counter() - t, 1)
        figures["store_fold_s"] = round(fold_s, 1)
        figures["store_mb"] = round(args.store.stat().st_size / 2**20)
        closed = store.windows()[0]
        t = time.perf_counter()
        ids = sorted({s.source for s in series})
        store.series(ids, int((start - 900) * 1e9), int((end + 900) * 1e9))
        figures["store_read_s"] = round(time.perf_counter() - t, 2)
        t = time.perf_counter()
        at_collector = window_result(store, site, closed, int(end * 1e9), use_folds=False)
        figures["window_result_s"] = round(time.perf_counter() - t, 2)
        figures["window_result_cee"] = at_collector.get("cee")
        t = time.perf_counter()
        folded = window_result(store, site, closed, int(end * 1e9))
        figures["window_result_folds_s"] = round(time.perf_counter() - t, 2)
        figures["window_result_folds_cee"] = folded.get("cee")
        figures["folds_used"] = sum(
            f.usable(start, end, 900.0, 900.0) for f in store.window_folds(closed.id).values()
        )
        figures["max_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
        store.close()
    width = max(map(len, figures))
    for key, value in figures.items():
        print(f"{key:<{width}}  {value}")
    if args.json is not None:
        args.json.write_text(json.dumps(figures, indent=1) + "\n")


if __name__ == "__main__":
    main()
