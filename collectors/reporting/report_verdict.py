"""The report's verdict section: the clause 4 category on top, and the clause 5 register."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

from dcmeter.collectors.evaluation.issues import render_issue
from dcmeter.collectors.evaluation.site_equipment import CLAUSES, REQUIREMENTS, grade_wording
from dcmeter.collectors.reporting.report_i18n import basis_text

VERDICT_LABELS: dict[str, dict[str, str]] = {
    "en": {
        "verdict": "Front-runner verdict (T/CECA-G 0355—2025 clause 4)",
        "advanced": "Advanced", "energy-saving": "Energy-saving", "none": "Not a front-runner",
        "indicative": "INDICATIVE ONLY, not a verdict",
        "would_be": "the figures would give: {c}", "basis": "Basis",
        "clause5": "Clause 5: main supporting equipment",
        "c5_status": "Clause 5 (shall items, needed by 4.1): {s}",
        "c5_should": "Should items, not blocking: {s}",
        "clause": "Clause", "title": "Covers", "obligation": "Force", "status": "Status",
        "blocking": "Blocks the verdict", "verification": "Verified by",
        "shall": "shall", "should": "should",
        "met": "met", "not met": "not met", "unproven": "unproven",
        "none declared": "none declared", "yes": "yes", "no": "no",
        "category": "Category", "product": "Product", "model": "Model", "count": "Count",
        "requirement": "Required", "declared": "Declared grade", "evidence": "Evidence",
        "checked": "Checked by / on", "reason": "Reason", "no_items": "No equipment declared.",
        "cooling": "cooling", "server": "server", "distribution": "distribution",
    },
    "zh": {
        "verdict": "能效“领跑者”评价结论（T/CECA-G 0355—2025 第 4 章）",
        "advanced": "先进水平", "energy-saving": "节能水平", "none": "未达到领跑者水平",
        "indicative": "仅供参考，不构成评价结论",
        "would_be": "按数据将为：{c}", "basis": "依据",
        "clause5": "第 5 章 主要配套设备要求",
        "c5_status": "第 5 章（“应”条款，4.1 所需）：{s}",
        "c5_should": "“宜”条款（不影响结论）：{s}",
        "clause": "条款", "title": "范围", "obligation": "要求程度", "status": "状态",
        "blocking": "影响结论", "verification": "验证方式",
        "shall": "应", "should": "宜",
        "met": "满足", "not met": "不满足", "unproven": "未证实",
        "none declared": "未登记", "yes": "是", "no": "否",
        "category": "类别", "product": "产品", "model": "型号", "count": "数量",
        "requirement": "要求", "declared": "申报能效等级", "evidence": "证明",
        "checked": "核查人 / 日期", "reason": "说明", "no_items": "未登记设备。",
        "cooling": "冷却", "server": "服务器", "distribution": "配电",
    },
}
_COLOUR = {"advanced": "#1d7a3a", "energy-saving": "#2e7d9a", "none": "#666",
           "indicative": "#b7791f"}


def _e(v: Any) -> str:
    return escape("—" if v is None or v == "" else str(v))


def _table(head: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    th = "".join(f"<th>{escape(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"


def _badge(text: str, colour: str) -> str:
    return f'<span class="badge" style="background:{colour}">{escape(text)}</span>'


def _word(L: Mapping[str, str], v: Any) -> str:
    return escape(L[v]) if isinstance(v, str) and v in L else _e(v)


def _clause_text(s: Mapping[str, Any], key: str, lang: str) -> str:
    """A subclause's title or verification in `lang` (the result's own text if unknown)."""
    clause = CLAUSES.get(str(s.get("clause")))
    if clause is None:
        return _e(s.get(key))
    return _e(clause.title_in(lang) if key == "title" else clause.verification_in(lang))


def _product(i: Mapping[str, Any], lang: str) -> tuple[str, str]:
    """An item's product name and requirement ("GB 19761 能效 2 级及以上") in `lang`."""
    req = REQUIREMENTS.get(str(i.get("standard") or "").split("-")[0])
    if req is None:
        return _e(i.get("product")), _e(i.get("requirement"))
    return _e(req.product_in(lang)), _e(f"{req.standard} {grade_wording(req.grade, lang)}")


def _reason(i: Mapping[str, Any], lang: str) -> str:
    """An item's reason in `lang`: from its detail; a result without one shows its text."""
    found = i.get("reason_detail")
    return _e(render_issue(found, lang) if isinstance(found, Mapping) else i.get("reason"))


def _register(c5: Mapping[str, Any], L: Mapping[str, str], lang: str) -> str:
    out = f"<h3>{escape(L['clause5'])}</h3><p>"
    out += escape(L["c5_status"].format(s=L.get(str(c5.get("status")), str(c5.get("status")))))
    should = (c5.get("should") or {}).get("status")
    out += "<br>" + escape(L["c5_should"].format(s=L.get(str(should), str(should)))) + "</p>"
    subs = [[_e(s.get("clause")), _clause_text(s, "title", lang), _word(L, s.get("obligation")),
             _e(s.get("standards")), _clause_text(s, "verification", lang),
             _word(L, s.get("status")),
             escape(L["yes" if s.get("blocking") else "no"])]
            for s in c5.get("subclauses") or []]
    out += _table([L["clause"], L["title"], L["obligation"], "GB", L["verification"],
                   L["status"], L["blocking"]], subs)
    items = [*(c5.get("shall") or {}).get("items", []), *(c5.get("should") or {}).get("items", [])]
    rows = []
    for i in items:
        ev = i.get("evidence") or {}
        proof = " / ".join(_e(ev.get(k)) for k in ("label_filing", "certificate") if ev.get(k))
        product, required = _product(i, lang)
        rows.append([_e(i.get("clause")), _word(L, i.get("obligation")),
                     _word(L, i.get("category")), product, _e(i.get("model")),
                     _e(i.get("count")), required, _e(i.get("declared_grade")),
                     proof or "—", f"{_e(ev.get('checked_by'))} / {_e(ev.get('checked_on'))}",
                     f"<b>{_word(L, i.get('status'))}</b>", _reason(i, lang)])
    if not rows:
        return out + f"<p>{escape(L['no_items'])}</p>"
    return out + _table([L["clause"], L["obligation"], L["category"], L["product"], L["model"],
                         L["count"], L["requirement"], L["declared"], L["evidence"],
                         L["checked"], L["status"], L["reason"]], rows)


def verdict_html(result: Mapping[str, Any], lang: str) -> str:
    """The verdict section in `lang`: the category (marked when indicative), its basis, and for
    infrastructure the clause 5 register; '' when the result carries no verdict."""
    v = result.get("verdict")
    if not v:
        return ""
    L = VERDICT_LABELS[lang]
    category = str(v.get("category"))
    name = L.get(category, category)
    if v.get("indicative"):
        head = (_badge(L["indicative"], _COLOUR["indicative"])
                + f' <span class="muted">{escape(L["would_be"].format(c=name))}</span>')
    else:
        head = _badge(name, _COLOUR.get(category, "#666"))
    basis = "".join(
        f"<li>{_e(basis_text(b, lang) if isinstance(b, Mapping) else b)}</li>"
        for b in v.get("basis") or [])
    out = (f'<h2 id="verdict">{escape(L["verdict"])}</h2><p>{head}</p>'
           f"<h3>{escape(L['basis'])}</h3><ul>{basis}</ul>")
    if v.get("clause5"):
        out += _register(v["clause5"], L, lang)
    return out
