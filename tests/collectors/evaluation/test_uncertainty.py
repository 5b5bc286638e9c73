"""Accuracy of sources and its propagation to E, PUE and CUE, checked against hand figures.

Every expected number is worked out in the comment beside it; a Monte Carlo run checks the
coverage the method claims (about 92 % for several sources, 100 % for the worst case).
"""

from __future__ import annotations

import json
import math
import random

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from dcmeter.collectors.evaluation.infrastructure import evaluate_infrastructure
from dcmeter.collectors.evaluation.jsonl import parse_rfc3339
from dcmeter.collectors.evaluation.series import Series
from dcmeter.collectors.evaluation.site import Site
from dcmeter.collectors.evaluation.uncertainty import (
    MPE,
    ratio_rel,
    ratio_rel_worst,
    source_accuracy,
    sum_rel,
    sum_rel_worst,
    within_mpe,
)

T0 = parse_rfc3339("2026-11-22T10:00:00Z")
TS = tuple(T0 + 60 * k for k in range(61))


def series(
    metric: str, kind_label: str | None = None, accuracy: float | None = None, source: str = "s"
) -> Series:
    labels = {"kind": kind_label} if kind_label else {}
    return Series(source, metric, "", "gauge", (), (), labels=labels, accuracy=accuracy)


@pytest.mark.parametrize(
    ("metric", "kind", "value", "cites"),
    [
        ("energy_import_kwh", "meter", 0.005, "IEC 62053-22"),
        ("power_w", "meter", 0.005, "IEC 62053-22"),
        ("power_w", "compute", 0.05, "DCMI"),
        ("power_w", None, 0.05, "DCMI"),  # a BMC at point 8 with no kind label
        ("gpu_power_w", "gpu", 0.05, "NVML"),
        ("gpu_energy_j", "gpu", 0.05, "NVML"),
        ("gpu_util_pct", "gpu", 0.05, "NVML"),
        ("cpu_util_pct", "compute", 0.01, "psutil"),
        ("cpu_util_pct", "storage", 0.02, "hrProcessorLoad"),
        ("if_in_octets", "network", 0.0, "exact count"),
        ("if_out_octets", "network", 0.0, "exact count"),
        ("if_speed_bps", "network", 0.0, "exact"),
        ("humidity_pct", None, 0.05, "configure"),
    ],
)
def test_default_accuracy_by_metric_and_kind(
    metric: str, kind: str | None, value: float, cites: str
) -> None:
    accuracy, provenance = source_accuracy(series(metric, kind))
    assert accuracy == value
    assert cites in provenance


def test_configured_accuracy_wins() -> None:
    assert source_accuracy(series("power_w", "compute", accuracy=0.02)) == (
        0.02,
        "configured (source accuracy)",
    )


def test_sum_of_independent_parts_by_hand() -> None:
    # 120 kWh at 0.5 % and 90 kWh at 1 %: sqrt(0.6² + 0.9²) = sqrt(1.17) = 1.081665 kWh of 210
    assert sum_rel([(120.0, 0.005), (90.0, 0.01)]) == pytest.approx(1.081665 / 210, rel=1e-6)
    # worst case (0.6 + 0.9) / 210
    assert sum_rel_worst([(120.0, 0.005), (90.0, 0.01)]) == pytest.approx(1.5 / 210)
    # a difference, 120 − 30 at 0.5 % each: sqrt(0.6² + 0.15²) = 0.618466 of 90
    assert sum_rel([(120.0, 0.005), (-30.0, 0.005)]) == pytest.approx(0.618466 / 90, rel=1e-6)
    assert sum_rel([]) == 0.0
    assert sum_rel([(5.0, 0.0), (7.0, 0.0)]) == 0.0  # exact counts stay exact
    assert sum_rel([(5.0, 0.01), (-5.0, 0.01)]) == math.inf  # a zero sum of uncertain parts


def test_ratio_by_hand() -> None:
    assert ratio_rel(0.005, 0.01) == pytest.approx(math.sqrt(0.000125))  # 0.011180
    assert ratio_rel_worst(0.005, 0.01) == pytest.approx(0.015)
    assert ratio_rel(0.03) == pytest.approx(0.03)


def test_within_mpe_at_the_bounds() -> None:
    assert MPE["energy"] == 0.05 and MPE["power"] == 0.01
    assert within_mpe(0.05, "energy") and not within_mpe(0.0501, "energy")
    assert within_mpe(0.01, "power") and not within_mpe(0.011, "power")
    assert not within_mpe(math.inf, "energy")
    with pytest.raises(KeyError, match="known: energy"):
        within_mpe(0.01, "voltage")


@given(st.lists(st.tuples(st.floats(0.1, 1e6), st.floats(0.0, 0.2)), min_size=1, max_size=20))
@example([(369428.0, 4.254494827119451e-168)])  # squaring underflowed: RSS came out larger
def test_rss_never_exceeds_the_worst_case_nor_the_largest_bound(
    parts: list[tuple[float, float]],
) -> None:
    rel = sum_rel(parts)
    assert rel <= sum_rel_worst(parts) * (1 + 1e-12)
    assert rel <= max(r for _, r in parts) * (1 + 1e-12)  # positive parts: never worse


def test_equal_sources_average_down() -> None:
    # n equal sources at bound a: a·sqrt(n)·x / (n·x) = a / sqrt(n)
    assert sum_rel([(10.0, 0.05)] * 4) == pytest.approx(0.025)


def test_monte_carlo_coverage_matches_the_stated_method() -> None:
    rng = random.Random(4)
    parts = [(60.0, 0.05), (30.0, 0.05), (30.0, 0.02), (10.0, 0.1)]
    total = sum(v for v, _ in parts)
    bound, worst = sum_rel(parts) * total, sum_rel_worst(parts) * total
    trials, inside, beyond_worst = 20_000, 0, 0
    for _ in range(trials):
        err = sum(v * rng.uniform(-a, a) for v, a in parts)
        inside += abs(err) <= bound
        beyond_worst += abs(err) > worst
    assert beyond_worst == 0
    assert 0.88 < inside / trials < 0.97  # sqrt(3)·u_c covers about 92 %


# -- propagation through an infrastructure window ------------------------------------------


def counter(source: str, kwh_per_min: float, accuracy: float | None) -> Series:
    return Series(
        source,
        "energy_import_kwh",
        "kWh",
        "counter",
        TS,
        tuple(1000.0 + kwh_per_min * k for k in range(61)),
        labels={"kind": "meter"},
        accuracy=accuracy,
    )


def bmc(source: str, watts: float, accuracy: float | None = None) -> Series:
    return Series(
        source,
        "power_w",
        "W",
        "gauge",
        TS,
        (watts,) * 61,
        labels={"point": "it_input", "kind": "compute"},
        accuracy=accuracy,
    )


def site(**roles: list[str]) -> Site:
    return Site.model_validate(
        {"site": {"name": "dc", "grid_factor_kg_per_kwh": 0.5}, "energy": roles}
    )


def test_infrastructure_uncertainty_by_hand() -> None:
    # total 150 kWh (class 0.5 meter, configured 0.005); IT: BMCs of 60 kW and 40 kW at the
    # default 5 %, 60 + 40 = 100 kWh; green 30 kWh at 1 %.
    data = [
        counter("total", 2.5, 0.005),
        bmc("bmc-a", 60_000.0),
        bmc("bmc-b", 40_000.0),
        counter("pv", 0.5, 0.01),
    ]
    s = site(total=["total"], it=["bmc-a", "bmc-b"], green=["pv"])
    result = evaluate_infrastructure(s, data, T0, T0 + 3600.0)
    u = result["uncertainty"]
    json.dumps(u, allow_nan=False)
    assert u["energy_rel"] == u["energy_total_rel"] == pytest.approx(0.005)
    # IT: sqrt(3² + 2²) = sqrt(13) = 3.605551 kWh of 100
    assert u["energy_it_rel"] == pytest.approx(0.03605551, rel=1e-6)
    assert u["worst_case"]["energy_it_rel"] == pytest.approx(0.05)  # (3 + 2) / 100
    # PUE 1.5: sqrt(0.005² + 0.03605551²) = sqrt(0.000025 + 0.0013) = 0.03640055
    assert u["pue_rel"] == pytest.approx(0.03640055, rel=1e-6)
    assert u["worst_case"]["pue_rel"] == pytest.approx(0.055)
    # non-green 150 − 30 = 120: sqrt(0.75² + 0.3²) = sqrt(0.6525) = 0.8077747 of 120
    assert u["carbon_rel"] == pytest.approx(0.8077747 / 120, rel=1e-6)
    assert u["worst_case"]["carbon_rel"] == pytest.approx(1.05 / 120)
    # CUE: sqrt(0.006731456² + 0.03605551²) = sqrt(0.0013453125) = 0.03667850
    assert u["cue_rel"] == pytest.approx(0.03667850, rel=1e-6)
    assert u["within_mpe"] == {"energy": True, "energy_it": True}
    assert u["sources"]["bmc-a"]["accuracy"] == 0.05
    assert "DCMI" in u["sources"]["bmc-a"]["provenance"]
    assert u["sources"]["pv"]["roles"] == ["green"]
    assert u["sources"]["total"]["provenance"] == "configured (source accuracy)"


def test_a_coarse_source_breaks_the_energy_mpe() -> None:
    # one IT source configured at 8 %: E_IT's relative uncertainty is 0.08 > 0.05
    data = [counter("total", 2.5, 0.005), bmc("bmc-a", 60_000.0, accuracy=0.08)]
    result = evaluate_infrastructure(site(total=["total"], it=["bmc-a"]), data, T0, T0 + 3600.0)
    u = result["uncertainty"]
    assert u["energy_it_rel"] == pytest.approx(0.08)
    assert u["within_mpe"] == {"energy": True, "energy_it": False}
    assert u["pue_rel"] == pytest.approx(math.sqrt(0.005**2 + 0.08**2))


def test_missing_role_leaves_figures_unknown() -> None:
    data = [counter("total", 2.5, 0.005)]
    result = evaluate_infrastructure(site(total=["total"], it=["bmc-a"]), data, T0, T0 + 3600.0)
    u = result["uncertainty"]
    assert result["pue"] is None
    assert u["energy_total_rel"] == pytest.approx(0.005)
    assert u["energy_it_rel"] is None and u["pue_rel"] is None and u["cue_rel"] is None
    assert u["within_mpe"]["energy_it"] is None
