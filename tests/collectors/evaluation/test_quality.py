"""Data quality: per-series coverage, gaps, interval rule, counter events, window rule, and the
store side (hash chain, agents' clocks) through a real Store and the collector's window code."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from dcmeter.agent import wire
from dcmeter.agent.samples import MetricSpec, SourceInfo
from dcmeter.agent.wire import GENESIS, Batch, ClockStatus, MetricEntry
from dcmeter.collectors.evaluation.infrastructure import evaluate_infrastructure
from dcmeter.collectors.evaluation.jsonl import parse_rfc3339
from dcmeter.collectors.evaluation.quality import quality_block, series_quality, window_rule
from dcmeter.collectors.evaluation.series import Series
from dcmeter.collectors.evaluation.site import Site
from dcmeter.collectors.results.windows import window_result
from dcmeter.collectors.storage.store import Store

T0 = parse_rfc3339("2026-11-22T10:00:00Z")
HOUR = 3600.0


def gauge(offsets: Sequence[float], source: str = "s", values: Sequence[float] = ()) -> Series:
    vals = tuple(values) or (1.0,) * len(offsets)
    return Series(source, "power_w", "W", "gauge", tuple(T0 + o for o in offsets), vals)


def counter(values: Sequence[float], modulus: float | None = None) -> Series:
    ts = tuple(T0 + 60.0 * k for k in range(len(values)))
    return Series("m", "energy_import_kwh", "kWh", "counter", ts, tuple(values), modulus)


def test_regular_series_is_fully_covered() -> None:
    q = series_quality(gauge(range(-60, 3660, 60)), T0, T0 + HOUR)
    assert q["samples"] == 61  # 10:00 .. 11:00 inclusive, every minute
    assert q["coverage"] == 1.0
    assert q["longest_gap_s"] == 60 and q["median_interval_s"] == 60
    assert q["interval_ok"] is True and q["resets"] == q["wraps"] == 0


def test_a_20_minute_gap_breaks_the_interval_rule() -> None:
    offsets = [o for o in range(0, 3660, 60) if not 600 < o < 1800]  # none from 10:11 to 10:29
    q = series_quality(gauge(offsets), T0, T0 + HOUR)
    assert q["samples"] == 61 - 19
    assert q["longest_gap_s"] == 1200  # 10:10 -> 10:30
    assert q["coverage"] == pytest.approx(2400 / 3600)  # the 1200 s interval is not covered
    assert q["interval_ok"] is False
    # with a 30-minute limit the same gap is allowed and the whole window covered
    relaxed = series_quality(gauge(offsets), T0, T0 + HOUR, max_interval_s=1800)
    assert relaxed["interval_ok"] is True and relaxed["coverage"] == 1.0


def test_edges_without_samples_count_as_gaps() -> None:
    q = series_quality(gauge(range(300, 3301, 60)), T0, T0 + HOUR)  # 10:05 .. 10:55
    assert q["longest_gap_s"] == 300
    assert q["coverage"] == pytest.approx(3000 / 3600)
    late = series_quality(gauge(range(1200, 3601, 60)), T0, T0 + HOUR)  # starts at 10:20
    assert late["longest_gap_s"] == 1200 and late["interval_ok"] is False


def test_no_samples_at_all() -> None:
    q = series_quality(gauge([-7200, -7140]), T0, T0 + HOUR)
    assert q["samples"] == 0 and q["coverage"] == 0.0
    assert q["longest_gap_s"] == pytest.approx(3600 + 7140)  # the last sample to the end
    assert q["interval_ok"] is False and q["median_interval_s"] is None


def test_counter_wraps_and_resets_are_counted() -> None:
    # 0.5 kWh/min against a 100 kWh modulus: 99.0, 99.5, 0.0 wraps; later 30.0 -> 0.2 resets
    values = [99.0, 99.5, 0.0, 0.5, 1.0, 30.0, 0.2, 0.7]
    q = series_quality(counter(values, modulus=100.0), T0, T0 + 7 * 60)
    assert (q["wraps"], q["resets"]) == (1, 1)
    # without a modulus every decrease is a reset
    q = series_quality(counter(values), T0, T0 + 7 * 60)
    assert (q["wraps"], q["resets"]) == (0, 2)
    # events before the window do not count
    q = series_quality(counter(values), T0 + 3 * 60, T0 + 7 * 60)
    assert (q["wraps"], q["resets"]) == (0, 1)


def test_non_finite_samples_are_ignored() -> None:
    s = gauge([0, 60, 120], values=[1.0, float("nan"), 1.0])
    q = series_quality(s, T0, T0 + 120)
    assert q["samples"] == 2 and q["longest_gap_s"] == 120


def test_window_rule_by_kind() -> None:
    eleven = window_rule("general", T0, T0 + 11 * HOUR)
    assert len(eleven) == 1 and "shorter than the 12 h minimum" in eleven[0]
    twelve = window_rule("general", T0, T0 + 12 * HOUR)
    assert len(twelve) == 1 and twelve[0].startswith("note: ") and "24 h" in twelve[0]
    assert window_rule("general", T0, T0 + 24 * HOUR) == []
    assert window_rule("infrastructure", T0, T0 + 60) == []
    assert window_rule("ai", T0, T0 + 60) == []
    assert "not after its start" in window_rule("infrastructure", T0, T0)[0]


def test_quality_block_validity() -> None:
    good = [gauge(range(-60, 3660, 60))]
    block = quality_block(good, T0, T0 + HOUR, "infrastructure", [])
    assert block["valid"] is True and block["issues"] == []
    assert block["window_hours"] == 1.0 and block["window_rule_ok"] is True
    assert block["chain"]["checked"] is False and "not checked offline" in block["chain"]["note"]
    assert block["clock"]["checked"] is False
    # extra issues invalidate unless the caller gives its own verdict
    assert quality_block(good, T0, T0 + HOUR, "infrastructure", ["x"])["valid"] is False
    assert quality_block(good, T0, T0 + HOUR, "infrastructure", ["x"], valid=True)["valid"]
    # a general window of 1 h is too short: invalid with the reason
    short = quality_block(good, T0, T0 + HOUR, "general", [])
    assert short["valid"] is False and short["window_rule_ok"] is False
    assert any("12 h minimum" in i for i in short["issues"])


def test_interval_rule_invalidates_general_only() -> None:
    offsets = [o for o in range(-60, 12 * 3600 + 60, 60) if not 600 < o < 1800]
    gappy = [gauge(offsets)]
    general = quality_block(gappy, T0, T0 + 12 * HOUR, "general", [])
    assert general["valid"] is False and general["interval_ok"] is False
    assert any("longest gap 1200 s exceeds the 900 s" in i for i in general["issues"])
    infra = quality_block(gappy, T0, T0 + 12 * HOUR, "infrastructure", [], valid=True)
    assert infra["valid"] is True  # a counter bridges the gap; the finding is still listed
    assert any("longest gap 1200 s" in i for i in infra["issues"])
    # an issue the evaluation already gave for this series is not repeated
    known = ["it: s power_w: gap of 1200 s from ..."]
    again = quality_block(gappy, T0, T0 + 12 * HOUR, "infrastructure", known, valid=True)
    assert not any("longest gap" in i for i in again["issues"])


# -- store side: hash chain and clocks through a real Store ---------------------------------

SOURCES = [
    SourceInfo("meter-total", "modbus", "127.0.0.1:502/1", {"point": "total", "kind": "meter"}),
    SourceInfo("meter-it", "modbus", "127.0.0.1:502/2", {"point": "it_input", "kind": "meter"}),
]
ENERGY = MetricEntry(MetricSpec("energy_import_kwh", "kWh", "counter"))
SITE = Site.model_validate(
    {"site": {"name": "dc", "region": "east-2023"},
     "energy": {"total": ["meter-total"], "it": ["meter-it"]}}
)  # fmt: skip


def fill(
    store: Store,
    broken: int | None = None,
    missing: int | None = None,
    unsynced: Sequence[int] = (),
    max_error_s: float = 0.05,
    late: int | None = None,
) -> None:
    """One batch per minute from 09:59 to 11:01 (seq 1..63), each with both meters' counters.

    `broken`: that batch names a wrong previous hash; `missing`: that batch is never stored;
    `unsynced`: those batches report an unsynchronised clock; `max_error_s`: the clock error
    bound every batch reports; `late`: that batch is stored after all the others.
    """
    prev = GENESIS
    for seq in range(1, 64):
        minute = seq - 2  # seq 2 is 10:00
        ts_ns = int((T0 + 60 * minute) * 1e9)
        arrays = wire.pack_arrays(
            [ts_ns, ts_ns], [0, 1], [0, 0], [1000.0 + 2.5 * minute, 500.0 + 2.0 * minute]
        )
        clock = ClockStatus(synced=seq not in unsynced, max_error_s=max_error_s)
        link = b"\1" * 32 if seq == broken else prev
        batch = Batch("agent-1", seq, link, ts_ns, clock, SOURCES, [ENERGY], *arrays)
        body = wire.encode_body(batch)
        prev = wire.batch_hash(body)
        if seq == late:
            held = (batch, prev, body, ts_ns)
        elif seq != missing:
            store.insert_batch(batch, prev, body, ts_ns)
    if late is not None:
        store.insert_batch(*held)


def result_of(tmp_path: Path, **kw: object) -> dict[str, object]:
    store = Store(tmp_path / "store.db")
    try:
        fill(store, **kw)  # type: ignore[arg-type]
        w = store.open_window("infrastructure", int(T0 * 1e9), None, int(T0 * 1e9))
        store.close_window(w.id, int((T0 + HOUR) * 1e9))
        closed = store.window(w.id)
        assert closed is not None
        return window_result(store, SITE, closed, int((T0 + 2 * HOUR) * 1e9))
    finally:
        store.close()


def test_intact_chain_and_synced_clocks_keep_the_result_valid(tmp_path: Path) -> None:
    r = result_of(tmp_path)
    q = r["quality"]
    assert isinstance(q, dict)
    assert r["pue"] == pytest.approx(150.0 / 120.0)  # 2.5 and 2.0 kWh per minute
    assert q["valid"] is True and q["issues"] == []
    agent = q["chain"]["agents"]["agent-1"]
    assert q["chain"]["checked"] is True and q["chain"]["ok"] is True
    # batches sealed 09:45 .. 11:15 (window ± 900 s): all 63
    assert (agent["batches"], agent["first_seq"], agent["last_seq"]) == (63, 1, 63)
    assert agent["breaks"] == [] and agent["gaps"] == []
    clock = q["clock"]["agents"]["agent-1"]
    assert (clock["synced"], clock["unsynced"], clock["unknown"]) == (63, 0, 0)


def test_a_chain_break_invalidates_the_window(tmp_path: Path) -> None:
    q = result_of(tmp_path, broken=32)["quality"]
    assert isinstance(q, dict)
    assert q["valid"] is False and q["chain"]["ok"] is False
    assert q["chain"]["agents"]["agent-1"]["breaks"] == [32]
    assert any("hash chain broken at batch(es) 32" in i for i in q["issues"])


def test_a_missing_batch_is_a_gap_and_an_issue(tmp_path: Path) -> None:
    q = result_of(tmp_path, missing=30)["quality"]
    assert isinstance(q, dict)
    agent = q["chain"]["agents"]["agent-1"]
    assert agent["gaps"] == [31] and agent["gaps_open"] == [31]
    assert any("before 31 never arrived" in i for i in q["issues"])
    # one missing minute of a counter is bridged exactly: the result stays valid
    assert q["valid"] is True
    assert q["sources"][0]["longest_gap_s"] == 120


def test_a_batch_that_arrives_late_fills_its_gap(tmp_path: Path) -> None:
    q = result_of(tmp_path, late=30)["quality"]
    assert isinstance(q, dict)
    agent = q["chain"]["agents"]["agent-1"]
    # batch 31 arrived before its predecessor: a gap on arrival; 30 then hashed to 31's
    # prev, so that link is verified after all and no gap remains
    assert agent["gaps"] == [] and agent["gaps_open"] == []
    assert not any("arrived late" in i or "never arrived" in i for i in q["issues"])
    assert q["valid"] is True and q["sources"][0]["longest_gap_s"] == 60


def test_unsynchronised_clock_is_reported(tmp_path: Path) -> None:
    q = result_of(tmp_path, unsynced=[10, 11, 12])["quality"]
    assert isinstance(q, dict)
    assert q["clock"]["ok"] is False
    assert q["clock"]["agents"]["agent-1"]["unsynced"] == 3
    assert any("clock not synchronised (NTP) in 3 of 63 batches" in i for i in q["issues"])


def test_a_clock_error_bound_beyond_the_interval_limit_invalidates(tmp_path: Path) -> None:
    q = result_of(tmp_path, max_error_s=1200.0)["quality"]
    assert isinstance(q, dict)
    assert q["valid"] is False
    assert q["clock"]["agents"]["agent-1"]["max_error_s"] == 1200.0
    assert any("clock error bound 1200 s exceeds the 900 s" in i for i in q["issues"])


def test_a_source_without_samples_is_listed_with_zero_coverage() -> None:
    total = Series(
        "meter-total",
        "energy_import_kwh",
        "kWh",
        "counter",
        tuple(T0 + 60 * k for k in range(61)),
        tuple(1000.0 + 2.5 * k for k in range(61)),
    )
    result = evaluate_infrastructure(SITE, [total], T0, T0 + HOUR)
    q = result["quality"]
    assert q["valid"] is False and q["interval_ok"] is False
    listed = {e["source"]: e for e in q["sources"]}
    assert listed["meter-total"]["coverage"] == 1.0
    assert (listed["meter-it"]["samples"], listed["meter-it"]["coverage"]) == (0, 0.0)
    assert listed["meter-it"]["longest_gap_s"] == HOUR
