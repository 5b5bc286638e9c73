"""The report's Reconciliation section (collectors/reporting/report_reconcile.py), en and zh."""

from __future__ import annotations

from dcmeter.collectors.evaluation.issues import attach_details, issue
from dcmeter.collectors.reporting.report_reconcile import reconciliation


def _result() -> dict[str, object]:
    base = {"meter": "meter-a", "below": ["server-a", "server-b"], "loss": {}, "allowance": {}}
    agrees = {**base, "name": "rack A", "meter_kwh": 8.0, "below_kwh": 7.0,
              "difference_kwh": 1.0, "ratio": 0.875, "expected_loss_kwh": 0.0,
              "allowance_kwh": 0.5, "uncertainty_kwh": 0.5, "excess_kwh": 1.0,
              "verdict": "agrees", "issues": []}
    disagrees = {**agrees, "name": "rack B", "verdict": "disagrees", "issues": [issue(
        "reconcile_disagrees", name="rack B", meter="meter-a", meter_kwh=8.0, below_kwh=7.0,
        excess_kwh=1.0, allowance_kwh=0.25, u_kwh=0.5)]}
    missing = {**base, "name": "rack C", "meter_kwh": None, "below_kwh": None,
               "difference_kwh": None, "ratio": None, "expected_loss_kwh": None,
               "allowance_kwh": None, "uncertainty_kwh": None, "excess_kwh": None,
               "verdict": "not_computed",
               "issues": [issue("reconcile_no_below", sources=["server-b"])]}
    return attach_details({"reconciliation": [agrees, disagrees, missing]})


def test_each_set_is_a_row_with_its_figures_and_verdict_in_english() -> None:
    html = reconciliation(_result(), "en")
    assert html.startswith('<h2 id="reconciliation">Reconciliation</h2>')
    assert html.count("<tr>") == 4  # the head and one row per set
    row_a = html.split("<b>rack A</b>", 1)[1].split("</tr>", 1)[0]
    # meter 8, sum 7, difference 1, ratio 87.5 %, loss 0, allowance 0.5, U 0.5 (4 digits)
    assert ("<td>8.000</td><td>7.000<br>server-a, server-b</td><td>1.000</td>"
            "<td>87.5 %</td><td>0</td><td>0.5000</td><td>0.5000</td><td>agrees</td>") in row_a
    assert '<span class="bad">disagrees</span>' in html
    assert "<td>not computed</td>" in html
    assert "rack C: no energy in the window from: server-b" in html
    assert "rack B: reconciliation rack B: meter meter-a measured 8 kWh" in html


def test_the_section_in_chinese_and_without_sets() -> None:
    html = reconciliation(_result(), "zh")
    assert "计量对账" in html and "<td>一致</td>" in html and "不一致" in html
    assert "以下数据源在窗口内没有能耗数据：server-b" in html
    assert "未声明" in reconciliation({"reconciliation": []}, "zh")
    assert "declares no sources" in reconciliation({"reconciliation": []}, "en")
    assert "computed before it existed" in reconciliation({}, "en")  # frozen before it
    assert "尚无此项" in reconciliation({}, "zh")
