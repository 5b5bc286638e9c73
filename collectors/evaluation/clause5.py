"""Clause 5 of T/CECA-G 0355—2025 (主要配套设备要求): each register item met, not met or unproven.

An item is *met* when the grade the site declares is at least the grade its standard's clause
asks for AND the evidence the clause names was checked (who, when); *not met* when the
declared grade is worse; *unproven* when the grade or the checked evidence is missing. Clause
5 as clause 4.1 needs it is met only when every "shall" (应) item is met; the "should" (宜)
items are shown beside it and do not block (collectors/evaluation/site_equipment.py says which
subclause is which and why).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

from dcmeter.collectors.evaluation.issues import Issue, detail, issue
from dcmeter.collectors.evaluation.site_equipment import (
    CERTIFICATE,
    CLAUSES,
    LABEL,
    NOTE_5_2,
    NOTE_5_2_ZH,
    REQUIREMENTS,
    Clause,
    Equipment,
    requirement,
)

Status = Literal["met", "not met", "unproven"]
NONE_DECLARED = "none declared"
_RANK = {"met": 0, "unproven": 1, "not met": 2}
# The issue telling which evidence is missing, by the evidence a clause accepts.
_NO_EVIDENCE = {(LABEL,): "c5.no_label", (CERTIFICATE, LABEL): "c5.no_certificate"}
_UNCHECKED = {("checked_by",): "c5.unchecked_by", ("checked_on",): "c5.unchecked_on",
              ("checked_by", "checked_on"): "c5.unchecked"}


def _worst(statuses: Sequence[str]) -> Status:
    """Return the weakest of `statuses`: not met over unproven over met."""
    worst = max(statuses, key=lambda s: _RANK[s], default="met")
    return worst  # type: ignore[return-value]


def item_status(e: Equipment) -> tuple[Status, Issue]:
    """Return one register item's status and the reason (clause 5.1-5.3), an issue (its
    English text, with a code and params for the report's other language)."""
    req = requirement(e.standard)
    clause = CLAUSES[req.clause]
    asked = issue("c5.asks_or_better" if req.grade > 1 else "c5.asks", clause=req.clause,
                  standard=req.standard, grade=req.grade)
    if e.declared_grade is None:
        return "unproven", issue("c5.no_grade", asked=asked)
    if e.declared_grade > req.grade:
        return "not met", issue("c5.declared", declared=e.declared_grade, asked=asked)
    if not any(getattr(e, key) for key in clause.evidence):
        return "unproven", issue(_NO_EVIDENCE[clause.evidence], clause=req.clause)
    missing = tuple(k for k in ("checked_by", "checked_on") if getattr(e, k) is None)
    if missing:
        return "unproven", issue(_UNCHECKED[missing])
    return "met", issue("c5.met", declared=e.declared_grade, asked=asked)


def _item(e: Equipment) -> dict[str, Any]:
    req = requirement(e.standard)
    clause = CLAUSES[req.clause]
    status, reason = item_status(e)
    return {
        "clause": req.clause,
        "obligation": clause.obligation,
        "category": e.category,
        "product": req.product,
        "model": e.model,
        "count": e.count,
        "standard": e.standard,
        "required_grade": req.grade,
        "requirement": f"{req.standard} {req.wording}",
        "declared_grade": e.declared_grade,
        "evidence": {
            "label_filing": e.label_filing,
            "certificate": e.certificate,
            "checked_by": e.checked_by,
            "checked_on": None if e.checked_on is None else e.checked_on.isoformat(),
        },
        "status": status,
        "reason": str(reason),
        "reason_detail": detail(reason),  # {code, params}: the reason in the report's language
        "note": e.note,
    }


def _reason(item: Mapping[str, Any]) -> Issue:
    """An item's reason as the issue it was made from (its English text and detail)."""
    found = item["reason_detail"]
    return Issue(item["reason"], found["code"], dict(found["params"]))


def _products(clause: Clause) -> str:
    return ", ".join(f"{r.standard}" for r in REQUIREMENTS.values() if r.clause == clause.number)


def _subclause(clause: Clause, items: Sequence[dict[str, Any]]) -> dict[str, Any]:
    mine = [i for i in items if i["clause"] == clause.number]
    if mine:
        status: str = _worst([i["status"] for i in mine])
    else:  # a shall clause with nothing declared is not proven; a should one is only noted
        status = "unproven" if clause.obligation == "shall" else NONE_DECLARED
    return {
        "clause": clause.number,
        "title": clause.title,
        "obligation": clause.obligation,
        "lead_in": clause.lead_in,
        "verification": clause.verification,
        "standards": _products(clause),
        "items": len(mine),
        "status": status,
        "blocking": clause.obligation == "shall",
    }


def _part(subclauses: Sequence[dict[str, Any]], items: Sequence[dict[str, Any]],
          obligation: str) -> dict[str, Any]:
    subs = [s for s in subclauses if s["obligation"] == obligation]
    mine = [i for i in items if i["obligation"] == obligation]
    reasons = [issue("c5.item", clause=i["clause"], standard=i["standard"], model=i["model"],
                     status=i["status"], reason=_reason(i))
               for i in mine if i["status"] != "met"]
    reasons += [issue("c5.nothing_declared", clause=s["clause"], standards=s["standards"])
                for s in subs if s["items"] == 0 and obligation == "shall"]
    declared = [s["status"] for s in subs if s["status"] != NONE_DECLARED]
    status = _worst(declared) if declared else NONE_DECLARED
    return {"status": status, "clauses": [s["clause"] for s in subs], "items": mine,
            "reasons": reasons, "reason_details": [detail(r) for r in reasons]}


def clause5(equipment: Sequence[Equipment]) -> dict[str, Any]:
    """Return the clause 5 register's result: `status` over the shall items (what 4.1 needs),
    the `shall` and `should` parts with their items and reasons, and each subclause."""
    items = [_item(e) for e in equipment]
    subclauses = [_subclause(c, items) for c in CLAUSES.values()]
    shall = _part(subclauses, items, "shall")
    should = _part(subclauses, items, "should")
    return {
        "status": shall["status"],
        "met": shall["status"] == "met",
        "shall": shall,
        "should": should,
        "subclauses": subclauses,
        "note": NOTE_5_2,
        "note_zh": NOTE_5_2_ZH,
    }
