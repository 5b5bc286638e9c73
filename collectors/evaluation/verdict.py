"""The front-runner verdict of T/CECA-G 0355—2025 clause 4 for every result.

`verdict` = {"category": "advanced" | "energy-saving" | "none", "indicative": bool, "basis":
[{"clause", "text", ...}], "clause5": {...} | None}. The category is read from the level the
evaluation already graded (`pue_level`, `cee_level`, `aee_level`, or their `_indicative`
would-be level when the result is not valid), so the verdict and the level can never
disagree. The verdict is indicative unless the result is valid AND conforming.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

from dcmeter.collectors.evaluation.clause5 import clause5
from dcmeter.collectors.evaluation.issues import detail, issue
from dcmeter.collectors.evaluation.site_equipment import Equipment

Category = Literal["advanced", "energy-saving", "none"]
CEE_TABLE = {"advanced": 50.0, "energy_saving": 20.0}  # Table 1, standard points per Wh
AEE_TABLE_ADVANCED = 224.0  # Table 2, GFLOPs/Wh


def _level(result: Mapping[str, Any], name: str) -> Any:
    """Return the graded level, or the would-be level a not-valid result carries."""
    level = result.get(name)
    return level if level is not None else result.get(f"{name}_indicative")


def _num(v: Any, digits: int) -> str:
    return f"{v:.{digits}f}" if isinstance(v, int | float) and not isinstance(v, bool) else "—"


def _g(v: Any) -> str:
    return f"{v:g}" if isinstance(v, int | float) and not isinstance(v, bool) else "—"


def indicative_basis(result: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Return why a verdict is only indicative: not valid, not conforming; [] when it stands."""
    why = []
    if not (result.get("quality") or {}).get("valid", False):
        why.append({"clause": "4", "rule": "valid",
                    "text": issue("v.not_valid")})
    if not result.get("conforming", True):
        rules = ", ".join(str(d.get("rule")) for d in result.get("deviations") or [])
        why.append({"clause": "4", "rule": "conforming",
                    "text": issue("v.not_conforming", rules=rules) if rules
                    else issue("v.not_conforming_unnamed")})
    return why


def infrastructure_verdict(
    result: Mapping[str, Any], equipment: Sequence[Equipment]
) -> tuple[Category, list[dict[str, Any]], dict[str, Any]]:
    """Return the 4.1 category: advanced at GB 40879 level 1, energy-saving at level 2, each
    only with clause 5 met (every shall item of the register met, with checked evidence)."""
    level = _level(result, "pue_level")
    thr = result.get("pue_thresholds") or {}
    pue = result.get("pue")
    register = clause5(equipment)
    candidate: Category = {1: "advanced", 2: "energy-saving"}.get(level, "none")  # type: ignore[assignment]
    if candidate == "none":
        limits = {"pue": _num(pue, 4), "l1": _num(thr.get("level1"), 2),
                  "l2": _num(thr.get("level2"), 2)}
        text = (issue("v.pue_ungraded", **limits) if level is None
                else issue("v.pue_none", level=level, **limits))
    else:
        bound = thr.get(f"level{level}")
        text = issue("v.pue_level", pue=_num(pue, 4), level=level, bound=_num(bound, 2),
                     candidate=candidate)
    source = ("site file [pue_levels]" if thr.get("configured")
              else "GB 40879-2021 as commonly cited")
    basis: list[dict[str, Any]] = [{
        "clause": "4.1", "indicator": "pue", "value": pue, "level": level,
        "reference": "GB 40879-2021 4.1", "thresholds": {
            "level1": thr.get("level1"), "level2": thr.get("level2"), "source": source},
        "text": text,
    }]
    should = register["should"]
    c5_text = {
        "met": issue("v.c5_met"),
        "not met": issue("v.c5_not_met", reasons=list(register["shall"]["reasons"])),
        "unproven": issue("v.c5_unproven", reasons=list(register["shall"]["reasons"])),
    }[register["status"]]
    basis.append({"clause": "5", "status": register["status"], "text": c5_text})
    basis.append({"clause": "5", "status": should["status"], "blocking": False,
                  "text": issue("v.should", clauses=list(should["clauses"]),
                                status=should["status"])})
    category: Category = candidate
    if candidate != "none" and not register["met"]:
        category = "none"
        basis.append({"clause": "4.1", "text": issue("v.pue_blocked", level=level,
                                                     candidate=candidate,
                                                     status=register["status"])})
    return category, basis, register


def general_verdict(result: Mapping[str, Any]) -> tuple[Category, list[dict[str, Any]]]:
    """Return the 4.2 category from the Table 1 level of CEE (advanced >= 50, energy-saving
    >= 20 standard points per Wh); clause 4.2 asks nothing of clause 5."""
    level = _level(result, "cee_level")
    value = result.get("cee")
    used = result.get("cee_thresholds") or {}
    category: Category = {"advanced": "advanced", "energy_saving": "energy-saving"}.get(
        level, "none")  # type: ignore[assignment]
    if category == "none":
        text = (issue("v.cee_missing") if value is None else issue(
            "v.cee_below", value=_num(value, 2),
            bound=_g(used.get("energy_saving", CEE_TABLE["energy_saving"]))))
    else:
        bound = used.get(level, CEE_TABLE[level])
        text = issue("v.cee_level", value=_num(value, 2), bound=_g(bound), candidate=category)
    item = {"clause": "4.2", "table": "Table 1", "indicator": "cee", "value": value,
            "level": level, "thresholds": {**CEE_TABLE, **used}, "text": text}
    return category, [item]


def ai_verdict(result: Mapping[str, Any]) -> tuple[Category, list[dict[str, Any]]]:
    """Return the 4.3 category from the Table 2 level of AEE (advanced >= 224 GFLOPs/Wh, the
    only level Table 2 has); clause 4.3 asks nothing of clause 5."""
    level = _level(result, "aee_level")
    value = result.get("aee_gflops_per_wh")
    bound = (result.get("aee_thresholds") or {}).get("advanced", AEE_TABLE_ADVANCED)
    if level == "advanced":
        category: Category = "advanced"
        text = issue("v.aee_level", value=_num(value, 2), bound=_g(bound))
    else:
        category = "none"
        text = (issue("v.aee_missing") if value is None else
                issue("v.aee_below", value=_num(value, 2), bound=_g(bound)))
    if bound != AEE_TABLE_ADVANCED:
        text = issue("v.aee_other_threshold", inner=text, table=AEE_TABLE_ADVANCED)
    item = {"clause": "4.3", "table": "Table 2", "indicator": "aee", "value": value,
            "level": level, "thresholds": {"advanced": bound}, "text": text}
    return category, [item]


def verdict(kind: str, result: Mapping[str, Any],
            equipment: Sequence[Equipment] = ()) -> dict[str, Any]:
    """Return the clause 4 verdict of a finished result of `kind` (T/CECA-G 0355—2025 4.1-4.3).

    Infrastructure carries the clause 5 register (`clause5`); general and AI carry None.
    """
    register: dict[str, Any] | None = None
    if kind == "infrastructure":
        category, basis, register = infrastructure_verdict(result, equipment)
    elif kind == "general":
        category, basis = general_verdict(result)
    elif kind == "ai":
        category, basis = ai_verdict(result)
    else:
        raise ValueError(f"no clause 4 verdict for window kind {kind!r}")
    why = indicative_basis(result)
    for item in basis + why:  # each text's catalogue code, for the report's language
        item["detail"] = detail(item["text"])
    return {"category": category, "indicative": bool(why), "basis": basis + why,
            "clause5": register}
