# ruff: noqa: E501  (a table of texts: a template reads best whole)
"""Issue texts of the meter cross-check (collectors/evaluation/reconcile.py), English and Chinese.

Merged into the issue catalogue (issue_texts.py); energies are in kWh, shown with 4 significant
digits (the figures themselves are in the result).
"""

from __future__ import annotations

RECONCILE_TEXTS: dict[str, dict[str, str]] = {
    "reconcile_disagrees": {
        "en": "reconciliation {name}: meter {meter} measured {meter_kwh:.4g} kWh, the sources below it"
              " {below_kwh:.4g} kWh; the difference less the expected loss, {excess_kwh:.4g} kWh, is beyond"
              " the allowance {allowance_kwh:.4g} kWh plus the uncertainty {u_kwh:.4g} kWh",
        "zh": "对账 {name}：电表 {meter} 计量 {meter_kwh:.4g} kWh，其下数据源合计 {below_kwh:.4g} kWh；"
              "差值扣除预期损耗后为 {excess_kwh:.4g} kWh，超出允差 {allowance_kwh:.4g} kWh 与不确定度"
              " {u_kwh:.4g} kWh 之和"},
    "reconcile_no_meter": {"en": "the meter {meter} has no energy in the window",
                           "zh": "电表 {meter} 在窗口内没有能耗数据"},
    "reconcile_no_below": {"en": "no energy in the window from: {sources}",
                           "zh": "以下数据源在窗口内没有能耗数据：{sources}"},
    "reconcile_not_valid": {"en": "the energy of {sources} is not valid in the window",
                            "zh": "{sources} 在窗口内的能耗无效"},
    "reconcile_empty_window": {"en": "the window is empty", "zh": "窗口为空"},
}
