"""Window energy from counters and power: wraps, resets, gaps, edges, fallback, phases."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from dcmeter.collectors.evaluation.energy import counter_energy, integrated_energy
from dcmeter.collectors.evaluation.jsonl import parse_rfc3339
from dcmeter.collectors.evaluation.roles import role_energy
from dcmeter.collectors.evaluation.series import Series

T0 = parse_rfc3339("2026-11-22T10:00:00Z")
M32_KWH = 4294967.296  # a 32-bit Wh register read in kWh: 2**32 Wh = 4294967.296 kWh
GAP = 900.0


def counter(
    offsets: Sequence[float],
    values: Sequence[float],
    *,
    modulus: float | None = None,
    unit: str = "kWh",
    source: str = "meter",
    labels: Mapping[str, str] | None = None,
) -> Series:
    return Series(
        source,
        "energy_import_kwh",
        unit,
        "counter",
        tuple(T0 + o for o in offsets),
        tuple(values),
        modulus,
        labels or {},
    )


def power(
    offsets: Sequence[float], values: Sequence[float], *, source: str = "meter", unit: str = "W"
) -> Series:
    return Series(source, "power_w", unit, "gauge", tuple(T0 + o for o in offsets), tuple(values))


def test_counter_interpolates_both_window_edges() -> None:
    s = counter([-30, 30, 90], [100.0, 101.0, 103.0])
    fig = counter_energy(s, T0, T0 + 60, GAP)
    # C(T0) = 100 + 1 × 30/60 = 100.5; C(T0+60) = 101 + 2 × 30/60 = 102; 102 − 100.5 = 1.5
    assert fig.kwh == pytest.approx(1.5)
    assert (fig.method, fig.valid, fig.coverage, fig.samples) == ("counter", True, 1.0, 3)
    assert fig.issues == ()


def test_counter_wrap_of_a_32_bit_wh_register_in_kwh() -> None:
    # 0.5 kWh a minute; the register passes 2**32 Wh between +120 s and +180 s:
    # 4294967.0 + 0.5 − 4294967.296 = 0.204
    s = counter(
        [0, 60, 120, 180, 240], [4294966.0, 4294966.5, 4294967.0, 0.204, 0.704], modulus=M32_KWH
    )
    fig = counter_energy(s, T0, T0 + 240, GAP)
    # four steps of 0.5 kWh; the wrapped step 0.204 + 4294967.296 − 4294967.0 = 0.5
    assert fig.kwh == pytest.approx(2.0, abs=1e-6)
    assert (fig.wraps, fig.resets, fig.valid) == (1, 0, True)
    (event,) = fig.events
    assert event.kind == "wrap" and event.ts == T0 + 180
    assert event.counted_kwh == pytest.approx(0.5, abs=1e-6)


def test_counter_in_wh_is_converted_and_wraps_at_2_pow_32() -> None:
    s = counter([0, 60, 120], [4294966796.0, 4294967196.0, 300.0], modulus=2.0**32, unit="Wh")
    fig = counter_energy(s, T0, T0 + 120, GAP)
    # 400 Wh, then 300 + 4294967296 − 4294967196 = 400 Wh: 800 Wh = 0.8 kWh
    assert fig.kwh == pytest.approx(0.8)
    assert fig.wraps == 1


def test_meter_reset_is_counted_from_zero_and_makes_the_figure_invalid() -> None:
    s = counter([0, 60, 120, 180, 240], [1000.0, 1000.5, 1001.0, 0.3, 0.8], modulus=M32_KWH)
    fig = counter_energy(s, T0, T0 + 240, GAP)
    # wrapped delta 0.3 + 4294967.296 − 1001.0 = 4293966.596 kWh in 60 s, far above
    # 10 × the median rate 0.5/60 kWh/s: a reset, the step counts 0.3.
    # 0.5 + 0.5 + 0.3 + 0.5 = 1.8
    assert fig.kwh == pytest.approx(1.8)
    assert (fig.wraps, fig.resets, fig.valid) == (0, 1, False)
    assert fig.events[0].kind == "reset"
    assert any("reset" in issue and "uncertain" in issue for issue in fig.issues)


def test_any_decrease_without_modulus_is_a_reset() -> None:
    fig = counter_energy(counter([0, 60, 120], [50.0, 51.0, 0.5]), T0, T0 + 120, GAP)
    assert fig.kwh == pytest.approx(1.5)  # 51 − 50 = 1, then from zero: 0.5
    assert fig.resets == 1 and not fig.valid


@pytest.mark.parametrize(
    ("before", "after", "kind", "kwh"),
    [
        (4294967.0, 0.204, "wrap", 0.5),  # 0.204 + 4294967.296 − 4294967.0 = 0.5 < M/2
        (1000.0, 0.3, "reset", 0.3),  # 0.3 + 4294967.296 − 1000 ≈ 4293967.6 > M/2
    ],
)
def test_without_ordinary_steps_a_wrap_is_below_half_the_modulus(
    before: float, after: float, kind: str, kwh: float
) -> None:
    fig = counter_energy(counter([0, 60], [before, after], modulus=M32_KWH), T0, T0 + 60, GAP)
    assert fig.events[0].kind == kind
    assert fig.kwh == pytest.approx(kwh, abs=1e-6)


def test_counter_bridges_a_gap_exactly() -> None:
    s = counter([0, 60, 1260, 1320], [10.0, 11.0, 31.0, 32.0])
    fig = counter_energy(s, T0, T0 + 1320, GAP)
    assert fig.kwh == pytest.approx(22.0)  # 32 − 10
    assert fig.valid
    assert any("gap of 1200 s" in i and "bridged by counter" in i for i in fig.issues)


def test_counter_edge_inside_a_gap_is_an_interpolation() -> None:
    s = counter([0, 60, 1260, 1320], [10.0, 11.0, 31.0, 32.0])
    fig = counter_energy(s, T0 + 660, T0 + 1320, GAP)
    # C(T0+660) = 11 + 20 × 600/1200 = 21; 32 − 21 = 11
    assert fig.kwh == pytest.approx(11.0)
    assert not fig.valid
    assert any("window edge is interpolated" in i for i in fig.issues)


def test_integrated_power_across_a_gap_is_flagged_invalid() -> None:
    fig = integrated_energy(power([0, 60, 1260, 1320], [1000.0] * 4), T0, T0 + 1320, GAP)
    assert fig.kwh == pytest.approx(1320 / 3600)  # 1 kW × 1320 s = 0.3667 kWh
    assert fig.method == "integrated_power"
    assert not fig.valid
    assert any("gap of 1200 s" in i and "interpolated" in i for i in fig.issues)


def test_integrated_power_interpolates_both_window_edges() -> None:
    fig = integrated_energy(power([-30, 30, 90], [1000.0, 2000.0, 2000.0]), T0, T0 + 60, GAP)
    # P(T0) = 1500 W; (1500 + 2000)/2 × 30 s + 2000 × 30 s = 112500 J = 0.03125 kWh
    assert fig.kwh == pytest.approx(0.03125)
    assert fig.valid and fig.coverage == 1.0


def test_integrated_power_in_kw() -> None:
    fig = integrated_energy(power([0, 3600], [2.0, 4.0], unit="kW"), T0, T0 + 3600, GAP)
    assert fig.kwh == pytest.approx(3.0)  # mean 3 kW × 1 h


def test_small_coverage_shortfall_is_an_issue_but_valid() -> None:
    offsets = [30 + 60 * k for k in range(61)]  # T0+30 … T0+3630, 1 kWh a minute
    fig = counter_energy(counter(offsets, [100.0 + k for k in range(61)]), T0, T0 + 3600, GAP)
    # C(T0+3600) = 100 + 3570/60 = 159.5; counted from the first sample (100): 59.5
    assert fig.kwh == pytest.approx(59.5)
    assert fig.coverage == pytest.approx(3570 / 3600)
    assert fig.valid  # 30 s short, within 2 median intervals (120 s)
    assert any(
        i.startswith("coverage: first sample after window start by 30 s") for i in fig.issues
    )


def test_large_coverage_shortfall_makes_the_figure_invalid() -> None:
    offsets = [300 + 60 * k for k in range(50)]  # first sample 300 s after start
    fig = counter_energy(counter(offsets, [float(k) for k in range(50)]), T0, T0 + 3600, GAP)
    assert not fig.valid
    assert any("more than 2 median intervals" in i for i in fig.issues)


def test_too_few_samples_and_empty_window() -> None:
    assert not counter_energy(counter([0], [1.0]), T0, T0 + 60, GAP).valid
    fig = counter_energy(counter([0, 60], [1.0, 2.0]), T0 + 60, T0, GAP)
    assert not fig.valid and "empty window" in fig.issues[-1]


def test_unknown_unit_is_an_issue() -> None:
    fig = counter_energy(counter([0, 60], [1.0, 2.0], unit="BTU"), T0, T0 + 60, GAP)
    assert not fig.valid and "unknown unit 'BTU'" in fig.issues[0]


def test_role_falls_back_to_integrated_power_and_reports_mixed() -> None:
    series = [
        counter([0, 3600], [10.0, 60.0], source="meter-it", labels={"point": "it_input"}),
        power([60 * k for k in range(61)], [2000.0] * 61, source="srv-1"),
    ]
    role = role_energy(
        series, ["meter-it", "srv-1"], T0, T0 + 3600, "energy_import_kwh", "power_w", GAP
    )
    assert role.kwh == pytest.approx(52.0)  # 60 − 10 = 50 kWh + 2 kW × 1 h = 2 kWh
    assert role.method == "mixed" and role.valid
    assert role.points == ("it_input",)
    assert role.metrics == ("energy_import_kwh", "power_w")
    assert "integrated power used for srv-1: no energy counter (energy_import_kwh)" in role.issues


def test_role_uses_power_when_the_counter_has_too_few_samples() -> None:
    series = [
        counter([0], [10.0], source="pdu"),
        power([0, 900, 1800, 2700, 3600], [500.0] * 5, source="pdu"),
    ]
    role = role_energy(series, ["pdu"], T0, T0 + 3600, "energy_import_kwh", "power_w", GAP)
    assert role.kwh == pytest.approx(0.5)  # 0.5 kW × 1 h
    assert role.method == "integrated_power"
    assert any(
        i.startswith("integrated power used for pdu: no energy counter") for i in role.issues
    )


def test_role_source_without_data_makes_the_role_invalid() -> None:
    series = [counter([0, 3600], [0.0, 5.0], source="a")]
    role = role_energy(series, ["a", "b"], T0, T0 + 3600, "energy_import_kwh", "power_w", GAP)
    assert role.kwh == pytest.approx(5.0) and not role.valid
    assert "b: no energy_import_kwh or power_w samples around the window" in role.issues


def test_role_sums_series_of_one_source_that_differ_in_labels() -> None:
    series = [
        counter([0, 3600], [0.0, 1.0], source="m", labels={"phase": "L1"}),
        counter([0, 3600], [5.0, 7.0], source="m", labels={"phase": "L2"}),
        counter([0, 1800, 3600], [9.0, 10.0, 8.0], source="m", labels={"phase": "L3"}),
    ]
    role = role_energy(series, ["m"], T0, T0 + 3600, "energy_import_kwh", "power_w", GAP)
    assert role.kwh == pytest.approx(1.0 + 2.0 + 9.0)  # L3: 1 kWh, then a reset counting 8
    assert not role.valid
    assert any(i.startswith("m energy_import_kwh{phase=L3}: counter reset") for i in role.issues)


def test_empty_role_is_zero_and_valid() -> None:
    role = role_energy([], [], T0, T0 + 60, "energy_import_kwh", "power_w", GAP)
    assert (role.kwh, role.method, role.valid) == (0.0, None, True)


@st.composite
def sampled_linear_counter(draw: st.DrawFn) -> tuple[list[float], float, float, float, float]:
    """Draw sample offsets (s), a rate (kWh/s), a start value and a window [a, b] inside them."""
    steps = draw(st.lists(st.floats(1.0, 900.0), min_size=2, max_size=40))
    offsets = [0.0]
    for dt in steps:
        offsets.append(offsets[-1] + dt)
    rate = draw(st.floats(0.001, 0.5))
    c0 = draw(st.floats(0.0, 999.0))
    fa, fb = sorted(draw(st.tuples(st.floats(0.0, 1.0), st.floats(0.0, 1.0))))
    a = offsets[-1] * fa
    b = max(offsets[-1] * fb, a + 0.5)
    return offsets, rate, c0, a, min(b, offsets[-1])


@settings(max_examples=200, deadline=None)
@given(sampled_linear_counter())
def test_counter_energy_matches_the_linear_truth_with_and_without_wrap(
    case: tuple[list[float], float, float, float, float],
) -> None:
    offsets, rate, c0, a, b = case
    ta, tb = T0 + a, T0 + b
    assume(tb - ta > 0.01)  # epoch seconds near 1.8e9 resolve only ~0.24 µs
    truth = rate * (tb - ta)  # kWh of c(t) = c0 + rate × t over [ta, tb]
    plain = counter(offsets, [c0 + rate * t for t in offsets])
    # Modulus 1000 kWh: each step adds at most 0.5 × 900 = 450 kWh < M/2, so every drop is a wrap.
    wrapped = counter(offsets, [(c0 + rate * t) % 1000.0 for t in offsets], modulus=1000.0)
    for s in (plain, wrapped):
        fig = counter_energy(s, ta, tb, GAP)
        assert fig.kwh == pytest.approx(truth, rel=1e-9, abs=1e-6)
        assert fig.resets == 0 and fig.coverage == pytest.approx(1.0)
