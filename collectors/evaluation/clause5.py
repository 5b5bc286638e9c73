"""Clause 5 of T/CECA-G 0355—2025 (主要配套设备要求): each register item met, not met or unproven.

An item is *met* when the grade the site declares is at least the grade its standard's clause
asks for AND the evidence the clause names was checked (who, when); *not met* when the
declared grade is worse; *unproven* when the grade or the checked evidence is missing. Clause
5 as clause 4.1 needs it is met only when every "shall" (应) item is met; the "should" (宜)
items are shown beside it and do not block (collectors/evaluation/site_equipment.py says which
subclause is which and why).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from dcmeter.collectors.evaluation.site_equipment import (
    CLAUSES,
    LABEL,
    NOTE_5_2,
    REQUIREMENTS,
    Clause,
    Equipment,
    requirement,
)

Status = Literal["met", "not met", "unproven"]
NONE_DECLARED = "none declared"
_RANK = {"met": 0, "unproven": 1, "not met": 2}
_EVIDENCE_KEYS = {LABEL: "China Energy Label filing number (label_filing)",
                  "certificate": "certificate or proof document (certificate)"}


def _worst(statuses: Sequence[str]) -> Status:
    """Return the weakest of `statuses`: not met over unproven over met."""
    worst = max(statuses, key=lambda s: _RANK[s], default="met")
    return worst  # type: ignore[return-value]


def item_status(e: Equipment) -> tuple[Status, str]:
    """Return one register item's status and the reason (clause 5.1-5.3)."""
    req = requirement(e.standard)
    clause = CLAUSES[req.clause]
    asked = f"clause {req.clause} asks {req.standard} {req.wording}"
    if e.declared_grade is None:
        return "unproven", f"no declared grade (declared_grade); {asked}"
    if e.declared_grade > req.grade:
        return "not met", f"declared grade {e.declared_grade}; {asked}"
    if not any(getattr(e, key) for key in clause.evidence):
        wanted = " or ".join(_EVIDENCE_KEYS[k] for k in clause.evidence)
        return "unproven", (f"no evidence: clause {req.clause} is verified by"
                            f" {clause.verification}; give the {wanted}")
    missing = [k for k in ("checked_by", "checked_on") if getattr(e, k) is None]
    if missing:
        return "unproven", f"evidence not recorded as checked: give {' and '.join(missing)}"
    return "met", f"declared grade {e.declared_grade}, checked; {asked}"


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
        "reason": reason,
        "note": e.note,
    }


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
    reasons = [f"{i['clause']} {i['standard']} {i['model']}: {i['status']}: {i['reason']}"
               for i in mine if i["status"] != "met"]
    reasons += [f"{s['clause']}: nothing declared in [[equipment]] ({s['standards']})"
                for s in subs if s["items"] == 0 and obligation == "shall"]
    declared = [s["status"] for s in subs if s["status"] != NONE_DECLARED]
    status = _worst(declared) if declared else NONE_DECLARED
    return {"status": status, "clauses": [s["clause"] for s in subs], "items": mine,
            "reasons": reasons}


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
    }
