"""Exact grading at the standard's limits, and levels only on valid results (issue 13).

Expected levels are worked by hand from decimal readings; each boundary is checked exactly at
the limit and one reading's last digit beyond it.
"""

from __future__ import annotations

import json
import tomllib
from fractions import Fraction
from io import StringIO
from pathlib import Path
from typing import Any

import pytest

from dcmeter.cli.render import print_result, result_console
from dcmeter.collectors.evaluation.energy import counter_energy, integrated_energy
from dcmeter.collectors.evaluation.evaluate import evaluate
from dcmeter.collectors.evaluation.exact import (
    GRADE_DIGITS,
    at_least,
    at_most,
    graded,
    reading,
    seconds_at_most,
    seconds_below,
)
from dcmeter.collectors.evaluation.grid_factors import DEFAULT_PUE_THRESHOLDS
from dcmeter.collectors.evaluation.indicators import aee_level, cee_level, pue, pue_level
from dcmeter.collectors.evaluation.jsonl import parse_rfc3339, read_jsonl, series_from_records
from dcmeter.collectors.evaluation.levels import withhold_levels
from dcmeter.collectors.evaluation.quality import series_quality, window_rule
from dcmeter.collectors.evaluation.series import Series
from dcmeter.collectors.evaluation.site import Site, load_site
from dcmeter.collectors.evaluation.uncertainty import within_mpe
from dcmeter.collectors.reporting.report import render_html, series_from
from dcmeter.collectors.reporting.report_html import LABELS

GOLDEN = Path(__file__).resolve().parents[2] / "golden"
T0 = 1_790_000_000.0  # 2026-09-21, whole seconds


def counter(values: list[float], unit: str = "kWh", step_s: float = 900.0) -> Series:
    ts = [T0 + step_s * i for i in range(len(values))]
    return Series("m", "energy_import_kwh", unit, "counter", ts, values)


def test_a_reading_is_the_decimal_the_device_reported() -> None:
    assert reading(1005.2) - reading(1000.0) == Fraction(26, 5)  # 5.2 exactly
    assert 1005.2 - 1000.0 != 5.2  # what float subtraction gives instead


def test_the_grading_precision_drops_float_noise_but_not_a_last_digit() -> None:
    assert GRADE_DIGITS == 12
    assert graded(1.3000000000000114) == graded(1.3)
    assert graded(223.99999999999704) == graded(224.0)
    assert graded(1.30025) > graded(1.3)  # 1005.201 instead of 1005.2 over 4.0 kWh
    assert graded(223.99350818721925) < graded(224.0)


@pytest.mark.parametrize(
    ("total", "it", "level"),
    [
        # (last total reading, last IT reading) from 1000.0 and 200.0 kWh: PUE, hand-worked
        (1003.6, 203.0, 1),  # 3.6 / 3.0 = 1.20: level 1 (≤ 1.20)
        (1003.601, 203.0, 2),  # 3.601 / 3.0 = 1.2003: level 2
        (1005.2, 204.0, 2),  # 5.2 / 4.0 = 1.30: level 2 (the issue's case)
        (1005.201, 204.0, 3),  # 5.201 / 4.0 = 1.30025: level 3
        (1003.6, 202.4, 3),  # 3.6 / 2.4 = 1.50: level 3 (≤ 1.50)
        (1003.601, 202.4, None),  # 3.601 / 2.4 = 1.50042: beyond level 3
    ],
)
def test_pue_level_from_meter_readings_at_each_bound(
    total: float, it: float, level: int | None
) -> None:
    e_total = counter_energy(counter([1000.0, total]), T0, T0 + 900.0, 900.0).kwh
    e_it = counter_energy(counter([200.0, it]), T0, T0 + 900.0, 900.0).kwh
    assert pue_level(pue(e_total, e_it), DEFAULT_PUE_THRESHOLDS) == level


def test_pue_level_of_float_noise_around_each_bound() -> None:
    # The floats the old code produced from decimal readings: each is the bound itself.
    assert pue_level(1.2000000000000075) == 1
    assert pue_level(1.3000000000000114) == 2
    assert pue_level(1.500000000000006) == 3
    assert pue_level(0.9999999999999999) == 1  # exactly 1 in decimal: not below 1
    assert pue_level(0.999) is None


@pytest.mark.parametrize(
    ("value", "level"),
    [
        (50.0, "advanced"),
        (49.99999999999978, "advanced"),  # 85000 / ((1020.7 - 1000.3) x 1000 / 12) in float
        (49.99754913974805, "energy_saving"),  # 1020.701: a hair below 50
        (20.0, "energy_saving"),
        (19.999999999999954, "energy_saving"),  # 1051.4 - 1000.4 in float
        (19.999607850826454, None),  # 1051.401: a hair below 20
        (float("nan"), None),
        (None, None),
    ],
)
def test_cee_level_at_table_1_bounds(value: float | None, level: str | None) -> None:
    assert cee_level(value) == level


@pytest.mark.parametrize(
    ("value", "level"),
    [
        (224.0, "advanced"),
        (223.99999999999704, "advanced"),  # 1545.6 TFLOPs over (1024.4 - 1017.5) kWh in float
        (223.99350818721925, None),  # one run's end reading 1024.401: a hair below
        (float("inf"), None),
        (None, None),
    ],
)
def test_aee_level_at_table_2_bound(value: float | None, level: str | None) -> None:
    assert aee_level(value) == level


def test_a_configured_limit_is_compared_as_the_decimal_written() -> None:
    assert aee_level(0.30000000000000004, 0.3) == "advanced"  # 0.1 + 0.2 reaches 0.3
    assert at_least(0.1 + 0.2, 0.3) and at_most(0.1 + 0.2, 0.3)
    assert not at_most(None, 1.0) and not at_least(float("nan"), 1.0)


def test_counter_energy_is_exact_on_the_reported_decimals() -> None:
    # Wh counter 1017500.0 -> 1024400.0 Wh = 6.9 kWh; J counter: 3.6e6 J = 1 kWh exactly.
    assert counter_energy(counter([1017.5, 1024.4]), T0, T0 + 900, 900).kwh == 6.9
    assert counter_energy(counter([1017500.0, 1024400.0], "Wh"), T0, T0 + 900, 900).kwh == 6.9
    assert counter_energy(counter([1e6, 4.6e6], "J"), T0, T0 + 900, 900).kwh == 1.0


def test_counter_energy_interpolates_exactly_at_window_edges() -> None:
    # 1000.0, 1000.3, 1000.6 kWh at 0, 900, 1800 s; window [450, 1350] s: 0.3 kWh exactly.
    s = counter([1000.0, 1000.3, 1000.6])
    assert counter_energy(s, T0 + 450, T0 + 1350, 900).kwh == 0.3


def test_counter_energy_counts_a_wrap_exactly() -> None:
    # modulus 1000 kWh: 999.7 -> 0.2 wraps: 0.5 kWh; then 0.2 -> 0.6: 0.4 kWh; 0.9 kWh.
    ts = [T0, T0 + 900, T0 + 1800]
    s = Series("m", "energy_import_kwh", "kWh", "counter", ts, [999.7, 0.2, 0.6], modulus=1000.0)
    figure = counter_energy(s, T0, T0 + 1800, 900)
    assert figure.kwh == 0.9 and figure.wraps == 1 and figure.valid


def test_integrated_energy_at_a_bound() -> None:
    # 1300 W for 24 h = 31.2 kWh and 1000 W = 24 kWh: PUE 1.30, level 2.
    ts = [T0 + 60.0 * i for i in range(1441)]
    total = Series("t", "power_w", "W", "gauge", ts, [1300.0] * len(ts))
    it = Series("i", "power_w", "W", "gauge", ts, [1000.0] * len(ts))
    e_total = integrated_energy(total, T0, T0 + 86400, 900).kwh
    e_it = integrated_energy(it, T0, T0 + 86400, 900).kwh
    assert pue_level(pue(e_total, e_it)) == 2


def test_time_rules_in_whole_microseconds() -> None:
    assert seconds_at_most(900.0000002, 900.0)  # below the float resolution of timestamps
    assert not seconds_at_most(900.000001, 900.0)  # a microsecond over
    assert seconds_below(43199.999999, 43200.0) and not seconds_below(43199.9999999, 43200.0)


def test_a5_interval_rule_at_exactly_15_minutes() -> None:
    start = parse_rfc3339("2026-06-01T00:00:00.123456Z")
    ts = [start + 900.0 * i for i in range(5)]
    s = Series("h", "cpu_util_pct", "%", "gauge", ts, [50.0] * 5)
    assert series_quality(s, ts[0], ts[-1], 900.0)["interval_ok"] is True
    late = [*ts[:-1], parse_rfc3339("2026-06-01T01:00:00.123457Z")]  # 1 µs over 15 min
    s = Series("h", "cpu_util_pct", "%", "gauge", late, [50.0] * 5)
    assert series_quality(s, ts[0], late[-1], 900.0)["interval_ok"] is False


def test_a5_window_length_rule_at_exactly_12_hours() -> None:
    start = parse_rfc3339("2026-06-01T00:00:00.1Z")
    end = parse_rfc3339("2026-06-01T12:00:00.1Z")
    assert not any("shorter" in i for i in window_rule("general", start, end))
    end = parse_rfc3339("2026-06-01T12:00:00.099999Z")
    assert any("shorter than the 12 h minimum" in i for i in window_rule("general", start, end))


def test_mpe_check_at_the_limit() -> None:
    assert within_mpe(0.05, "energy")  # ±5 % (seed 004)
    assert within_mpe(0.05000000000000001, "energy")  # float noise of a computed 5 %
    assert not within_mpe(0.0501, "energy")


# Levels only where they hold.


def golden(name: str) -> tuple[dict[str, Any], Any, Any, float, float]:
    folder = GOLDEN / name
    case = tomllib.loads((folder / "case.toml").read_text())
    site = load_site(folder / "site.toml")
    series = series_from_records(read_jsonl(folder / "samples.jsonl"))
    runs = json.loads((folder / case["runs"]).read_text()) if "runs" in case else []
    start, end = parse_rfc3339(case["start"]), parse_rfc3339(case["end"])
    return evaluate(case["kind"], site, series, start, end, runs), site, series, start, end


def test_a_result_that_is_not_valid_carries_no_bare_level() -> None:
    # Two valid inference repetitions of five: AEE 710 >= 224, but the result is not valid.
    result, *_ = golden("ai-two-phases-too-few-repetitions")
    assert result["quality"]["valid"] is False
    assert result["aee_level"] is None and result["aee_level_indicative"] == "advanced"
    assert result["pue_level"] is None  # every level of the result
    # A 6 h general window (A.5 asks 12 h): CEE 21.7 would be energy-saving.
    result, *_ = golden("general-window-too-short")
    assert result["cee_level"] is None and result["cee_level_indicative"] == "energy_saving"


def test_a_valid_result_has_its_level_and_no_indicative_one() -> None:
    result, *_ = golden("aee-224-exact")
    assert result["quality"]["valid"] is True
    assert result["aee_level"] == "advanced" and result["aee_level_indicative"] is None


def test_withhold_levels_keeps_what_it_does_not_know() -> None:
    r = withhold_levels({"quality": {"valid": False}, "pue_level": 2, "cee": 3.0})
    assert r == {"quality": {"valid": False}, "pue_level": None, "pue_level_indicative": 2,
                 "cee": 3.0}
    assert withhold_levels({"quality": {"valid": True}, "pue_level": None}) == {
        "quality": {"valid": True}, "pue_level": None, "pue_level_indicative": None}
    # Idempotent: the collector applies it again after its own checks.
    assert withhold_levels(r) == {"quality": {"valid": False}, "pue_level": None,
                                  "pue_level_indicative": 2, "cee": 3.0}
    late = withhold_levels({"quality": {"valid": True}, "aee_level": "advanced"})
    late["quality"]["valid"] = False
    assert withhold_levels(late)["aee_level_indicative"] == "advanced"


def test_text_output_marks_an_indicative_level() -> None:
    result, *_ = golden("ai-two-phases-too-few-repetitions")
    buf = StringIO()
    print_result(result, console=result_console(file=buf, width=200))
    text = buf.getvalue()
    assert "level advanced (indicative: result not valid)" in text
    assert "level advanced)" not in text


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_html_report_marks_an_indicative_level(lang: str) -> None:
    result, site, series, start, end = golden("ai-two-phases-too-few-repetitions")
    html = render_html(result, series_from("ai", site, series, start, end), lang)  # type: ignore[arg-type]
    L = LABELS[lang]
    marked = L["indicative"].format(level=L["advanced"])
    assert marked in html
    # The grade's name appears only inside the marked phrase, never as a bare level cell.
    assert html.count(f">{L['advanced']}<") == 0


def test_a_missing_total_energy_is_reported_as_missing() -> None:
    # IT meter 200.0 -> 204.0 kWh, no total meter samples at all: E_total unknown.
    site = Site.model_validate({"site": {"name": "t", "region": "east-2023"},
                                "energy": {"total": ["meter-total"], "it": ["meter-it"]}})
    it = Series("meter-it", "energy_import_kwh", "kWh", "counter",
                [T0 + 900.0 * i for i in range(5)], [200.0, 201.0, 202.0, 203.0, 204.0],
                labels={"point": "it_input"})
    r = evaluate("infrastructure", site, [it], T0, T0 + 3600)
    assert r["pue"] is None and r["quality"]["valid"] is False
    issues = r["quality"]["issues"]
    assert any("total: no total energy (E_total) measured" in i for i in issues), issues
    assert not any("IT energy is not positive" in i for i in issues), issues
