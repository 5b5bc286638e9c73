"""Plausibility limits: each rule at its exact boundary, defaults, overrides, the results.

Limits are chosen so the boundaries are exact in binary floating point: margin 0.25 and a
max power of 3.6 MW make an energy counter's limit 1.25 kWh/s; with a resolution of 0.5 kWh,
a 60 s step may count 1.25 × 60 + 0.5 = 75.5 kWh.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from dcmeter.base.configfile import ConfigError
from dcmeter.collectors.evaluation.evaluate import evaluate
from dcmeter.collectors.evaluation.finite import scrub
from dcmeter.collectors.evaluation.indicators import cee_level, pue_level
from dcmeter.collectors.evaluation.jsonl import parse_rfc3339, rfc3339
from dcmeter.collectors.evaluation.plausibility import counter_steps, screen
from dcmeter.collectors.evaluation.series import Series
from dcmeter.collectors.evaluation.site import Site, load_site
from dcmeter.collectors.evaluation.site_plausibility import Plausibility

T0 = parse_rfc3339("2026-11-22T10:00:00Z")
TIGHT = Plausibility(margin=0.25, sources={"m": {"max_power_w": 3.6e6, "resolution_kwh": 0.5}})
ABOVE = math.nextafter(75.5, math.inf)


def counter(values: Sequence[float], step_s: float = 60.0, modulus: float | None = None,
            source: str = "m", unit: str = "kWh") -> Series:
    ts = [T0 + step_s * i for i in range(len(values))]
    return Series(source, "energy_import_kwh", unit, "counter", ts, values, modulus)


def gauge(metric: str, unit: str, values: Sequence[float], source: str = "m",
          labels: dict[str, str] | None = None) -> Series:
    ts = [T0 + 60.0 * i for i in range(len(values))]
    return Series(source, metric, unit, "gauge", ts, values, labels=labels or {})


def test_counter_increase_exactly_at_the_limit_is_plausible_just_above_is_not() -> None:
    at = screen([counter([1000.0, 1075.5])], TIGHT)
    assert at.findings == []
    above = screen([counter([0.0, ABOVE])], TIGHT)  # the next double after 75.5
    (f,) = above.findings
    assert (f.rule, f.checked, f.limit, f.span_s, f.count) == (
        "counter_increase", pytest.approx(ABOVE), 75.5, 60.0, 1)
    assert list(above.series[0].values) == [0.0]


def test_the_limit_grows_with_the_time_since_the_last_plausible_sample() -> None:
    # 0, 1e308, 120 at 0, 60, 120 s: 1e308 is left out; 120 kWh in 120 s is within
    # 1.25 × 120 + 0.5 = 150.5 kWh of the last plausible sample (0).
    s = screen([counter([0.0, 1e308, 120.0])], TIGHT)
    (f,) = s.findings
    assert f.value == 1e308 and f.ts == T0 + 60 and f.limit == 75.5
    assert list(s.series[0].values) == [0.0, 120.0]
    # The pure step function agrees, with positions in the series given.
    assert counter_steps([0, 60, 120], [0.0, 1e308, 120.0], None, 1.25, 0.5) == [
        (1, 1e308, 75.5, 60.0)]


def test_a_decrease_is_plausible_when_its_reset_or_wrap_fits() -> None:
    # Meter swap: 5000 -> 70 kWh counts 70 (a reset) <= 75.5: kept; the energy module
    # reports the reset.
    assert screen([counter([5000.0, 70.0])], TIGHT).findings == []
    # No modulus: a drop to 80 kWh would count 80 as a reset: too much.
    (f,) = screen([counter([5000.0, 80.0])], TIGHT).findings
    assert (f.rule, f.checked) == ("counter_increase", 80.0)
    # Modulus 10000: 9990 -> 80 is a wrap counting 90 > 75.5, a reset counting 80 > 75.5.
    (f,) = screen([counter([9990.0, 80.0], modulus=10000.0)], TIGHT).findings
    assert f.checked == 80.0
    # 9990 -> 60 wraps counting 70 <= 75.5: kept.
    assert screen([counter([9990.0, 60.0], modulus=10000.0)], TIGHT).findings == []


def test_counter_values_below_zero_or_above_the_modulus() -> None:
    s = screen([counter([10.0, -1.0, 20.0, 10001.0, 30.0], modulus=10000.0)], TIGHT)
    rules = {f.rule: (f.value, f.limit) for f in s.findings}
    assert rules == {"counter_negative": (-1.0, 0.0),
                     "counter_above_modulus": (10001.0, 10000.0)}
    assert list(s.series[0].values) == [10.0, 20.0, 30.0]
    # Exactly the modulus is allowed (a register at its top before it wraps).
    assert screen([counter([9999.0, 10000.0], modulus=10000.0)], TIGHT).findings == []


def test_energy_units_are_converted_to_the_limit() -> None:
    # 75.5 kWh = 75 500 Wh per 60 s.
    assert screen([counter([0.0, 75_500.0], unit="Wh")], TIGHT).findings == []
    (f,) = screen([counter([0.0, 75_501.0], unit="Wh")], TIGHT).findings
    assert f.limit == pytest.approx(75_500.0) and f.checked_unit == "Wh"


def test_power_range_boundaries() -> None:
    # Max 3.6 MW + 25 % = 4.5 MW; negative down to 1 % of 3.6 MW = -36 kW.
    ok = gauge("power_w", "W", [4.5e6, -36_000.0, 0.0])
    assert screen([ok], TIGHT).findings == []
    bad = gauge("power_w", "W", [math.nextafter(4.5e6, math.inf), -36_001.0, 1.0])
    found = {f.rule: (f.value, f.limit) for f in screen([bad], TIGHT).findings}
    assert found == {"power_above_range": (math.nextafter(4.5e6, math.inf), 4.5e6),
                     "power_below_range": (-36_001.0, -36_000.0)}
    # In kW the limit is in kW.
    (f,) = screen([gauge("power_w", "kW", [4501.0])], TIGHT).findings
    assert f.limit == pytest.approx(4500.0) and f.unit == "kW"


@pytest.mark.parametrize(("metric", "unit", "values", "flagged"), [
    ("cpu_util_pct", "%", [0.0, 100.0], []),
    ("cpu_util_pct", "%", [-0.5, 100.5, 50.0], [-0.5, 100.5]),
    ("gpu_util_pct", "%", [150.0], [150.0]),
    ("cpu_util_pct", "1", [1.0, 1.01], [1.01]),  # a fraction: 0..1
])
def test_percentages_stay_within_0_and_100(metric: str, unit: str, values: list[float],
                                           flagged: list[float]) -> None:
    s = screen([gauge(metric, unit, values)], Plausibility())
    (f,) = s.findings or [None]
    if not flagged:
        assert f is None
        return
    assert f is not None and f.rule == "percent_out_of_range" and f.count == len(flagged)
    assert f.value == flagged[0]


def test_octets_against_the_line_rate() -> None:
    # 10 Gbit/s port, margin 0.25: 1.5625e9 octets/s; 60 s plus 1 s of jitter: 9.53125e10.
    p = Plausibility(margin=0.25)
    labels = {"if_name": "eth0"}
    speed = Series("sw", "if_speed_bps", "bit/s", "gauge", [T0, T0 + 60], [10e9, 10e9],
                   labels=labels)

    def octets(step: float) -> Series:
        return Series("sw", "if_in_octets", "octets", "counter", [T0, T0 + 60], [0.0, step],
                      2.0**64, labels)

    assert screen([speed, octets(9.53125e10)], p).findings == []
    (f,) = screen([speed, octets(9.53125e10 + 1e5)], p).findings
    assert f.rule == "octets_above_line_rate" and f.checked_unit == "bit/s"
    assert f.limit == pytest.approx(9.53125e10 * 8 / 60)
    # Without a reported speed, the site's maximum line rate (1.6 Tbit/s) bounds it.
    assert screen([octets(1e13)], p).findings == []
    (f,) = screen([octets(1.6e12 * 1.25 / 8 * 61 * 1.001)], p).findings
    assert f.rule == "octets_above_line_rate"


def test_a_line_rate_above_the_fastest_port_is_implausible() -> None:
    s = Series("sw", "if_speed_bps", "bit/s", "gauge", [T0], [1e15])
    (f,) = screen([s], Plausibility()).findings
    assert (f.rule, f.limit) == ("line_rate_out_of_range", 1.6e12)


def test_defaults_by_kind_and_overrides() -> None:
    p = Plausibility()
    assert [p.power_w("x", k) for k in ("meter", "compute", "storage", "network", "gpu")] == [
        200e6, 250e3, 250e3, 250e3, 5e3]
    assert p.power_w("x", None) == p.power_w("x", "chiller") == 200e6  # as a meter
    assert p.resolution("x", "meter") == 1.0 and p.resolution("x", "gpu") == 0.001
    q = Plausibility(max_power_w={"meter": 2e6, "chiller": 1e6}, resolution_kwh={"meter": 0.1},
                     sources={"big": {"max_power_w": 9e6}})
    assert q.power_w("x", "meter") == 2e6 and q.power_w("x", "chiller") == 1e6
    assert q.power_w("big", "meter") == 9e6 and q.power_w("x", "compute") == 250e3
    assert q.resolution("x", "meter") == 0.1


def test_kind_label_picks_the_limit() -> None:
    # A GPU at 5 kW + 10 %: 5.5 kW; the same reading from a meter is fine.
    gpu = gauge("gpu_power_w", "W", [5600.0], "g", {"kind": "gpu"})
    meter = gauge("power_w", "W", [5600.0], "m2", {"kind": "meter"})
    (f,) = screen([gpu, meter], Plausibility()).findings
    assert f.source == "g" and f.limit == pytest.approx(5500.0)


def test_nothing_implausible_returns_the_same_series_objects() -> None:
    s = [counter([0.0, 1.0, 2.0]), gauge("power_w", "W", [1.0, float("nan")])]
    out = screen(s, Plausibility())
    assert out.findings == [] and all(a is b for a, b in zip(out.series, s, strict=True))


def test_non_finite_samples_are_left_for_the_evaluation_to_report() -> None:
    s = counter([0.0, float("nan"), 1e308, 2.0])
    out = screen([s], TIGHT)
    (f,) = out.findings
    assert f.value == 1e308
    assert np.isnan(out.series[0].values).sum() == 1 and len(out.series[0].values) == 3


def test_pue_below_1_gets_no_level() -> None:
    assert pue_level(0.999) is None
    assert pue_level(1.0) == 1
    assert pue_level(math.inf) is None and pue_level(math.nan) is None
    assert cee_level(math.inf) is None


SITE = {"site": {"name": "dc", "region": "east-2023"},
        "energy": {"total": ["meter-total"], "it": ["meter-it"]}}


def meters(total: Sequence[float], it_per_min: float = 2.0) -> list[Series]:
    ts = [T0 + 60.0 * i for i in range(61)]
    return [
        Series("meter-total", "energy_import_kwh", "kWh", "counter", ts, total,
               labels={"point": "total"}),
        Series("meter-it", "energy_import_kwh", "kWh", "counter", ts,
               [500.0 + it_per_min * i for i in range(61)], labels={"point": "it_input"}),
    ]


@pytest.mark.parametrize("kind", ["infrastructure", "general", "ai"])
def test_results_leave_the_sample_out_and_are_not_valid(kind: Any) -> None:
    # 2.5 kWh a minute for an hour: 150 kWh total, 120 kWh IT, PUE 1.25, except one sample
    # of 1e308 kWh at minute 30 (the attack).
    total = [1000.0 + 2.5 * i for i in range(61)]
    total[30] = 1e308
    r = evaluate(kind, Site.model_validate(SITE), meters(total), T0, T0 + 3600)
    assert r["energy_kwh"]["total"] == pytest.approx(150.0)
    assert r["pue"] == pytest.approx(1.25)
    # Not valid: the level is only indicative (issue 13, levels only where they hold).
    assert r["pue_level"] is None and r["pue_level_indicative"] == 2
    q = r["quality"]
    assert q["valid"] is False
    (e,) = q["implausible"]
    assert e == {
        "source": "meter-total", "metric": "energy_import_kwh", "labels": {"point": "total"},
        "rule": "counter_increase", "ts": rfc3339(T0 + 1800), "value": 1e308, "unit": "kWh",
        "checked": pytest.approx(1e308), "checked_unit": "kWh",
        "limit": pytest.approx(200e6 * 1.1 * 60 / 3.6e6 + 1.0), "span_s": 60.0, "count": 1,
    }
    assert q["issues"][0].startswith("meter-total energy_import_kwh: 1 implausible sample(s)")


def test_a_clean_result_lists_no_implausible_samples_and_stays_valid() -> None:
    r = evaluate("infrastructure", Site.model_validate(SITE),
                 meters([1000.0 + 2.5 * i for i in range(61)]), T0, T0 + 3600)
    assert r["quality"]["implausible"] == [] and r["quality"]["valid"] is True


def test_pue_below_1_is_not_valid_and_not_graded() -> None:
    r = evaluate("infrastructure", Site.model_validate(SITE),
                 meters([1000.0 + 1.0 * i for i in range(61)]), T0, T0 + 3600)
    assert r["pue"] == pytest.approx(0.5) and r["pue_level"] is None
    assert r["quality"]["valid"] is False
    assert any(i.startswith("PUE below 1") for i in r["quality"]["issues"])


def test_scrub_replaces_non_finite_numbers_and_says_where() -> None:
    result = {"pue": math.inf, "a": [1.0, math.nan], "quality": {"valid": True, "issues": []}}
    out = scrub(result)
    assert out["pue"] is None and out["a"] == [1.0, None]
    assert out["quality"]["valid"] is False
    assert out["quality"]["issues"] == ["non-finite figures replaced by null: pue, a[1]"]
    clean = {"pue": 1.2, "quality": {"valid": True, "issues": []}}
    assert scrub(clean) is clean


PLAUS = """
[site]
name = "dc"
region = "east-2023"

[energy]
total = ["meter-total"]
it = ["meter-it"]

[plausibility]
margin = 0.2
{extra}
"""


def test_site_file_plausibility_table(tmp_path: Path) -> None:
    path = tmp_path / "site.toml"
    path.write_text(PLAUS.format(extra='max_power_w = { meter = 5e6 }\n'
                                       '[plausibility.sources."meter-it"]\n'
                                       'max_power_w = 2e6\n'))
    p = load_site(path).plausibility
    assert p.margin == 0.2 and p.power_w("meter-total", "meter") == 5e6
    assert p.power_w("meter-it", "meter") == 2e6


@pytest.mark.parametrize("extra", ["max_power_w = { meter = -1 }", "margin2 = 1",
                                   "max_line_rate_bps = 0"])
def test_bad_plausibility_keys_are_refused(tmp_path: Path, extra: str) -> None:
    path = tmp_path / "site.toml"
    path.write_text(PLAUS.format(extra=extra))
    with pytest.raises(ConfigError, match="plausibility"):
        load_site(path)
