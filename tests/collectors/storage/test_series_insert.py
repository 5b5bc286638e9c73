"""A batch's new series, its sources' metadata and first-delivery owners written in bulk
(series_table.py: one statement over a JSON text of rows on PostgreSQL; ownership.py and
`_record_meta`: one executemany) hold exactly what one insert per row wrote: compared
with a SQLite store (an executemany of the row inserts) fed the same batch."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from dcmeter.agent import wire
from dcmeter.agent.samples import MetricSpec, SourceInfo
from dcmeter.agent.wire import GENESIS, Batch, ClockStatus, MetricEntry
from dcmeter.collectors.storage.store import Store

SOURCES = [
    SourceInfo("m-1", "modbus", "10.0.0.1", {"kind": "meter", "point": "it"}, 0.005,
               {"make": "Acme", "serial": "ü-1"}),
    SourceInfo('h-"2\\', "host", "local", {"kind": "compute"}, None),  # quote, backslash
]
METRICS = [MetricEntry(MetricSpec("energy_kwh", "kWh", "counter", 2**32 / 1000)),
           MetricEntry(MetricSpec("cpu_util_pct", "%")),
           MetricEntry(MetricSpec("x_w", "W", "gauge", 3))]  # an int modulus
TABLES = {
    "series": "id, key, agent, source, protocol, address, source_labels, accuracy,"
              " source_device, metric, unit, kind, modulus, labels",
    "source_meta": "agent, source, from_ts, protocol, address, labels, accuracy, device,"
                   " received_ns",
    "source_owners": "source, agent, from_ns, until_ns, via, by_name, reason, added_ns",
}


def rows(location: Path | str) -> dict[str, list[tuple[object, ...]]]:
    arrays = wire.pack_arrays([10**18] * 6, [0, 0, 0, 1, 1, 1], [0, 1, 2, 0, 1, 2], [1.0] * 6)
    batch = Batch("a", 1, GENESIS, 10**18, ClockStatus(), SOURCES, METRICS, *arrays)
    store = Store(location)
    try:
        assert store.insert_batch(batch, bytes(32), b"", 10**18)[0] == "stored"
        return {t: [tuple(r) for r in store._db.execute(
            f"SELECT {cols} FROM {t} ORDER BY {cols.split(',')[0]}, source").fetchall()]
            for t, cols in TABLES.items()}
    finally:
        store.close()


def test_bulk_series_rows_are_those_of_one_insert_each(
    store_location: Callable[[str], Path | str], tmp_path: Path
) -> None:
    got, want = rows(store_location("bulk")), rows(tmp_path / "reference.sqlite")
    assert got == want
    assert len(got["series"]) == 6 and len(got["source_owners"]) == 2
    assert got["series"][0][7] == 0.005 and got["series"][0][12] == 4294967.296
    assert got["series"][2][12] == 3.0
