"""The report's "Reconciliation" section: each [[reconcile]] set's meter against the sum below.

Reads `result["reconciliation"]` (collectors/evaluation/reconcile.py) and writes escaped HTML in
English or Chinese (no I/O); energies in kWh to 4 significant digits.
"""

from __future__ import annotations

from collections.abc import Mapping
from html import escape
from typing import Any

from dcmeter.collectors.evaluation.issues import detail, render_issue
from dcmeter.collectors.reporting.report_format import percent, plain

LABELS: dict[str, dict[str, str]] = {
    "en": {
        "h": "Reconciliation", "set": "Set", "meter": "Meter", "below": "Sources below",
        "meter_kwh": "Meter (kWh)", "below_kwh": "Sum below (kWh)", "diff": "Difference (kWh)",
        "ratio": "Sum / meter", "loss": "Expected loss (kWh)", "allow": "Allowance (kWh)",
        "u": "Uncertainty U (kWh)", "verdict": "Verdict",
        "agrees": "agrees", "disagrees": "disagrees", "not_computed": "not computed",
        "none": "The site file declares no sources behind a meter ([[reconcile]]).",
        "absent": "The result has no reconciliation (computed before it existed).",
        "rule": "A set agrees when |difference − expected loss| ≤ allowance + U; U combines the"
                " accuracies of the meter and of every source below it.",
    },
    "zh": {
        "h": "计量对账", "set": "对账组", "meter": "电表", "below": "下级数据源",
        "meter_kwh": "电表（kWh）", "below_kwh": "下级合计（kWh）", "diff": "差值（kWh）",
        "ratio": "合计/电表", "loss": "预期损耗（kWh）", "allow": "允差（kWh）",
        "u": "不确定度 U（kWh）", "verdict": "结论",
        "agrees": "一致", "disagrees": "不一致", "not_computed": "未计算",
        "none": "站点文件未声明电表下级数据源（[[reconcile]]）。",
        "absent": "该结果没有计量对账（计算时尚无此项）。",
        "rule": "当 |差值 − 预期损耗| ≤ 允差 + U 时判为一致；U 合成电表及其下级各数据源的准确度。",
    },
}


def _kwh(v: Any) -> str:
    return escape(plain(v, 4))


def reconciliation(result: Mapping[str, Any], lang: str) -> str:
    """The section; a result without the key (frozen before it existed) or with no set says so."""
    L = LABELS.get(lang, LABELS["en"])
    head = f'<h2 id="reconciliation">{escape(L["h"])}</h2>'
    sets = result.get("reconciliation")
    if not isinstance(sets, list) or not sets:
        why = "none" if isinstance(sets, list) else "absent"
        return head + f'<p class="muted">{escape(L[why])}</p>'
    keys = ("set", "meter", "meter_kwh", "below_kwh", "diff", "ratio", "loss", "allow", "u",
            "verdict")
    th = "".join(f"<th>{escape(L[k])}</th>" for k in keys)
    rows, notes = [], []
    for r in sets:
        verdict = str(r.get("verdict"))
        word = escape(L.get(verdict, verdict))
        if verdict == "disagrees":
            word = f'<span class="bad">{word}</span>'
        below = ", ".join(str(s) for s in r.get("below") or ())
        rows.append("<tr>" + "".join(f"<td>{c}</td>" for c in (
            f"<b>{escape(str(r.get('name')))}</b>", escape(str(r.get("meter"))),
            _kwh(r.get("meter_kwh")), f"{_kwh(r.get('below_kwh'))}<br>{escape(below)}",
            _kwh(r.get("difference_kwh")), escape(percent(r.get("ratio"))),
            _kwh(r.get("expected_loss_kwh")), _kwh(r.get("allowance_kwh")),
            _kwh(r.get("uncertainty_kwh")), word)) + "</tr>")
        issues = r.get("issue_details") or [detail(str(i)) for i in r.get("issues") or ()]
        notes += [f"<li>{escape(str(r.get('name')))}: {escape(render_issue(d, lang))}</li>"
                  for d in issues]
    table = (f'<table class="small"><thead><tr>{th}</tr></thead><tbody>{"".join(rows)}'
             "</tbody></table>")
    listed = f"<ul>{''.join(notes)}</ul>" if notes else ""
    return head + table + f'<p class="muted">{escape(L["rule"])}</p>' + listed
