"""A calibration point's error, budget, U and statement, and a series' indication, checked
against figures worked by hand (GUM, JJF 1059.1-2012, ILAC-G8:09/2019; seed 004).

Each expected number is worked in the comment beside it, as exact fractions where possible.
docs/calibration.md's worked example is test_worked_example_power_point.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dcmeter.collectors.evaluation.calibration import (
    PointInput,
    Repetition,
    Rule,
    calibration_result,
    indication,
    point_result,
    statement,
)
from dcmeter.collectors.evaluation.calibration_quantities import QUANTITIES, Mpe
from dcmeter.collectors.evaluation.jsonl import parse_rfc3339
from dcmeter.collectors.evaluation.series import Series

T0 = parse_rfc3339("2026-12-01T10:00:00Z")
POWER, EC = QUANTITIES["power"], QUANTITIES["effective_compute"]


def reps(refs: Sequence[float | None], inds: Sequence[float | None], dwell: float = 10.0,
         spreads: Sequence[float] | None = None) -> list[Repetition]:
    """Repetitions i = 1.. with dwells [T0 + 20 i, T0 + 20 i + dwell]."""
    spreads = spreads or [0.0] * len(refs)
    return [Repetition(i + 1, T0 + 20 * i, T0 + 20 * i + dwell, r, x, s)
            for i, (r, x, s) in enumerate(zip(refs, inds, spreads, strict=True))]


def rows(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {row["name"]: row for row in result["budget"]}


def test_quantities_follow_seed_004() -> None:
    """The contract's table: units, ranges, MPEs of the result and of the standard."""
    table = {name: (q.unit, q.range, q.mpe, q.reference_mpe) for name, q in QUANTITIES.items()}
    assert table == {
        "power": ("W", (0.0, 200e3), Mpe(0.05), Mpe(0.01)),
        "energy": ("Wh", None, Mpe(0.05), Mpe(0.01)),
        "network": ("Gbit/s", (0.0, 800.0), Mpe(0.01), Mpe(0.01)),
        "storage": ("Gbit/s", (0.0, 24.0), Mpe(0.01), Mpe(0.01)),
        "inference": ("tokens/s", (0.0, 510e15), Mpe(0.01), Mpe(0.01)),
        "training": ("tokens/s", (0.0, 170e15), Mpe(0.01), Mpe(0.01)),
        "compute": ("FLOPS", (0.0, 1.024e18), Mpe(0.02), Mpe(0.01)),
        "effective_compute": ("%", (0.0, 100.0), Mpe(absolute=1.0), None),
    }
    assert all(q.basis.startswith("seed 004") for q in QUANTITIES.values())
    # ± (0.02 × |−50| + 0.5) = 1.5
    assert Mpe(0.02, 0.5).at(-50.0) == 1.5


def test_golden_three_repetitions() -> None:
    """R = 100, 100, 100 W; X = 101, 102, 103 W; δx = 1 W, δr = 0; reference MPE 1 %; sync 0.

    R̄ = 100, X̄ = 102, E = 2 W, E/R̄ = 1/50. e = 1, 2, 3: s = 1, u_A = 1/√3, u_A² = 1/3, ν = 2.
    reference: a = 1 % × 100 = 1 W, u² = 1/3. resolution_indicated: a = 1/2, u² = 1/12.
    resolution_reference, synchronisation: 0. u_c² = 1/3 + 1/3 + 1/12 = 3/4, u_c = √3/2;
    U = 2 u_c = √3 ≈ 1.732 W, U/R̄ = √3/100. ν_eff = u_c⁴ / (u_A⁴/2) = (9/16) / (1/18) = 81/8.
    MPE = 5 % × 100 = 5 W: simple |E| = 2 ≤ 5 pass; guarded 2 ≤ 5 − √3 ≈ 3.27 pass.
    """
    point = PointInput("100 W", reps([100.0] * 3, [101.0, 102.0, 103.0]), 1.0, 0.0)
    r = point_result(point, POWER, Mpe(0.01), sync_s=0.0, rule="guarded")
    assert (r["n"], r["reference_mean"], r["indicated_mean"], r["error"]) == (3, 100, 102, 2)
    assert r["relative_error"] == pytest.approx(1 / 50, rel=1e-15)
    assert r["repeatability"] == 1.0
    b = rows(r)
    assert list(b) == ["repeatability", "reference_mpe", "resolution_indicated",
                       "resolution_reference", "synchronisation"]
    assert b["repeatability"]["type"] == "A" and b["repeatability"]["dof"] == 2
    assert b["repeatability"]["u"] ** 2 == pytest.approx(1 / 3, rel=1e-14)
    assert b["reference_mpe"]["half_width"] == 1.0
    assert b["reference_mpe"]["u"] ** 2 == pytest.approx(1 / 3, rel=1e-14)
    assert b["resolution_indicated"]["half_width"] == 0.5
    assert b["resolution_indicated"]["u"] ** 2 == pytest.approx(1 / 12, rel=1e-14)
    assert b["resolution_reference"]["u"] == 0 and b["synchronisation"]["u"] == 0
    assert r["combined_u"] == pytest.approx(math.sqrt(3) / 2, rel=1e-14)
    assert r["expanded_u"] == pytest.approx(math.sqrt(3), rel=1e-14)
    assert r["relative_expanded_u"] == pytest.approx(math.sqrt(3) / 100, rel=1e-14)
    assert r["dof_eff"] == pytest.approx(81 / 8, rel=1e-12)
    assert (r["mpe"], r["k"]) == (5.0, 2.0)
    assert r["statement"]["result"] == "pass"
    simple = point_result(point, POWER, Mpe(0.01), sync_s=0.0, rule="simple")
    assert simple["statement"] == {"rule": "simple", "result": "pass",
                                   "reason": "|E| = 2 ≤ MPE = 5 W"}
    assert r["repetitions"][0] == {
        "repetition": 1, "start": "2026-12-01T10:00:00Z", "end": "2026-12-01T10:00:10Z",
        "reference": 100.0, "indicated": 101.0, "error": 1.0, "valid": True, "detail": {},
    }
    assert r["issues"] == []  # ν_eff = 10.125 ≥ 10: no low-dof note


def test_worked_example_power_point() -> None:
    """docs/calibration.md's worked example: a server's DCMI power at 2 kW.

    R = 2000, 2000, 2000 W (reference analyser, MPE 1 %, δr = 0.1 W); X = 2096, 2098, 2100 W
    (δx = 1 W); dwells of 10 s; spreads 3, 4, 2 W; sync_s = 0.5 s.
    R̄ = 2000, X̄ = 2098, E = 98 W, E/R̄ = 49/1000. e = 96, 98, 100: s = 2, u_A² = 4/3, ν = 2.
    reference_mpe: a = 20 W, u² = 400/3. resolution_indicated: a = 1/2, u² = 1/12.
    resolution_reference: a = 1/20, u² = 1/1200. synchronisation: a = 0.5/10 × 4 = 1/5 per
    edge, two edges: u² = 2a²/3 = 2/75. u_c² = (1600 + 160000 + 100 + 1 + 32)/1200
    = 161733/1200 ≈ 134.778 W²; u_c ≈ 11.609 W; U ≈ 23.219 W (1.16 %).
    ν_eff = u_c⁴/((4/3)²/2) = (161733/1200)² · 9/8 ≈ 20435.7. MPE = 100 W. Simple: 98 ≤ 100 pass. Guarded: MPE − U ≈ 76.78 < 98 ≤ 100:
    conditional_pass.
    """
    point = PointInput("2 kW", reps([2000.0] * 3, [2096.0, 2098.0, 2100.0],
                                    spreads=[3.0, 4.0, 2.0]), 1.0, 0.1, "datasheets")
    r = point_result(point, POWER, Mpe(0.01), sync_s=0.5, rule="guarded")
    uc2 = Fraction(161733, 1200)
    assert uc2 == Fraction(4, 3) + Fraction(400, 3) + Fraction(1, 12) + Fraction(1, 1200) \
        + Fraction(2, 75)
    assert (r["error"], r["repeatability"], r["mpe"]) == (98.0, 2.0, 100.0)
    assert r["relative_error"] == pytest.approx(0.049, rel=1e-15)
    u2 = {name: row["u"] ** 2 for name, row in rows(r).items()}
    for name, expected in [("repeatability", Fraction(4, 3)), ("reference_mpe", Fraction(400, 3)),
                           ("resolution_indicated", Fraction(1, 12)),
                           ("resolution_reference", Fraction(1, 1200)),
                           ("synchronisation", Fraction(2, 75))]:
        assert u2[name] == pytest.approx(float(expected), rel=1e-13), name
    assert rows(r)["synchronisation"]["half_width"] == pytest.approx(0.2, rel=1e-15)
    assert r["combined_u"] ** 2 == pytest.approx(float(uc2), rel=1e-13)
    assert r["expanded_u"] == pytest.approx(2 * math.sqrt(float(uc2)), rel=1e-13)
    assert r["expanded_u"] == pytest.approx(23.2187, abs=5e-4)
    assert r["dof_eff"] == pytest.approx(float(uc2**2 * Fraction(9, 8)), rel=1e-12)
    assert r["statement"]["result"] == "conditional_pass"
    assert r["resolution"] == {"indicated": 1.0, "reference": 0.1, "basis": "datasheets"}
    simple = point_result(point, POWER, Mpe(0.01), sync_s=0.5, rule="simple")
    assert simple["statement"]["result"] == "pass"


def test_one_repetition_has_no_type_a() -> None:
    """n = 1: no repeatability row, ν_eff None (∞), an issue says so.

    R = 50, X = 51 W, δx = δr = 0, reference MPE 1 %: a = 0.5, u_c = 0.5/√3, U = 1/√3.
    """
    r = point_result(PointInput("p", reps([50.0], [51.0]), 0.0, 0.0), POWER, Mpe(0.01),
                     sync_s=0.0, rule="simple")
    assert "repeatability" not in rows(r) and r["repeatability"] is None
    assert r["dof_eff"] is None
    assert r["expanded_u"] == pytest.approx(1 / math.sqrt(3), rel=1e-15)
    assert any("no type A" in i for i in r["issues"])


def test_relative_mpe_at_zero_reference_is_not_stated() -> None:
    """Power at R̄ = 0: 5 % of 0 is 0, no statement; relative figures None."""
    r = point_result(PointInput("idle", reps([0.0, 0.0], [0.5, 0.5]), 0.0, 0.0), POWER,
                     Mpe(0.01), sync_s=0.0, rule="guarded")
    assert r["statement"]["result"] == "not_stated"
    assert r["relative_error"] is None and r["relative_expanded_u"] is None
    assert r["error"] == 0.5 and r["mpe"] == 0.0
    whole = calibration_result([PointInput("idle", reps([0.0], [0.5]), 0.0, 0.0)], POWER,
                               Mpe(0.01), sync_s=0.0, rule="simple")
    assert whole["statement"]["result"] == "not_stated"
    assert "point idle: no statement" in whole["issues"]


def test_effective_compute_mpe_is_absolute() -> None:
    """effective_compute: MPE ±1 percentage point at any level; no reference MPE (Mpe()).

    R = 80 %, X = 80.75 %: E = 0.75 ≤ 1 pass (1 % of 80 would have been 0.8, also a pass,
    so check at R = 10 %: X = 10.75, E = 0.75 ≤ 1 pass where 1 % relative (0.1) would fail).
    """
    r = point_result(PointInput("10 %", reps([10.0], [10.75]), 0.0, 0.0), EC, Mpe(),
                     sync_s=0.0, rule="simple")
    assert (r["mpe"], r["error"], r["statement"]["result"]) == (1.0, 0.75, "pass")
    assert r["combined_u"] == 0.0 and r["expanded_u"] == 0.0


def _at_boundary(x: float, rule: Rule) -> str:
    """effective_compute at R = 0 (E = x exactly, MPE = 1 %pt), the one repetition
    uncertain only through δx = 0.5 (a = 0.25, U = 2 · 0.25/√3 = 1/(2√3) ≈ 0.289, the
    same for every x)."""
    point = PointInput("b", reps([0.0], [x]), 0.5, 0.0)
    return str(point_result(point, EC, Mpe(), sync_s=0.0, rule=rule)["statement"]["result"])


def test_decision_rules_at_their_boundaries() -> None:
    """Each bound is inclusive (ILAC-G8 4.2.1, 4.2.3): exactly on it is the better side."""
    u = point_result(PointInput("b", reps([0.0], [0.0]), 0.5, 0.0), EC, Mpe(), sync_s=0.0,
                     rule="guarded")["expanded_u"]
    assert u == pytest.approx(1 / (2 * math.sqrt(3)), rel=1e-15)  # 2 × 0.25/√3
    up = math.nextafter
    assert _at_boundary(1.0, "simple") == "pass"
    assert _at_boundary(up(1.0, 2.0), "simple") == "fail"
    assert _at_boundary(-1.0, "simple") == "pass"  # |E| counts
    assert _at_boundary(1.0 - u, "guarded") == "pass"
    assert _at_boundary(up(1.0 - u, 2.0), "guarded") == "conditional_pass"
    assert _at_boundary(1.0, "guarded") == "conditional_pass"
    assert _at_boundary(up(1.0, 2.0), "guarded") == "conditional_fail"
    assert _at_boundary(1.0 + u, "guarded") == "conditional_fail"
    assert _at_boundary(up(1.0 + u, 2.0), "guarded") == "fail"
    assert _at_boundary(-(1.0 + u), "guarded") == "conditional_fail"


@given(st.floats(0, 10), st.floats(0.01, 10), st.floats(0, 10))
def test_guarded_refines_simple(e: float, mpe: float, u: float) -> None:
    """Guarded pass or conditional_pass exactly where simple passes (ILAC-G8 4.2.3)."""
    simple = statement(e, mpe, u, "simple")["result"]
    guarded = statement(e, mpe, u, "guarded")["result"]
    assert (simple == "pass") == (guarded in ("pass", "conditional_pass"))


# Readings to the milliunit and resolutions of 0 or ≥ 1e-6: squares of the u stay normal
# floats (a subnormal u² would underflow and say nothing about the budget).
finite = st.integers(-10**9, 10**9).map(lambda v: v / 1000)
small = st.one_of(st.just(0.0), st.floats(1e-6, 10))


@given(st.lists(st.tuples(finite, finite, small), min_size=1, max_size=6), small, small,
       st.floats(0, 2))
def test_budget_invariants(sides: list[tuple[float, float, float]], dx: float, dr: float,
                           sync: float) -> None:
    """For any repetitions: E = X̄ − R̄, u_c² = Σ u², u_c ≥ every u, U = 2 u_c, and the
    result does not depend on the repetitions' order (GUM 5.1.2, 6.2.1)."""
    refs, inds, spreads = ([t[i] for t in sides] for i in range(3))
    point = PointInput("p", reps(refs, inds, spreads=spreads), dx, dr)
    r = point_result(point, POWER, Mpe(0.01), sync_s=sync, rule="guarded")
    assert r["error"] == r["indicated_mean"] - r["reference_mean"]
    us = [row["u"] for row in r["budget"]]
    assert r["combined_u"] ** 2 == pytest.approx(math.fsum(u * u for u in us), rel=1e-9)
    assert all(r["combined_u"] >= u for u in us)
    assert r["expanded_u"] == 2 * r["combined_u"]
    back = PointInput("p", reps(refs[::-1], inds[::-1], spreads=spreads[::-1]), dx, dr)
    again = point_result(back, POWER, Mpe(0.01), sync_s=sync, rule="guarded")
    assert again["expanded_u"] == pytest.approx(r["expanded_u"], rel=1e-9, abs=1e-9)
    assert again["error"] == pytest.approx(r["error"], rel=1e-9, abs=1e-9)


def test_overall_is_the_worst_point() -> None:
    """fail > conditional_fail > conditional_pass > pass; not_stated points are named."""
    def point(label: str, x: float) -> PointInput:
        return PointInput(label, reps([0.0], [x]), 0.5, 0.0)

    # U = 1/(2√3) ≈ 0.289, MPE 1: 0.25 ≤ 0.711 pass, 0.9 ≤ 1 conditional_pass,
    # 1.2 ≤ 1.289 conditional_fail, 2 fail
    def whole(*xs: float) -> dict[str, Any]:
        result = calibration_result([point(f"p{i}", x) for i, x in enumerate(xs)], EC, Mpe(),
                                    sync_s=0.0, rule="guarded")
        return dict(result["statement"])
    assert whole(0.25)["result"] == "pass"
    assert whole(0.25, 0.9)["result"] == "conditional_pass"
    assert whole(1.2, 0.25, 0.9)["result"] == "conditional_fail"
    worst = whole(0.25, 2.0, 1.2, 0.9)
    assert (worst["result"], worst["reason"]) == ("fail", "the worst point: p1")
    assert "4.2.3" in worst["basis"]
    mixed = calibration_result([point("a", 0.25), PointInput("b", reps([None], [1.0]), 0, 0)],
                               EC, Mpe(), sync_s=0.0, rule="simple")
    assert mixed["statement"]["result"] == "pass"
    assert "point b: no statement" in mixed["issues"]
    assert calibration_result([], EC, Mpe(), sync_s=0.0, rule="simple")["statement"][
        "result"] == "not_stated"


def test_invalid_repetitions_are_left_out() -> None:
    """Repetitions 2 (no reference) and 4 (no indication) are shown, marked, not used:
    the valid ones are R = 100, 100 and X = 101, 103: n = 2, E = 2, s = √2."""
    point = PointInput("p", reps([100.0, None, 100.0, 100.0], [101.0, 150.0, 103.0, None]),
                       0.0, 0.0)
    r = point_result(point, POWER, Mpe(0.01), sync_s=0.0, rule="simple")
    assert (r["n"], r["error"]) == (2, 2.0)
    assert r["repeatability"] == pytest.approx(math.sqrt(2), rel=1e-15)
    assert [x["valid"] for x in r["repetitions"]] == [True, False, True, False]
    assert r["repetitions"][1]["error"] is None
    assert "repetition 2 left out: no finite reference value" in r["issues"]
    assert "repetition 4 left out: no finite indicated value" in r["issues"]
    none = point_result(PointInput("q", reps([None], [None]), 0.0, 0.0), POWER, Mpe(0.01),
                        sync_s=0.0, rule="simple")
    assert none["n"] == 0 and none["statement"]["result"] == "not_stated"
    assert none["expanded_u"] is None


# --- indication over a dwell ---------------------------------------------------------------

def gauge(values: list[float], unit: str = "W", step: float = 2.0) -> Series:
    return Series("bmc", "power_w", unit, "gauge", [T0 + step * i for i in range(len(values))],
                  values)


def test_gauge_indication() -> None:
    """Samples every 2 s, 100, 102, 100, 102, 100, 102 W over [T0, T0 + 10]: each segment's
    trapezoid mean is 101, so the time-weighted mean is 101 W; spread 102 − 100 = 2; 6 samples;
    resolution: the one step between the distinct levels, 2 W."""
    ind = indication(gauge([100, 102, 100, 102, 100, 102]), T0, T0 + 10, POWER)
    assert (ind.value, ind.spread, ind.samples, ind.resolution) == (101.0, 2.0, 6, 2.0)
    assert ind.resolution_basis == "estimated: smallest step between the samples"
    # kW -> W: 1.5 and 2.5 kW at T0 and T0 + 2: mean over [T0, T0 + 2] = 2 kW = 2000 W
    kw = indication(gauge([1.5, 2.5], "kW"), T0, T0 + 2, POWER)
    assert (kw.value, kw.spread, kw.resolution) == (2000.0, 1000.0, 1000.0)
    # one sample inside [T0 + 1, T0 + 3] (at T0 + 2): mean of the line 100 -> 102 -> 100
    # over it = 101.5 (trapezoids 101.5 and 101.5), resolution not estimable
    one = indication(gauge([100, 102, 100]), T0 + 1, T0 + 3, POWER)
    assert (one.value, one.samples, one.resolution, one.resolution_basis) == (
        101.5, 1, 0.0, "one sample")
    assert indication(gauge([100]), T0, T0 + 1, POWER).value is None


def test_counter_wraps_into_gbit_s() -> None:
    """An octet counter (modulus 2³²) at 125e6 B/s = 1 Gbit/s, one sample a second over
    [T0, T0 + 10], starting 3.5 s below its modulus: it wraps once inside the dwell.
    Increase 1.25e9 B × 8 / 1e9 / 10 s = 1 Gbit/s; the rates are all 1 Gbit/s: an edge moves
    the increase at that rate, spread 1 Gbit/s; 11 samples; resolution 1 B × 8e-9 / 10 s = 8e-10 Gbit/s."""
    mod = 2.0**32
    values = [(mod - 3.5 * 125e6 + 125e6 * i) % mod for i in range(11)]
    s = Series("sw", "if_out_octets", "B", "counter", [T0 + i for i in range(11)], values,
               modulus=mod)
    ind = indication(s, T0, T0 + 10, QUANTITIES["network"])
    assert ind.value == pytest.approx(1.0, rel=1e-12)
    assert ind.spread == pytest.approx(1.0, rel=1e-12) and ind.samples == 11
    assert ind.resolution == pytest.approx(8e-10, rel=1e-12)
    assert ind.resolution_basis == "one counter unit over the dwell" and ind.issues == ()
    # the same counter reset (no modulus): no value, the issue says why
    reset = Series("sw", "if_out_octets", "B", "counter", s.ts, values)
    assert indication(reset, T0, T0 + 10, QUANTITIES["network"]).value is None


def test_energy_counter_in_joules() -> None:
    """360 J a second for 10 s: 3600 J = 1 Wh (energy: the increase itself), or 360 W
    (power: the increase per second). The spread is the fastest rate: 360 J/s, over the 10 s
    dwell 3600 J = 1 Wh (energy), or 360 W (power); in the second series the last second
    runs at 720 J/s: 2 Wh, or 720 W."""
    ts = [T0 + i for i in range(11)]
    j = Series("gpu0", "gpu_energy_j", "J", "counter", ts, [360.0 * i for i in range(11)])
    assert indication(j, T0, T0 + 10, QUANTITIES["energy"]).value == pytest.approx(1.0)
    assert indication(j, T0, T0 + 10, POWER).value == pytest.approx(360.0)
    bumpy = Series("gpu0", "gpu_energy_j", "J", "counter", ts,
                   [360.0 * i + (360.0 if i == 10 else 0.0) for i in range(11)])
    assert indication(j, T0, T0 + 10, QUANTITIES["energy"]).spread == pytest.approx(1.0)
    assert indication(j, T0, T0 + 10, POWER).spread == pytest.approx(360.0)
    assert indication(bumpy, T0, T0 + 10, QUANTITIES["energy"]).spread == pytest.approx(2.0)
    assert indication(bumpy, T0, T0 + 10, POWER).spread == pytest.approx(720.0)


def test_a_dwell_not_bracketed_by_samples_has_no_value() -> None:
    """Samples at T0 … T0 + 9 (one a second, 125e6 B/s): a dwell to T0 + 10 lies past the
    last sample. Interpolation would have to guess the last second (or, clamped at the last
    sample, divide 9 s of octets by 10 s: −10 %); the agent ships that sample a tick later."""
    s = Series("sw", "if_out_octets", "B", "counter", [T0 + i for i in range(10)],
               [125e6 * i for i in range(10)], modulus=2.0**64)
    late = indication(s, T0, T0 + 10, QUANTITIES["network"])
    assert late.value is None and late.issues == ("no sample after the dwell's end (yet)",)
    early = indication(s, T0 - 0.5, T0 + 9, QUANTITIES["network"])
    assert early.value is None and early.issues == ("no sample before the dwell's start",)
    assert indication(s, T0, T0 + 9, QUANTITIES["network"]).value == pytest.approx(1.0)


def test_unit_that_does_not_fit_raises() -> None:
    with pytest.raises(ValueError, match=r"unit '%'.*quantity power \(W\)"):
        indication(gauge([50, 60], "%"), T0, T0 + 2, POWER)
    with pytest.raises(ValueError, match=r"gauge in unit 'W'.*quantity energy"):
        indication(gauge([50, 60]), T0, T0 + 2, QUANTITIES["energy"])
