"""Series identity without value labels (issue 16 item 4), on both backends: migration 8
merges series an old agent split by DCMI's `period_s` label, and ingest never splits again."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from dcmeter.agent import wire
from dcmeter.agent.samples import MetricSpec, SourceInfo
from dcmeter.agent.wire import GENESIS, Batch, ClockStatus, MetricEntry
from dcmeter.collectors.storage.series_table import series_key
from dcmeter.collectors.storage.store import Store
from tests.peers.old_store import back_to, stored

SRC = SourceInfo("bmc-1", "ipmi", "10.0.0.5:623", {"point": "it_input", "kind": "compute"})
S = 10**9


def _rows(store: Store) -> dict[tuple[str, str], list[tuple[int, float]]]:
    """(metric, labels JSON) -> [(ts, value)] of bmc-1's stored series."""
    out: dict[tuple[str, str], list[tuple[int, float]]] = {}
    for sid, metric, labels in store._db.execute(
        "SELECT id, metric, labels FROM series WHERE source = 'bmc-1' ORDER BY id"
    ).fetchall():
        out[(metric, labels)] = stored(store, sid)
    return out


def test_migration_8_merges_series_split_by_the_period_label(
    store_location: Callable[[str], Path | str],
) -> None:
    """A store of schema 7 holding what an old ipmi source made: power_avg_w split into
    period_s 39 and 40, power_min_w likewise, power_w whole. After migration 8: one series
    each, every sample kept once, and the periods as power_avg_period_s samples."""
    where = store_location("s")
    store = Store(where)
    db = store._db
    with db.transaction():
        back_to(db, 7)
        made = {}
        for name, metric, labels in [
            ("a39", "power_avg_w", {"period_s": "39"}), ("a40", "power_avg_w", {"period_s": "40"}),
            ("m39", "power_min_w", {"period_s": "39"}), ("m40", "power_min_w", {"period_s": "40"}),
            ("p", "power_w", {}),
        ]:
            text = json.dumps(labels, sort_keys=True)
            made[name] = db.insert_returning_id(
                "INSERT INTO series(key, agent, source, protocol, address, source_labels,"
                " accuracy, metric, unit, kind, modulus, labels) VALUES"
                " (?,'rack-a','bmc-1','ipmi','10.0.0.5:623','{}',NULL,?,'W','gauge',NULL,?)",
                (series_key("rack-a", "bmc-1", metric, "W", "gauge", None, text), metric, text),
            )
        db.executemany("INSERT INTO samples VALUES (?,?,?,?)", [
            (made["a39"], 1, 100.0, 1), (made["a39"], 2, 101.0, 1),
            # period 40 from t = 2 on: its sample at t = 2 is a duplicate; the oldest series'
            # (period 39, value 101) is kept.
            (made["a40"], 2, 999.0, 2), (made["a40"], 3, 102.0, 2), (made["a40"], 4, 103.0, 2),
            (made["m39"], 1, 90.0, 1), (made["m39"], 2, 91.0, 1), (made["m40"], 3, 92.0, 2),
            *[(made["p"], t, 110.0 + t, 1 + (t > 2)) for t in (1, 2, 3, 4)],
        ])
        db.execute("INSERT INTO source_owners(source, agent, from_ns, until_ns, via, added_ns)"
                   " VALUES ('bmc-1', 'rack-a', 0, NULL, 'first_delivery', 0)")
    (before,) = db.execute("SELECT COUNT(*) FROM samples").fetchone()
    assert before == 2 + 3 + 2 + 1 + 4
    store.close()
    store = Store(where)
    try:
        rows = _rows(store)
        assert rows == {
            ("power_avg_w", "{}"): [(1, 100.0), (2, 101.0), (3, 102.0), (4, 103.0)],
            ("power_min_w", "{}"): [(1, 90.0), (2, 91.0), (3, 92.0)],
            ("power_w", "{}"): [(1, 111.0), (2, 112.0), (3, 113.0), (4, 114.0)],
            ("power_avg_period_s", "{}"): [(1, 39.0), (2, 39.0), (3, 40.0), (4, 40.0)],
        }
        # 12 samples less the duplicate at t = 2, plus 4 periods.
        assert store.counts()["samples"] == 12 - 1 + 4
        ids = [i for (i,) in store._db.execute(
            "SELECT id FROM series WHERE source = 'bmc-1' ORDER BY id")]
        assert ids[:3] == [made["a39"], made["m39"], made["p"]]  # the oldest of each kept
        got = {s.metric: s for s in store.series(["bmc-1"], 0, 10)}
        assert sorted(got) == ["power_avg_period_s", "power_avg_w", "power_min_w", "power_w"]
        assert "period_s" not in got["power_avg_w"].labels
        assert got["power_avg_period_s"].unit == "s"
        # Reopening applies nothing twice.
        store.close()
        store = Store(where)
        assert _rows(store) == rows
    finally:
        store.close()


def _batch(seq: int, periods: list[str]) -> Batch:
    """An old agent's batch: power_avg_w with a period_s label per sample, one a second."""
    n = len(periods)
    metrics = [MetricEntry(MetricSpec("power_avg_w", "W"), {"period_s": p}) for p in periods]
    times = [(seq * 10 + i) * S for i in range(n)]
    arrays = wire.pack_arrays(times, [0] * n, list(range(n)), [200.0 + i for i in range(n)])
    return Batch("rack-a", seq, GENESIS if seq == 1 else b"\1" * 32, times[-1],
                 ClockStatus(True, 0.01), [SRC], metrics, *arrays)


def test_an_old_agents_period_label_is_dropped_at_ingest(
    store_location: Callable[[str], Path | str],
) -> None:
    """Batches whose power_avg_w carries period_s 39, 40, 41 … (a BMC moving it every poll)
    land in one series without the label."""
    store = Store(store_location("s"))
    try:
        for seq, periods in ((1, ["39", "40", "41"]), (2, ["42", "43"])):
            batch = _batch(seq, periods)
            body = wire.encode_body(batch)
            assert store.insert_batch(batch, wire.batch_hash(body), body, 1)[0] == "stored"
        rows = _rows(store)
        assert list(rows) == [("power_avg_w", "{}")]
        assert [v for _, v in rows[("power_avg_w", "{}")]] == [200.0, 201.0, 202.0, 200.0, 201.0]
    finally:
        store.close()
    store = Store(store_location("s"))  # the series table read back keys the same series
    try:
        batch = _batch(3, ["44"])
        body = wire.encode_body(batch)
        assert store.insert_batch(batch, wire.batch_hash(body), body, 1)[0] == "stored"
        assert len(_rows(store)[("power_avg_w", "{}")]) == 6 and len(_rows(store)) == 1
    finally:
        store.close()
