"""A calibration point's error, uncertainty budget and conformity statement (seed 004).

Model (GUM = JCGM 100:2008 4.1; JJF 1059.1-2012 4.1): E = X − R, the indication X of the
instrument under calibration minus the reference value R of the measurement standard, all
sensitivity coefficients 1. Per point, n valid repetitions (reference and indication both
present) give R̄, X̄, E = X̄ − R̄ and the repeatability s of e_i = x_i − r_i. The budget:

- repeatability: type A (GUM 4.2.3; JJF 1059.1 4.3), normal, u = s/√n, ν = n − 1;
- reference_mpe: type B (GUM 4.3.7; JJF 1059.1 4.4), rectangular over ± the standard's MPE
  at R̄, u = a/√3;
- resolution_indicated, resolution_reference: type B, rectangular over ± half the
  resolution δ (GUM F.2.2.1), u = δ/(2√3);
- synchronisation: type B; each edge of a dwell may lie up to sync_s off between the two
  time bases (their clocks' offset, and the time between a sample's time stamp and the moment
  the device took the value). Moving one edge by δ changes the indication by at most
  (δ / dwell) × spread, where the spread is the change a whole dwell's shift could make: a
  gauge's max − min inside the dwell; a counter's fastest rate there (its increase moves
  with the edge however steady the load), the largest over the repetitions. Two edges, each
  rectangular over ± a = (sync_s / dwell) × spread, independent: u = a·√(2/3).

u_c = √Σu² (GUM 5.1.2, uncorrelated); ν_eff by Welch–Satterthwaite (GUM G.4.1); U = k·u_c
(GUM 6.2.1; JJF 1059.1 6). The statement against the quantity's MPE follows ILAC-G8:09/2019:
`simple` acceptance (4.2.1, guard band w = 0) or `guarded` (4.2.3, w = U, non-binary:
pass, conditional pass, conditional fail, fail).

Pure: no I/O. Figures are plain floats, unrounded (the certificate rounds).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from dcmeter.collectors.evaluation.calibration_indication import Indication, indication
from dcmeter.collectors.evaluation.calibration_quantities import Mpe, Quantity
from dcmeter.collectors.evaluation.issues import issue
from dcmeter.collectors.evaluation.jsonl import rfc3339

__all__ = [
    "Indication", "PointInput", "Repetition", "Rule", "calibration_result", "indication",
    "point_result",
]

Rule = Literal["simple", "guarded"]  # ILAC-G8:09/2019 4.2.1 (w = 0) / 4.2.3 (w = U)
# Worst first: the overall statement is the worst point's (a fail anywhere fails).
ORDER = ("fail", "conditional_fail", "conditional_pass", "pass")
SQRT3 = math.sqrt(3.0)
# Below this ν_eff, k = 2 covers noticeably less than 95 % (GUM G.4.2, Table G.2: t_95(10)
# = 2.28); the record says so rather than silently changing k.
LOW_DOF = 10.0
RULE_BASIS = {
    "simple": "ILAC-G8:09/2019 4.2.1, simple acceptance (guard band w = 0)",
    "guarded": "ILAC-G8:09/2019 4.2.3, guarded acceptance, non-binary (guard band w = U)",
}


@dataclass(frozen=True, slots=True)
class Repetition:
    """One repetition at a point: the dwell (epoch s) and both sides' means (quantity unit).

    `spread` is max − min of the indication's samples (a gauge) or per-interval rates (a
    counter) inside the dwell, in the quantity's unit: the steady level's fluctuation.
    """

    repetition: int
    start: float
    end: float
    reference: float | None
    indicated: float | None
    spread: float = 0.0
    detail: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class PointInput:
    """A calibration point: its label, repetitions and both sides' resolutions (unit; 0 =
    negligible), with how the resolutions were found."""

    label: str
    repetitions: Sequence[Repetition]
    resolution_indicated: float
    resolution_reference: float
    resolution_basis: str = ""


def _finite(x: float | None) -> bool:
    return x is not None and math.isfinite(x)


def _valid(r: Repetition) -> bool:
    """Both sides present and finite over a dwell of positive length."""
    return _finite(r.reference) and _finite(r.indicated) and r.end > r.start


def _repetition_row(r: Repetition) -> dict[str, Any]:
    ok = _valid(r)
    error = None
    if ok and r.indicated is not None and r.reference is not None:
        error = r.indicated - r.reference
    return {
        "repetition": r.repetition, "start": rfc3339(r.start), "end": rfc3339(r.end),
        "reference": r.reference, "indicated": r.indicated, "error": error, "valid": ok,
        "detail": dict(r.detail),
    }


def _rect(name: str, half_width: float) -> dict[str, Any]:
    """A type B row, rectangular over ± half_width (GUM 4.3.7): u = a/√3, ν = ∞ (None)."""
    return {
        "name": name, "type": "B", "distribution": "rectangular", "half_width": half_width,
        "divisor": SQRT3, "u": half_width / SQRT3, "dof": None,
    }


def _edges(half_width: float) -> dict[str, Any]:
    """The synchronisation row: two edges, each rectangular over ± half_width and independent
    (GUM 4.3.7, 5.1.2): u² = 2a²/3, so the divisor is √(3/2)."""
    return {**_rect("synchronisation", half_width), "divisor": SQRT3 / math.sqrt(2),
            "u": half_width * math.sqrt(2 / 3)}


def _type_a(s: float, n: int) -> dict[str, Any]:
    """The repeatability row (GUM 4.2.3; JJF 1059.1 4.3): u = s/√n, ν = n − 1."""
    return {
        "name": "repeatability", "type": "A", "distribution": "normal", "value": s,
        "divisor": math.sqrt(n), "u": s / math.sqrt(n), "dof": n - 1,
    }


def budget(
    errors: Sequence[float], reference_mean: float, dwell: float, spread: float,
    point: PointInput, reference_mpe: Mpe, sync_s: float,
) -> list[dict[str, Any]]:
    """Return the budget rows of E = X − R (see the module docstring), quantity unit."""
    n = len(errors)
    rows = [_type_a(statistics.stdev(errors), n)] if n > 1 else []
    rows.append(_rect("reference_mpe", reference_mpe.at(reference_mean)))
    rows.append(_rect("resolution_indicated", point.resolution_indicated / 2))
    rows.append(_rect("resolution_reference", point.resolution_reference / 2))
    rows.append(_edges(sync_s / dwell * spread if dwell > 0 else 0.0))
    return rows


def combined(rows: Sequence[Mapping[str, Any]]) -> float:
    """u_c = √Σ u_i² (GUM 5.1.2, sensitivity 1, uncorrelated inputs)."""
    return math.sqrt(math.fsum(row["u"] ** 2 for row in rows))


def welch_satterthwaite(rows: Sequence[Mapping[str, Any]], u_c: float) -> float | None:
    """ν_eff = u_c⁴ / Σ (u_i⁴/ν_i) (GUM G.4.1; JJF 1059.1 6.3); None for ∞ (no finite ν_i
    with u_i > 0: the budget is type B only)."""
    terms = [row["u"] ** 4 / row["dof"] for row in rows if row["dof"] and row["u"] > 0]
    if not terms or u_c == 0:
        return None
    return u_c**4 / math.fsum(terms)


def statement(
    error: float, mpe: float, expanded: float, rule: Rule, unit: str = ""
) -> dict[str, Any]:
    """Decide conformity of |E| with the MPE (ILAC-G8:09/2019 4.2.1 simple, 4.2.3 guarded).

    Simple: |E| ≤ MPE pass, else fail. Guarded (w = U): |E| ≤ MPE − U pass; ≤ MPE
    conditional_pass; ≤ MPE + U conditional_fail; beyond fail. Each bound is inclusive.
    `unit` goes into the reason's figures.
    """
    e = abs(error)
    u = f" {unit}" if unit else ""
    if rule == "simple":
        result = "pass" if e <= mpe else "fail"
        reason = f"|E| = {e:.6g} {'≤' if e <= mpe else '>'} MPE = {mpe:.6g}{u}"
    elif e <= mpe - expanded:
        result, reason = "pass", f"|E| = {e:.6g} ≤ MPE − U = {mpe - expanded:.6g}{u}"
    elif e <= mpe:
        result = "conditional_pass"
        reason = f"MPE − U = {mpe - expanded:.6g} < |E| = {e:.6g} ≤ MPE = {mpe:.6g}{u}"
    elif e <= mpe + expanded:
        result = "conditional_fail"
        reason = f"MPE = {mpe:.6g} < |E| = {e:.6g} ≤ MPE + U = {mpe + expanded:.6g}{u}"
    else:
        result, reason = "fail", f"|E| = {e:.6g} > MPE + U = {mpe + expanded:.6g}{u}"
    return {"rule": rule, "result": result, "reason": reason}


def _empty(point: PointInput, rows: list[dict[str, Any]], k: float, rule: Rule,
           issues: list[str]) -> dict[str, Any]:
    """The result of a point without a valid repetition: no figures, no statement."""
    issues.append(issue("cal.no_valid_repetition"))
    return {
        "label": point.label, "n": 0, "repetitions": rows, "reference_mean": None,
        "indicated_mean": None, "error": None, "relative_error": None, "repeatability": None,
        "resolution": _resolution(point), "budget": [], "combined_u": None, "dof_eff": None,
        "k": k, "expanded_u": None, "relative_expanded_u": None, "mpe": None,
        "statement": {"rule": rule, "result": "not_stated", "reason": issues[-1]},
        "issues": issues,
    }


def _resolution(point: PointInput) -> dict[str, Any]:
    return {"indicated": point.resolution_indicated, "reference": point.resolution_reference,
            "basis": point.resolution_basis}


def _input_issues(point: PointInput) -> list[str]:
    """Name the repetitions left out, and why."""
    issues: list[str] = []
    for r in point.repetitions:
        if _valid(r):
            continue
        missing = [side for side, v in (("reference", r.reference), ("indicated", r.indicated))
                   if not _finite(v)]
        issues.append(issue("cal.repetition_no_value", repetition=r.repetition, sides=missing)
                      if missing else issue("cal.repetition_bad_dwell", repetition=r.repetition))
    return issues


def point_result(
    point: PointInput, quantity: Quantity, reference_mpe: Mpe, *, sync_s: float, rule: Rule,
    k: float = 2.0,
) -> dict[str, Any]:
    """Return one point's means, error, budget, U and statement (module docstring), in the
    quantity's unit; times RFC 3339."""
    rows = [_repetition_row(r) for r in point.repetitions]
    issues = _input_issues(point)
    valid = [r for r in point.repetitions if _valid(r)]
    if not valid:
        return _empty(point, rows, k, rule, issues)
    n = len(valid)
    refs = [float(r.reference) for r in valid if r.reference is not None]
    inds = [float(r.indicated) for r in valid if r.indicated is not None]
    errors = [x - r for x, r in zip(inds, refs, strict=True)]
    r_mean, x_mean = math.fsum(refs) / n, math.fsum(inds) / n
    error = x_mean - r_mean
    dwell = math.fsum(r.end - r.start for r in valid) / n
    # A negative or non-finite spread is a caller's slip: its size, or nothing, counts.
    spread = max((abs(r.spread) for r in valid if math.isfinite(r.spread)), default=0.0)
    table = budget(errors, r_mean, dwell, spread, point, reference_mpe, sync_s)
    u_c = combined(table)
    dof = welch_satterthwaite(table, u_c)
    expanded = k * u_c
    mpe = quantity.mpe.at(r_mean)
    if n == 1:
        issues.append(issue("cal.one_repetition"))
    if dof is not None and dof < LOW_DOF:
        issues.append(issue("cal.low_dof", dof=dof, limit=LOW_DOF, k=k))
    if mpe <= 0:
        why = issue("cal.mpe_zero", quantity=quantity.name, mean=r_mean, unit=quantity.unit)
        issues.append(why)
        verdict = {"rule": rule, "result": "not_stated", "reason": why}
    else:
        verdict = statement(error, mpe, expanded, rule, quantity.unit)
    return {
        "label": point.label, "n": n, "repetitions": rows, "reference_mean": r_mean,
        "indicated_mean": x_mean, "error": error,
        "relative_error": error / r_mean if r_mean != 0 else None,
        "repeatability": statistics.stdev(errors) if n > 1 else None,
        "resolution": _resolution(point), "budget": table, "combined_u": u_c,
        "dof_eff": dof, "k": k, "expanded_u": expanded,
        "relative_expanded_u": expanded / abs(r_mean) if r_mean != 0 else None,
        "mpe": mpe, "statement": verdict, "issues": issues,
    }


def overall(points: Sequence[Mapping[str, Any]], rule: Rule) -> tuple[dict[str, Any], list[str]]:
    """The calibration's statement: its worst stated point's; not_stated points named."""
    stated = [p for p in points if p["statement"]["result"] != "not_stated"]
    issues: list[str] = [issue("ctx.cal_point", point=p["label"], inner=issue("cal.no_statement"))
                         for p in points if p not in stated]
    if not stated:
        result, reason = "not_stated", "no point has a statement"
    else:
        result = min((p["statement"]["result"] for p in stated), key=ORDER.index)
        worst = [p["label"] for p in stated if p["statement"]["result"] == result]
        reason = f"the worst point{'s' if len(worst) > 1 else ''}: {', '.join(worst)}"
    return {"rule": rule, "result": result, "reason": reason, "basis": RULE_BASIS[rule]}, issues


def calibration_result(
    points: Sequence[PointInput], quantity: Quantity, reference_mpe: Mpe, *, sync_s: float,
    rule: Rule, k: float = 2.0,
) -> dict[str, Any]:
    """Return {"points", "statement", "issues"} of a calibration: each point's point_result,
    the overall statement (the worst point's, ILAC-G8:09/2019 4.2) and every issue, each
    point's prefixed with its label."""
    results = [point_result(p, quantity, reference_mpe, sync_s=sync_s, rule=rule, k=k)
               for p in points]
    verdict, issues = overall(results, rule)
    issues = [issue("ctx.cal_point", point=p["label"], inner=i)
              for p in results for i in p["issues"]] + issues
    return {"points": results, "statement": verdict, "issues": issues}
