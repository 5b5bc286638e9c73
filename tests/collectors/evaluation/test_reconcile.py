"""The meter cross-check (collectors/evaluation/reconcile.py): golden cases worked by hand.

The window is one hour. The meter counts 1 kWh every 450 s (8 samples an hour): E_meter = 8 kWh,
stated accuracy 0.05, so a_m·E_meter = 0.4 kWh. Below it server-a draws a constant 3000 W
(3 kWh, accuracy 0.1: 0.3 kWh) and server-b 4000 W (4 kWh, accuracy 0: exact).
S = 7 kWh, D = 8 − 7 = 1 kWh, ratio 7/8 = 0.875, U = √(0.4² + 0.3² + 0²) = 0.5 kWh.
"""

from __future__ import annotations

from typing import Any

import pytest

from dcmeter.base.configfile import ConfigError
from dcmeter.collectors.evaluation.evaluate import evaluate, source_ids
from dcmeter.collectors.evaluation.issues import render_issue
from dcmeter.collectors.evaluation.jsonl import parse_rfc3339
from dcmeter.collectors.evaluation.reconcile import reconciliation
from dcmeter.collectors.evaluation.series import Series
from dcmeter.collectors.evaluation.site import Site, load_site

T0 = parse_rfc3339("2026-11-22T10:00:00Z")
HOUR = 3600.0


def site(**rec: Any) -> Site:
    spec = {"name": "rack A feed", "meter": "meter-a", "below": ["server-a", "server-b"], **rec}
    return Site.model_validate({
        "site": {"name": "dc", "region": "east-2023"},
        "energy": {"total": ["meter-a"], "it": ["meter-a"]},
        "reconcile": [spec],
    })


def meter(steps: range = range(9)) -> Series:
    return Series("meter-a", "energy_import_kwh", "kWh", "counter",
                  tuple(T0 + 450 * k for k in steps), tuple(100.0 + k for k in steps),
                  labels={"point": "it_pdu", "kind": "meter"}, accuracy=0.05)


def server(name: str, watts: float, accuracy: float, minutes: range = range(61)) -> Series:
    return Series(name, "power_w", "W", "gauge", tuple(T0 + 60 * k for k in minutes),
                  (watts,) * len(minutes), labels={"point": "it_input", "kind": "compute"},
                  accuracy=accuracy)


def data() -> list[Series]:
    return [meter(), server("server-a", 3000.0, 0.1), server("server-b", 4000.0, 0.0)]


def one(s: Site, series: list[Series], end: float = T0 + HOUR) -> dict[str, Any]:
    (result,) = reconciliation(s, series, T0, end)
    return result


def test_figures_and_agreement_at_the_exact_boundary() -> None:
    # Allowance 500 W over 1 h = 0.5 kWh: |D − L| = 1 = A + U = 0.5 + 0.5 exactly: agrees.
    r = one(site(allowance={"fixed_w": 500}), data())
    assert r["meter_kwh"] == pytest.approx(8.0, abs=1e-12)
    assert r["below_kwh"] == pytest.approx(7.0, abs=1e-12)
    assert r["difference_kwh"] == pytest.approx(1.0, abs=1e-12)
    assert r["ratio"] == pytest.approx(0.875, abs=1e-12)
    assert r["uncertainty_kwh"] == pytest.approx(0.5, abs=1e-12)
    assert r["allowance_kwh"] == pytest.approx(0.5, abs=1e-12)
    assert r["expected_loss_kwh"] == 0.0
    assert r["verdict"] == "agrees", r
    assert r["issues"] == []
    assert {(p["source"], p["role"], p["accuracy"]) for p in r["per_source"]} == {
        ("meter-a", "meter", 0.05), ("server-a", "below", 0.1), ("server-b", "below", 0.0)}
    # The same allowance as a share of the meter's energy: 0.0625 × 8 kWh = 0.5 kWh.
    assert one(site(allowance={"relative": 0.0625}), data())["verdict"] == "agrees"


def test_just_beyond_the_boundary_disagrees_with_an_issue_in_both_languages() -> None:
    # 499.999 W: A = 0.499999 kWh, A + U = 0.999999 < 1: disagrees.
    r = one(site(allowance={"fixed_w": 499.999}), data())
    assert r["verdict"] == "disagrees"
    (text,) = r["issues"]
    assert text.code == "reconcile_disagrees"
    assert "rack A feed" in text and "meter-a" in text and "8 kWh" in text and "7 kWh" in text
    assert "电表 meter-a" in render_issue({"code": text.code, "params": text.params}, "zh")


def test_expected_loss_centres_the_band_and_a_sum_above_the_meter_counts_too() -> None:
    # L = 0.0625 × 8 = 0.5 kWh: |1 − 0.5| = 0.5 ≤ 0 + 0.5: agrees with no allowance.
    assert one(site(loss={"relative": 0.0625}), data())["verdict"] == "agrees"
    # L = 0.25 × 8 = 2 kWh: |1 − 2| = 1 ≤ 0.5 (allowance 500 W·h) + 0.5: agrees;
    # with 1 W more of loss (L = 2.001 kWh) the sum is too far above: disagrees.
    assert one(site(loss={"relative": 0.25}, allowance={"fixed_w": 500}), data())[
        "verdict"] == "agrees"
    r = one(site(loss={"relative": 0.25, "fixed_w": 1}, allowance={"fixed_w": 500}), data())
    assert r["verdict"] == "disagrees"
    assert r["excess_kwh"] == pytest.approx(1.001, abs=1e-12)


def test_missing_or_invalid_data_is_not_computed_with_the_reason() -> None:
    r = one(site(), data()[:2])  # server-b sent nothing
    assert r["verdict"] == "not_computed"
    assert r["issues"][0].code == "reconcile_no_below" and "server-b" in r["issues"][0]
    assert r["difference_kwh"] is None and r["uncertainty_kwh"] is None
    r = one(site(), data()[1:])  # the meter sent nothing
    assert r["issues"][0].code == "reconcile_no_meter"
    # A gap of 20 min (over the 900 s limit) in server-a's power: its energy is not valid.
    gappy = server("server-a", 3000.0, 0.1, range(0, 61, 20))
    r = one(site(), [meter(), gappy, server("server-b", 4000.0, 0.0)])
    assert r["verdict"] == "not_computed"
    assert r["issues"][0].code == "reconcile_not_valid" and "server-a" in r["issues"][0]
    assert any("gap of 1200 s" in i for i in r["issues"][1:])
    assert one(site(), data(), end=T0)["issues"][0].code == "reconcile_empty_window"


def test_every_window_kind_carries_it_and_a_disagreement_is_a_quality_issue() -> None:
    s = site(allowance={"fixed_w": 499.999})
    assert {"server-a", "server-b"} <= set(source_ids("infrastructure", s))
    for kind in ("infrastructure", "general", "ai"):
        result = evaluate(kind, s, data(), T0, T0 + HOUR)  # type: ignore[arg-type]
        (r,) = result["reconciliation"]
        assert r["verdict"] == "disagrees", kind
        codes = [d["code"] for d in result["quality"]["issue_details"]]
        assert "reconcile_disagrees" in codes, kind
    result = evaluate("infrastructure", site(allowance={"fixed_w": 500}), data(), T0, T0 + HOUR)
    assert result["quality"]["valid"] is True  # the agreeing set adds nothing
    assert "reconcile_disagrees" not in str(result["quality"]["issue_details"])
    assert evaluate("infrastructure", Site.model_validate(
        {"site": {"name": "dc", "region": "east-2023"},
         "energy": {"total": ["meter-a"], "it": ["meter-a"]}}), data(), T0, T0 + HOUR,
    )["reconciliation"] == []


@pytest.mark.parametrize(("block", "words"), [
    ('name = "x"\nmeter = "m"\nbelow = ["m", "s"]\n', "also listed in `below`"),
    ('name = "x"\nmeter = "m"\nbelow = []\n', "below"),
    ('name = "x"\nmeter = "m"\nbelow = ["s"]\nallowance = { relative = -0.1 }\n', "relative"),
    ('name = "x"\nmeter = "m"\nbelow = ["s"]\nallowance = { watts = 5 }\n', "watts"),
])
def test_a_bad_reconcile_set_is_one_clear_error(tmp_path: Any, block: str, words: str) -> None:
    path = tmp_path / "site.toml"
    path.write_text('[site]\nname = "dc"\nregion = "east-2023"\n[energy]\ntotal = ["m"]\n'
                    f'it = ["m"]\n[[reconcile]]\n{block}')
    with pytest.raises(ConfigError) as e:
        load_site(path)
    assert "reconcile" in str(e.value) and words in str(e.value)


def test_two_sets_of_one_name_are_refused(tmp_path: Any) -> None:
    path = tmp_path / "site.toml"
    path.write_text('[site]\nname = "dc"\nregion = "east-2023"\n[energy]\ntotal = ["m"]\n'
                    'it = ["m"]\n' + '[[reconcile]]\nname = "x"\nmeter = "m"\nbelow = ["s"]\n' * 2)
    with pytest.raises(ConfigError, match="two \\[\\[reconcile\\]\\] sets are named 'x'"):
        load_site(path)
