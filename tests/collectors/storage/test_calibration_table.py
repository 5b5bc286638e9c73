"""The calibrations tables on both backends: ids, readings once per (point, repetition),
a frozen record at close, and the migration run twice."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from dcmeter.collectors.storage.store import MIGRATIONS, Store

PLAN = {"calibration": {"quantity": "power"}, "points": [{"label": "1 kW"}]}


def test_calibration_lifecycle(store_location: Callable[[str], Path | str]) -> None:
    loc = store_location("cal")
    store = Store(loc)
    try:
        a = store.add_calibration(PLAN, "eng", 10)
        b = store.add_calibration(PLAN, None, 20)
        assert (a.id, b.id) == (1, 2) and a.plan == PLAN and a.record is None
        assert [c.id for c in store.calibrations()] == [2, 1]
        body = {"reference": 1000.0, "indicated": 1010.0}
        st, r = store.add_reading(1, "1 kW", 1, 100, 200, body, 30, "eng")
        assert st == "stored" and r.body == body and r.start_ns == 100
        assert store.add_reading(1, "1 kW", 1, 100, 200, dict(body), 31, "eng")[0] == "duplicate"
        st, r = store.add_reading(1, "1 kW", 1, 100, 200, {**body, "indicated": 1.0}, 32, "x")
        assert st == "conflict" and r.body == body  # the stored one, unchanged
        assert store.add_reading(1, "1 kW", 2, 300, 400, body, 33, "eng")[0] == "stored"
        assert store.add_reading(2, "1 kW", 1, 300, 400, body, 33, "eng")[0] == "stored"
        assert [(x.point, x.repetition) for x in store.readings(1)] == [("1 kW", 1), ("1 kW", 2)]
        assert store.close_calibration(1, {"state": "closed", "x": [1.5]}, "eng", 40)
        assert not store.close_calibration(1, {"state": "other"}, "eng", 41)
        assert not store.close_calibration(99, {}, "eng", 41)
        got = store.calibration(1)
        assert got is not None and got.record == {"state": "closed", "x": [1.5]}
        assert (got.closed_ns, got.closed_by) == (40, "eng")
        assert store.calibration(3) is None
    finally:
        store.close()
    again = Store(loc)  # reopened: migrations already applied, rows kept
    try:
        assert len(again.readings(1)) == 2
        assert [m.version for m in MIGRATIONS if "calibration" in m.note] == [11]
    finally:
        again.close()
