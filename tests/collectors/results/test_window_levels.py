"""Through a running collector: a PUE of exactly 1.30 from meter readings is level 2, and a
window the collector's own checks invalidate shows that level only as indicative (issue 13)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from conftest import Collector

from dcmeter.agent import wire
from dcmeter.agent.samples import MetricSpec, SourceInfo
from dcmeter.agent.wire import GENESIS, Batch, ClockStatus, MetricEntry
from dcmeter.collectors.evaluation.jsonl import parse_rfc3339, rfc3339

CT = {"content-type": "application/x-msgpack"}
SOURCES = [
    SourceInfo("meter-total", "modbus", "127.0.0.1:502/1", {"point": "total"}, 0.005),
    SourceInfo("meter-it", "modbus", "127.0.0.1:502/2", {"point": "it_pdu"}, 0.005),
]
METRICS = [MetricEntry(MetricSpec("energy_import_kwh", "kWh", "counter"))]
T0 = parse_rfc3339("2026-09-01T00:00:00Z")
# Readings every 15 min over an hour, as decimals: total +1.3 kWh, IT +1.0 kWh a step, so
# E_total = 5.2 kWh, E_IT = 4.0 kWh and PUE = 1.30 exactly: GB 40879 level 2 (<= 1.30).
TOTAL = [1000.0, 1001.3, 1002.6, 1003.9, 1005.2]
IT = [200.0, 201.0, 202.0, 203.0, 204.0]


@pytest.fixture
def http(collector: Collector) -> Iterator[httpx.Client]:
    with collector.http() as client:
        yield client


def ship(c: Collector, first: float, total: list[float], it: list[float],
         clock: ClockStatus, seq: int, prev: bytes) -> tuple[int, bytes]:
    """Post one signed batch per reading time (both meters); return the next seq and hash."""
    for k, (e_total, e_it) in enumerate(zip(total, it, strict=True)):
        ts_ns = int((first + 900 * k) * 1e9)
        arrays = wire.pack_arrays([ts_ns, ts_ns], [0, 1], [0, 0], [e_total, e_it])
        batch = Batch("agent-1", seq, prev, ts_ns, clock, SOURCES, METRICS, *arrays)
        raw = wire.seal(batch, c.keys["agent-1"])
        r = httpx.post(f"{c.url}/api/v1/batches", content=raw, headers=CT)
        assert r.status_code in (200, 201), r.text
        prev, seq = wire.batch_hash(wire.encode_body(batch)), seq + 1
    return seq, prev


def window(http: httpx.Client, c: Collector, start: float) -> dict[str, object]:
    base = f"{c.url}/api/v1/windows"
    w = http.post(base, json={"kind": "infrastructure", "start": rfc3339(start)}).json()
    assert http.post(f"{base}/{w['id']}/stop", json={"end": rfc3339(start + 3600)}).is_success
    return {"id": w["id"], **http.get(f"{base}/{w['id']}").json()}


def test_a_collector_grades_exactly_and_withholds_the_level_of_a_window_not_valid(
    collector: Collector, http: httpx.Client
) -> None:
    good = ClockStatus(synced=True, max_error_s=0.01)
    seq, prev = ship(collector, T0, TOTAL, IT, good, 1, GENESIS)
    # Two hours later the same readings shifted, sealed by an agent whose clock error bound
    # (1000 s) exceeds the 900 s interval limit: the collector's clock check invalidates.
    bad = ClockStatus(synced=True, max_error_s=1000.0)
    ship(collector, T0 + 7200, [x + 1000.0 for x in TOTAL], [x + 100.0 for x in IT], bad,
         seq, prev)

    valid = window(http, collector, T0)
    assert valid["quality"]["valid"] is True  # type: ignore[index]
    assert valid["pue"] == pytest.approx(1.3)
    assert valid["pue_level"] == 2 and valid["pue_level_indicative"] is None

    invalid = window(http, collector, T0 + 7200)
    assert invalid["quality"]["valid"] is False  # type: ignore[index]
    assert invalid["pue"] == pytest.approx(1.3)  # 2005.2 - 2000.0 over 304.0 - 300.0
    assert invalid["pue_level"] is None and invalid["pue_level_indicative"] == 2

    report = http.get(f"{collector.url}/api/v1/windows/{invalid['id']}/report",
                      params={"lang": "en", "format": "html"})
    assert report.status_code == 200
    assert "level 2 (indicative: result not valid)" in report.text
