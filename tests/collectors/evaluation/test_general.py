"""General computing: loads U, computing power C, CEE and its level, CCUE, A.5's rules."""

from __future__ import annotations

import itertools
import math
import re
import tomllib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from dcmeter.collectors.evaluation.evaluate import evaluate, source_ids
from dcmeter.collectors.evaluation.general import cee_level, evaluate_general
from dcmeter.collectors.evaluation.jsonl import parse_rfc3339
from dcmeter.collectors.evaluation.loads import counter_delta, mean_utilisation, reset_steps
from dcmeter.collectors.evaluation.series import Series
from dcmeter.collectors.evaluation.site import Site

ROOT = Path(__file__).resolve().parents[3]
T0 = parse_rfc3339("2026-11-01T00:00:00Z")
HOUR = 3600.0
M32 = 2.0**32


def meter(source: str, kw: float, point: str, hours: float = 12, dt: float = 900) -> Series:
    n = int(hours * HOUR / dt)
    return Series(source, "energy_import_kwh", "kWh", "counter",
                  tuple(T0 + dt * i for i in range(n + 1)),
                  tuple(1000.0 + kw * dt * i / HOUR for i in range(n + 1)),
                  labels={"point": point, "kind": "meter"}, accuracy=0.005)


def cpu(source: str, pct: float | Callable[[int], float], kind: str = "compute",
        hours: float = 12, dt: float = 900, accuracy: float | None = None) -> Series:
    n = int(hours * HOUR / dt)
    values = tuple(pct(i) if callable(pct) else pct for i in range(n + 1))
    return Series(source, "cpu_util_pct", "%", "gauge",
                  tuple(T0 + dt * i for i in range(n + 1)), values,
                  labels={"kind": kind}, accuracy=accuracy)


def port(source: str, name: str, in_bps: float, out_bps: float, speed: float | None,
         hours: float = 12, dt: float = 900, modulus: float = 2.0**64) -> list[Series]:
    n = int(hours * HOUR / dt)
    ts = tuple(T0 + dt * i for i in range(n + 1))
    labels = {"kind": "network", "if_name": name, "if_index": name[-1]}
    out = [Series(source, metric, "B", "counter", ts,
                  tuple((rate / 8 * dt * i) % modulus for i in range(n + 1)), modulus, labels)
           for metric, rate in (("if_in_octets", in_bps), ("if_out_octets", out_bps))]
    if speed is not None:
        out.append(Series(source, "if_speed_bps", "bit/s", "gauge", ts, (speed,) * len(ts),
                          labels=labels))
    return out


def make_site(groups: Sequence[dict[str, Any]], **general: Any) -> Site:
    return Site.model_validate({
        "site": {"name": "dc", "region": "east-2023"},
        "energy": {"total": ["meter-total"], "it": ["meter-it"]},
        "general": {"groups": list(groups), **general},
    })


def group(name: str, kind: str, count: int, rating: float, sources: list[str],
          **extra: Any) -> dict[str, Any]:
    return {"name": name, "kind": kind, "count": count, "rating": rating,
            "rating_source": "test", "sources": sources, **extra}


def meters(hours: float = 12, dt: float = 900) -> list[Series]:
    # 200 kW total, 160 kW IT: E per hour = 200000 Wh
    return [meter("meter-total", 200.0, "total", hours, dt),
            meter("meter-it", 160.0, "it_input", hours, dt)]


def test_defaults_are_annex_b_and_bad_groups_are_refused() -> None:
    site = make_site([group("a", "compute", 1, 1.0, ["h"])])
    g = site.general
    assert g is not None
    assert (g.lambda_, g.beta, g.gamma, g.method, g.unit_time_h) == (0.85, 0.10, 0.05, 1, 1.0)
    assert make_site([group("a", "compute", 1, 1.0, ["h"])], **{"lambda": 0.7}).general.lambda_ == 0.7  # type: ignore[union-attr]
    bad: list[tuple[list[dict[str, Any]], dict[str, Any], str]] = [
        ([group("s", "storage", 1, 1.0, ["x"])], {}, 'kind = "compute"'),
        ([group("a", "compute", 1, 1.0, ["h"]), group("a", "compute", 1, 1.0, ["i"])], {},
         "repeated: a"),
        ([group("a", "compute", 1, 1.0, ["h"], ports=["e1"])], {}, 'kind = "network" only'),
        ([group("a", "compute", 0, 1.0, ["h"])], {}, "greater than or equal to 1"),
        ([group("a", "compute", 1, 0.0, ["h"])], {}, "greater than 0"),
        ([group("a", "compute", 1, 1.0, [])], {}, "at least 1"),
        ([group("n", "network", 1, 1.0, ["s"], unknown_line_rate_bps={"e1": 0})], {}, "> 0"),
        ([group("a", "compute", 1, 1.0, ["h"])], {"method": 3}, "method"),
        ([group("a", "compute", 1, 1.0, ["h"])], {"lamda": 0.8}, "Extra inputs"),
    ]
    for groups, extra, text in bad:
        with pytest.raises(ValidationError, match=re.escape(text)):
            make_site(groups, **extra)


def test_example_general_block_of_site_toml_is_valid() -> None:
    text = (ROOT / "config" / "site.toml").read_text()
    lines = text.splitlines()
    start = lines.index("# [general]")
    block = []
    for line in lines[start:]:
        if not line.startswith("#"):
            break
        if re.match(r"^# (\[\[?general[\w.]*\]\]?|[a-z_]+ = .*)$", line):
            block.append(line[2:])
    data = tomllib.loads(text)
    data.update(tomllib.loads("\n".join(block)))
    site = Site.model_validate(data)
    assert site.general is not None and site.general.method == 1
    kinds = [g.kind for g in site.general.groups]
    assert kinds == ["compute", "storage", "network"]
    assert site.general.groups[2].fallback_rate("Ethernet1/50", None) == 100e9


def test_cpu_mean_is_time_weighted_over_the_interval_before_each_sample() -> None:
    # the sample at t stands for the time since the one before: 20 % for 60 s, 50 % for 120 s
    s = Series("h", "cpu_util_pct", "%", "gauge", (T0, T0 + 60, T0 + 180), (99.0, 20.0, 50.0))
    m = mean_utilisation(s, T0, T0 + 180)
    assert m.mean == pytest.approx((0.2 * 60 + 0.5 * 120) / 180) and m.valid
    # the window clips intervals: [T0+30, T0+120] = 30 s at 20 % + 60 s at 50 %
    assert mean_utilisation(s, T0 + 30, T0 + 120).mean == pytest.approx((6 + 30) / 90)
    # a window extending 10 intervals past the data is reported and not valid
    late = mean_utilisation(s, T0, T0 + 180 + 900)
    assert late.mean == pytest.approx(0.4) and not late.valid
    assert any("before window end by 900 s" in i for i in late.issues)
    wrong = Series("h", "cpu_util_pct", "degC", "gauge", (T0, T0 + 60), (1.0, 2.0))
    assert mean_utilisation(wrong, T0, T0 + 60).mean is None


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=int(M32) - 1), min_size=2, max_size=30),
       st.integers(min_value=0, max_value=int(M32) - 1))
def test_32bit_octet_counter_wraps_are_counted_exactly(steps: list[int], first: int) -> None:
    # each 60 s step moves less than 2^32 octets (a port below 572 Mbit/s), so the counter
    # wraps at most once per step, every decrease is a wrap and the sum is exact
    values, total = [float(first)], first
    for d in steps:
        total += d
        values.append(float(total % int(M32)))
    ts = tuple(T0 + 60.0 * i for i in range(len(values)))
    s = Series("sw", "if_in_octets", "B", "counter", ts, tuple(values), M32)
    d = counter_delta(s, ts[0], ts[-1], 900, max_rate=M32 / 60)
    assert d.delta == sum(steps) and d.resets == 0 and d.valid
    assert d.wraps == sum(1 for a, b in itertools.pairwise(values) if b < a)


def test_resets_told_from_wraps_by_line_rate_and_by_uptime() -> None:
    ts = (T0, T0 + 60, T0 + 120, T0 + 180)
    # 4.2e9 -> 1e8 in 60 s: a wrap would be 1.95e8 octets = 26 Mbit/s: plausible at 1 Gbit/s
    s = Series("sw", "if_in_octets", "B", "counter", ts, (4.1e9, 4.2e9, 1e8, 2e8), M32)
    wrap = counter_delta(s, T0, T0 + 180, 900, max_rate=1.1 * 1e9 / 8)
    assert wrap.wraps == 1 and wrap.resets == 0
    assert wrap.delta == pytest.approx(1e8 + (M32 - 4.2e9 + 1e8) + 1e8)
    # at a 10 Mbit/s line rate (1.375e6 B/s with margin) 1.95e8 octets in 60 s is impossible
    reset = counter_delta(s, T0, T0 + 180, 900, max_rate=1.1 * 1e7 / 8)
    assert reset.resets == 1 and not reset.valid
    assert reset.delta == pytest.approx(1e8 + 1e8 + 1e8)
    # sysUpTime fell between the 2nd and 3rd sample: a reboot, even though the value rose
    up = Series("sw", "sys_uptime_s", "s", "gauge", ts, (1000.0, 1060.0, 30.0, 90.0))
    rising = Series("sw", "if_in_octets", "B", "counter", ts, (1e9, 2e9, 3e9, 4e9), M32)
    d = counter_delta(rising, T0, T0 + 180, 900, resets_in=reset_steps(up, None))
    assert d.resets == 1 and d.delta == pytest.approx(1e9 + 3e9 + 1e9)
    disc = Series("sw", "if_counter_discontinuity_s", "s", "gauge", ts, (5.0, 5.0, 5.0, 170.0))
    assert reset_steps(None, disc) == [(T0 + 120, T0 + 180)]


def base_groups(**network: Any) -> list[dict[str, Any]]:
    return [
        group("a", "compute", 100, 50000, ["h1", "h2"]),
        group("b", "compute", 50, 20000, ["h3"]),
        group("st", "storage", 4, 100000, ["s1"]),
        group("net", "network", 2, 10000, ["sw"], **network),
    ]


def base_series(hours: float = 12) -> list[Series]:
    return [
        *meters(hours),
        cpu("h1", 30.0, hours=hours), cpu("h2", 50.0, hours=hours),
        cpu("h3", 80.0, hours=hours), cpu("s1", 25.0, "storage", hours=hours),
        *port("sw", "eth1", 4e9, 2e9, 25e9, hours=hours),
        *port("sw", "eth2", 1e9, 3e9, 25e9, hours=hours),
    ]


def test_method_1_and_method_2_by_hand() -> None:
    series = base_series()
    one = evaluate_general(make_site(base_groups()), series, T0, T0 + 12 * HOUR)
    two = evaluate_general(make_site(base_groups(), method=2), series, T0, T0 + 12 * HOUR)
    # U_a = 0.4, U_b = 0.8, U_st = 0.25, U_net = (4+2+1+3) / (2 x 25 x 2) = 0.1
    # M1: 0.85 (0.4 x 5e6 + 0.8 x 1e6) + 0.1 x 0.25 x 4e5 + 0.05 x 0.1 x 2e4 = 2380000 + 10000 + 100
    assert one["load_method"] == 1 and one["computing_power"] == pytest.approx(2_390_100)
    assert one["load"]["compute"] == pytest.approx((0.4 * 5e6 + 0.8 * 1e6) / 6e6)
    assert one["load"]["storage"] == pytest.approx(0.25)
    assert one["load"]["network"] == pytest.approx(0.1)
    # M2: U_c = (0.3 + 0.5 + 0.8) / 3 = 0.5333: 0.85 x 0.5333 x 6e6 = 2720000
    assert two["load"]["compute"] == pytest.approx(1.6 / 3)
    assert two["computing_power"] == pytest.approx(2_720_000 + 10_000 + 100)
    e_wh = 200_000.0  # 200 kW for 12 h = 2400 kWh; per hour 200000 Wh
    assert one["energy_per_unit_time_wh"] == pytest.approx(e_wh)
    assert one["cee"] == pytest.approx(2_390_100 / e_wh) and one["cee_level"] is None  # 11.95
    assert two["cee"] == pytest.approx(2_730_100 / e_wh) and two["cee_level"] is None
    ce_per_hour = 200.0 * 0.55  # kWh per hour x η
    assert one["ccue"] == pytest.approx(ce_per_hour / 2_390_100)
    assert one["carbon_kg"] == pytest.approx(2400 * 0.55)  # infrastructure fields kept
    assert one["pue"] == pytest.approx(200 / 160)
    assert one["quality"]["valid"] and two["quality"]["valid"]
    # CEE rel = sqrt(C_rel^2 + E_rel^2); C_rel from the hosts' accuracy (psutil default 0.01)
    u = one["uncertainty"]
    assert u["cee_rel"] == pytest.approx(math.hypot(u["computing_power_rel"], 0.005))
    assert u["load_rel"]["network"] == 0.0
    assert 0 < u["computing_power_rel"] < 0.01
    assert u["worst_case"]["cee_rel"] == pytest.approx(
        u["worst_case"]["computing_power_rel"] + 0.005)


def test_accuracy_of_the_load_sources_reaches_c_and_cee() -> None:
    series = [*meters(), cpu("h1", 50.0, accuracy=0.04)]
    site = make_site([group("a", "compute", 10, 1000, ["h1"])])
    r = evaluate_general(site, series, T0, T0 + 12 * HOUR)
    assert r["uncertainty"]["computing_power_rel"] == pytest.approx(0.04)
    assert r["uncertainty"]["cee_rel"] == pytest.approx(math.hypot(0.04, 0.005))
    assert r["uncertainty"]["ccue_rel"] == pytest.approx(math.hypot(0.04, 0.005))
    assert r["groups"][0]["devices"][0]["accuracy_source"].startswith("configured")


def test_cee_levels_of_table_1() -> None:
    assert [cee_level(x) for x in (50.0, 49.99, 20.0, 19.99, None)] == [
        "advanced", "energy_saving", "energy_saving", None, None]
    # 0.85 x 1.0 x 12000 x 1000 = 10.2e6 points / 200000 Wh = 51: advanced
    series = [*meters(), cpu("h1", 100.0)]
    r = evaluate_general(make_site([group("a", "compute", 1000, 12000, ["h1"])]), series,
                         T0, T0 + 12 * HOUR)
    assert r["cee"] == pytest.approx(51.0) and r["cee_level"] == "advanced"


def test_unit_time_scales_e() -> None:
    series = [*meters(), cpu("h1", 50.0)]
    site = make_site([group("a", "compute", 10, 1000, ["h1"])], unit_time_h=24)
    r = evaluate_general(site, series, T0, T0 + 12 * HOUR)
    assert r["energy_per_unit_time_wh"] == pytest.approx(200_000 * 24)
    assert r["cee"] == pytest.approx(0.85 * 0.5 * 10_000 / 4_800_000)
    assert r["carbon_kg_per_unit_time"] == pytest.approx(200 * 24 * 0.55)


def test_configured_network_without_samples_is_not_valid() -> None:
    series = [s for s in base_series() if s.source != "sw"]
    r = evaluate_general(make_site(base_groups()), series, T0, T0 + 12 * HOUR)
    assert r["load"]["network"] is None and r["computing_power_terms"]["network"] is None
    assert r["computing_power"] == pytest.approx(2_390_000)
    assert not r["quality"]["valid"]
    assert any("sw: no if_in_octets/if_out_octets series" in i for i in r["quality"]["issues"])


def test_unknown_line_rate_left_out_or_configured_and_available_bandwidth() -> None:
    series = [*meters(), cpu("h1", 50.0),
              *port("sw", "eth1", 4e9, 2e9, 10e9), *port("sw", "eth2", 1e9, 1e9, None)]
    groups = [group("a", "compute", 1, 1.0, ["h1"])]

    def net(**extra: Any) -> dict[str, Any]:
        r = evaluate_general(make_site([*groups, group("n", "network", 1, 1.0, ["sw"], **extra)]),
                             series, T0, T0 + 12 * HOUR)
        return r

    left_out = net()
    assert left_out["load"]["network"] == pytest.approx(6 / 20)  # eth1 only
    assert [p["used"] for p in left_out["groups"][1]["ports"]] == [True, False]
    assert not left_out["quality"]["valid"]
    star = net(unknown_line_rate_bps={"*": 40e9})
    assert star["load"]["network"] == pytest.approx(8 / (20 + 80))
    assert star["groups"][1]["ports"][1]["line_rate_from"] == "configured"
    assert star["quality"]["valid"]
    assert net(unknown_line_rate_bps=10e9)["load"]["network"] == pytest.approx(8 / 40)
    by_index = net(unknown_line_rate_bps={"2": 10e9})  # eth2 has if_index "2"
    assert by_index["load"]["network"] == pytest.approx(8 / 40)
    configured = net(available_bandwidth_bps=100e9)
    assert configured["load"]["network"] == pytest.approx(8 / 100)
    assert configured["groups"][1]["available_from"] == "configured"
    assert configured["quality"]["valid"]
    only = net(ports=["eth1"])
    assert len(only["groups"][1]["ports"]) == 1 and only["quality"]["valid"]


def test_32bit_counter_that_may_wrap_twice_between_samples_is_flagged() -> None:
    # 2^32 octets last 3.4 s at 10 Gbit/s: 15 min samples cannot see every wrap
    series = [*meters(), cpu("h1", 50.0), *port("sw", "eth1", 1e6, 1e6, 10e9, modulus=M32)]
    site = make_site([group("a", "compute", 1, 1.0, ["h1"]),
                      group("n", "network", 1, 1.0, ["sw"])])
    r = evaluate_general(site, series, T0, T0 + 12 * HOUR)
    assert any("can wrap more than once" in i for i in r["quality"]["issues"])


def test_window_rule_and_interval_rule_of_a5() -> None:
    series = [*meters(13), cpu("h1", 50.0, hours=13)]
    site = make_site([group("a", "compute", 10, 1000, ["h1"])])
    short = evaluate_general(site, series, T0, T0 + 12 * HOUR - 900)
    assert not short["quality"]["valid"] and not short["quality"]["window_rule_ok"]
    assert short["computing_power"] == pytest.approx(0.85 * 0.5 * 10_000)  # still computed
    assert evaluate_general(site, series, T0, T0 + 12 * HOUR)["quality"]["valid"]
    # a 30 min interval breaks A.5 even where the site allows longer gaps
    sparse = [*meters(13), cpu("h1", 50.0, hours=13, dt=1800)]
    loose = Site.model_validate({**site.model_dump(by_alias=True), "quality": {"max_gap_s": 3600}})
    r = evaluate_general(loose, sparse, T0, T0 + 12 * HOUR)
    assert r["cee"] is not None and not r["quality"]["valid"]
    assert any("sampling interval rule" in i for i in r["quality"]["issues"])


def test_a_year_at_15_minutes_is_an_annual_valid_figure() -> None:
    hours = 8760
    day = 96  # samples per day
    # the load: 20 % on weekdays... simply 60 % in the first 73 days, 35 % after
    load = cpu("h1", lambda i: 60.0 if i <= 73 * day else 35.0, hours=hours)
    series = [*meters(hours), load]
    site = make_site([group("a", "compute", 400, 30000, ["h1"])])
    r = evaluate_general(site, series, T0, T0 + hours * HOUR)
    u = (73 * 0.60 + 292 * 0.35) / 365  # 0.40
    assert r["annual"] is True and r["window"]["hours"] == 8760
    assert r["load"]["compute"] == pytest.approx(u)
    assert r["energy_per_unit_time_wh"] == pytest.approx(200_000)
    assert r["cee"] == pytest.approx(0.85 * u * 400 * 30000 / 200_000)  # 20.4
    assert r["cee_level"] == "energy_saving"
    assert r["quality"]["valid"], r["quality"]["issues"]
    shorter = evaluate_general(site, series, T0, T0 + (hours - 1) * HOUR)
    assert shorter["annual"] is False


def test_without_general_section_and_through_the_dispatcher() -> None:
    site = Site.model_validate({"site": {"name": "dc", "region": "east-2023"},
                                "energy": {"total": ["meter-total"], "it": ["meter-it"]}})
    r = evaluate("general", site, meters(), T0, T0 + 12 * HOUR)
    assert r["kind"] == "general" and r["cee"] is None and not r["quality"]["valid"]
    assert "no [general] section" in r["quality"]["issues"][0]
    full = make_site(base_groups())
    assert source_ids("general", full) == ["h1", "h2", "h3", "meter-it", "meter-total", "s1", "sw"]
    assert source_ids("infrastructure", full) == ["meter-it", "meter-total"]
    via = evaluate("general", full, base_series(), T0, T0 + 12 * HOUR)
    assert via["computing_power"] == pytest.approx(2_390_100)


def test_label_selector_narrows_a_groups_series() -> None:
    r740 = Series("agent-x", "cpu_util_pct", "%", "gauge", cpu("x", 0).ts, (70.0,) * 49,
                  labels={"kind": "compute", "group": "r740"})
    r750 = Series("agent-x", "cpu_util_pct", "%", "gauge", cpu("x", 0).ts, (10.0,) * 49,
                  labels={"kind": "compute", "group": "r750"})
    site = make_site([
        group("r740", "compute", 10, 1000, ["agent-x"], labels={"group": "r740"}),
        group("r750", "compute", 10, 1000, ["agent-x"], labels={"group": "r750"}),
    ])
    r = evaluate_general(site, [*meters(), r740, r750], T0, T0 + 12 * HOUR)
    assert [g["load"] for g in r["groups"]] == [pytest.approx(0.7), pytest.approx(0.1)]
