"""The infrastructure result: energies, PUE, level, CE, CUE, provenance and quality."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from dcmeter.collectors.evaluation.infrastructure import evaluate_infrastructure
from dcmeter.collectors.evaluation.jsonl import (
    parse_rfc3339,
    read_jsonl,
    rfc3339,
    series_from_records,
)
from dcmeter.collectors.evaluation.series import Series
from dcmeter.collectors.evaluation.site import Site

T0 = parse_rfc3339("2026-11-22T10:00:00Z")
HOUR = 3600.0
MINUTES = range(61)  # samples every 60 s from T0 to T0 + 1 h


def make_site(**energy: Any) -> Site:
    roles = {"total": ["meter-total"], "it": ["meter-it"], **energy}
    return Site.model_validate({"site": {"name": "dc", "region": "east-2023"}, "energy": roles})


def meter(
    source: str, kwh_per_minute: float, point: str, offsets: Sequence[int] = MINUTES
) -> Series:
    return Series(
        source=source,
        metric="energy_import_kwh",
        unit="kWh",
        kind="counter",
        ts=tuple(T0 + 60 * k for k in offsets),
        values=tuple(1000.0 + kwh_per_minute * k for k in offsets),
        labels={"point": point},
    )


def pv(watts: float) -> Series:
    ts = tuple(T0 + 60 * k for k in MINUTES)
    return Series("pv-1", "power_w", "W", "gauge", ts, (watts,) * 61, labels={"point": "green"})


def base() -> list[Series]:
    # 2.5 kWh/min = 150 kWh per hour in total; 100/60 kWh/min = 100 kWh per hour of IT
    return [meter("meter-total", 2.5, "total"), meter("meter-it", 100 / 60, "it_input")]


def test_pue_level_ce_and_cue_of_one_hour() -> None:
    result = evaluate_infrastructure(make_site(), base(), T0, T0 + HOUR)
    assert result["kind"] == "infrastructure"
    assert result["window"] == {
        "start": "2026-11-22T10:00:00Z",
        "end": "2026-11-22T11:00:00Z",
        "hours": 1.0,
    }
    assert result["energy_kwh"]["total"] == pytest.approx(150.0)  # 60 min × 2.5 kWh
    assert result["energy_kwh"]["it"] == pytest.approx(100.0)  # 60 min × 100/60 kWh
    assert result["energy_kwh"]["green"] == 0.0
    assert result["pue"] == pytest.approx(1.5)  # 150 / 100
    assert result["pue_level"] == 3  # 1.5 ≤ 1.50, level 3
    assert result["carbon_kg"] == pytest.approx(82.5)  # 150 kWh × 0.55 kg/kWh (east-2023)
    assert result["cue"] == pytest.approx(0.825)  # 82.5 kg / 100 kWh
    assert result["grid_factor"]["key"] == "east-2023"
    assert result["grid_factor"]["value"] == 0.55
    assert result["it_point"] == "it_input"
    assert result["site"] == "dc"
    assert result["pue_thresholds"]["level1"] == 1.2
    assert (result["quality"]["valid"], result["quality"]["issues"]) == (True, [])
    total = result["sources"]["total"]
    assert total["sources"] == ["meter-total"] and total["method"] == "counter"
    assert total["metrics"] == ["energy_import_kwh"] and total["points"] == ["total"]
    assert total["events"] == [] and total["valid"] is True
    green = result["sources"]["green"]
    assert (green["sources"], green["method"]) == ([], None)
    json.dumps(result, allow_nan=False)  # JSON-ready


def test_green_electricity_reduces_ce_and_cue() -> None:
    series = [*base(), pv(30_000.0)]
    result = evaluate_infrastructure(make_site(green=["pv-1"]), series, T0, T0 + HOUR)
    assert result["energy_kwh"]["green"] == pytest.approx(30.0)  # 30 kW × 1 h
    assert result["carbon_kg"] == pytest.approx(66.0)  # (150 − 30) kWh × 0.55
    assert result["cue"] == pytest.approx(0.66)  # 66 kg / 100 kWh
    assert result["sources"]["green"]["method"] == "integrated_power"
    assert result["quality"]["valid"] is True
    assert result["quality"]["issues"] == [
        "green: integrated power used for pv-1: no energy counter (energy_import_kwh)"
    ]


def test_configured_factor_and_pue_levels() -> None:
    site = Site.model_validate(
        {
            "site": {"name": "dc", "grid_factor_kg_per_kwh": 0.4},
            "energy": {"total": ["meter-total"], "it": ["meter-it"]},
            "pue_levels": {"level1": 1.3, "level2": 1.4, "level3": 1.5},
        }
    )
    result = evaluate_infrastructure(site, base(), T0, T0 + HOUR)
    assert result["grid_factor"]["key"] == "configured"
    assert result["carbon_kg"] == pytest.approx(60.0)  # 150 × 0.4
    assert result["pue_thresholds"]["configured"] is True
    assert result["pue_level"] == 3


def test_wrap_in_total_is_reported_and_valid() -> None:
    modulus = 4294967.296  # 2**32 Wh in kWh
    values = tuple((modulus - 75.0 + 2.5 * k) % modulus for k in MINUTES)  # wraps at minute 30
    total = Series(
        "meter-total",
        "energy_import_kwh",
        "kWh",
        "counter",
        tuple(T0 + 60 * k for k in MINUTES),
        values,
        modulus,
    )
    result = evaluate_infrastructure(make_site(), [total, base()[1]], T0, T0 + HOUR)
    assert result["energy_kwh"]["total"] == pytest.approx(150.0, abs=1e-6)
    (event,) = result["sources"]["total"]["events"]
    assert event["kind"] == "wrap" and event["ts"] == "2026-11-22T10:30:00Z"
    assert result["quality"]["valid"] is True


def test_reset_in_it_makes_the_result_invalid() -> None:
    values = [1000.0 + 100 / 60 * k for k in range(31)] + [100 / 60 * k for k in range(1, 31)]
    it = Series(
        "meter-it",
        "energy_import_kwh",
        "kWh",
        "counter",
        tuple(T0 + 60 * k for k in MINUTES),
        tuple(values),
    )
    result = evaluate_infrastructure(make_site(), [base()[0], it], T0, T0 + HOUR)
    # 30 min before the reset (50 kWh) + the counter from zero to 30 × 100/60 (50 kWh)
    assert result["energy_kwh"]["it"] == pytest.approx(100.0)
    assert result["quality"]["valid"] is False
    assert result["sources"]["it"]["events"][0]["kind"] == "reset"
    assert any(
        i.startswith("it: meter-it energy_import_kwh: counter reset")
        for i in result["quality"]["issues"]
    )


def test_missing_it_data_makes_the_result_invalid() -> None:
    result = evaluate_infrastructure(make_site(), base()[:1], T0, T0 + HOUR)
    assert result["energy_kwh"]["it"] is None
    assert result["pue"] is None and result["pue_level"] is None and result["cue"] is None
    assert result["quality"]["valid"] is False
    assert (
        "it: meter-it: no energy_import_kwh or power_w samples around the window"
        in (result["quality"]["issues"])
    )


def test_short_coverage_makes_the_result_invalid() -> None:
    late = [meter("meter-total", 2.5, "total", range(10, 61)), base()[1]]
    result = evaluate_infrastructure(make_site(), late, T0, T0 + HOUR)
    assert result["quality"]["valid"] is False
    assert result["sources"]["total"]["coverage"] == pytest.approx(3000 / 3600)
    assert any("first sample after window start by 600 s" in i for i in result["quality"]["issues"])


def test_integrated_power_over_a_gap_makes_the_result_invalid() -> None:
    offsets = [k for k in MINUTES if not 10 < k < 30]  # nothing for 20 minutes
    it = Series(
        "meter-it",
        "power_w",
        "W",
        "gauge",
        tuple(T0 + 60 * k for k in offsets),
        (100_000.0,) * len(offsets),
    )
    result = evaluate_infrastructure(make_site(), [base()[0], it], T0, T0 + HOUR)
    assert result["energy_kwh"]["it"] == pytest.approx(100.0)  # 100 kW × 1 h
    assert result["sources"]["it"]["method"] == "integrated_power"
    assert result["quality"]["valid"] is False
    assert any("gap of 1200 s" in i for i in result["quality"]["issues"])


def test_empty_window_is_invalid() -> None:
    result = evaluate_infrastructure(make_site(), base(), T0, T0)
    assert result["quality"]["valid"] is False
    assert result["quality"]["issues"] == [
        "window end 2026-11-22T10:00:00Z is not after its start 2026-11-22T10:00:00Z"
    ]
    assert result["window"]["hours"] == 0.0


def test_point_mismatch_is_an_issue() -> None:
    result = evaluate_infrastructure(make_site(it_point="it_pdu"), base(), T0, T0 + HOUR)
    assert result["it_point"] == "it_pdu"
    assert result["quality"]["issues"] == ["it: sources labelled point it_input, expected it_pdu"]


def test_jsonl_round_trip(tmp_path: Path) -> None:
    lines = [
        json.dumps(
            {
                "ts": rfc3339(T0 + 60 * k),
                "source": s,
                "metric": "energy_import_kwh",
                "value": 1000.0 + rate * k,
                "unit": "kWh",
                "kind": "counter",
                "labels": {"point": p},
            }
        )
        for k in MINUTES
        for s, rate, p in (("meter-total", 2.5, "total"), ("meter-it", 100 / 60, "it_input"))
    ]
    path = tmp_path / "samples.jsonl"
    path.write_text("\n".join(reversed(lines)) + "\n\n", encoding="utf-8")
    series = series_from_records(read_jsonl(path))
    assert [(s.source, len(s.ts)) for s in series] == [("meter-it", 61), ("meter-total", 61)]
    assert list(series[0].ts) == sorted(series[0].ts)
    result = evaluate_infrastructure(make_site(), series, T0, T0 + HOUR)
    assert result["pue"] == pytest.approx(1.5)


def test_rfc3339_accepts_z_and_offsets() -> None:
    assert parse_rfc3339("2026-11-22T18:00:00+08:00") == T0
    assert parse_rfc3339("2026-11-22T10:00:00.5Z") == T0 + 0.5
    assert rfc3339(T0 + 0.5) == "2026-11-22T10:00:00.500000Z"
    with pytest.raises(ValueError, match="no UTC offset"):
        parse_rfc3339("2026-11-22T10:00:00")


def test_read_jsonl_names_the_bad_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"ts": "2026-11-22T10:00:00Z"}\n{not json\n', encoding="utf-8")
    with pytest.raises(ValueError, match="line 2: not valid JSON"):
        read_jsonl(path)


def test_records_with_labels_make_separate_series() -> None:
    common = {"source": "m", "metric": "power_w", "unit": "W", "kind": "gauge", "value": 1}
    records = [
        {**common, "ts": "2026-11-22T10:00:00Z", "labels": {"phase": "L1"}},
        {**common, "ts": "2026-11-22T10:00:00Z", "labels": {"phase": "L2"}},
        {**common, "ts": "2026-11-22T10:01:00Z", "labels": {"phase": "L1"}, "modulus": None},
    ]
    series = series_from_records(records)
    assert [(s.labels["phase"], len(s.ts)) for s in series] == [("L1", 2), ("L2", 1)]
    with pytest.raises(ValueError, match="record 1: value must be a"):
        series_from_records([{**common, "ts": "2026-11-22T10:00:00Z", "value": "x"}])
