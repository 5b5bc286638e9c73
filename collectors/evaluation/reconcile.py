"""The meter cross-check: the sources below a meter against the meter, as data quality.

For each [[reconcile]] set of the site file (site_reconcile.py) and a window [start, end]:

- E_meter: the meter's energy, E_i: each source's below it (kWh), each by roles.py as E_total
  and E_IT are (a counter where the source has one around the window, else integrated power,
  energy.py); S = Σ E_i.
- D = E_meter − S, the ratio S / E_meter (None for a zero meter energy).
- L = loss.relative·E_meter + loss.fixed_w·h / 1000 (the expected loss, kWh) and
  A = allowance.relative·E_meter + allowance.fixed_w·h / 1000 (the allowance, kWh), h the
  window's hours.
- U = √((a_m·E_meter)² + Σ (a_i·E_i)²): the combined uncertainty of D at the level of the
  accuracy bounds, each source's accuracy a its stated bound (uncertainty.py: rectangular,
  GUM 4.3.7; independent sources, GUM 5.1.2 with sensitivities +1 and −1).
- verdict `agrees` when |D − L| ≤ A + U at the grading precision (exact.py), else
  `disagrees` (an issue in the result's quality, which stays as valid as it was: the
  disagreement says one side is off, not which); `not_computed` when the window is empty, a
  source has no energy or its energy is not valid (the reasons in `issues`).

Pure: no I/O, no logging (docs/evaluation.md, "Reconciliation").
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal

from dcmeter.collectors.evaluation.exact import at_most
from dcmeter.collectors.evaluation.issues import Issue, issue
from dcmeter.collectors.evaluation.plausibility import screen
from dcmeter.collectors.evaluation.roles import RoleEnergy, role_energy
from dcmeter.collectors.evaluation.series import Series
from dcmeter.collectors.evaluation.site import Site
from dcmeter.collectors.evaluation.site_reconcile import Reconcile
from dcmeter.collectors.evaluation.uncertainty import Part, role_parts

Verdict = Literal["agrees", "disagrees", "not_computed"]

METHOD = (
    "D = E_meter - sum(E_below); expected loss L and allowance A = relative * E_meter +"
    " fixed_w * hours / 1000; U = sqrt((a_meter*E_meter)^2 + sum((a_i*E_i)^2)) at the level of"
    " the accuracy bounds (GUM 4.3.7, 5.1.2); agrees when |D - L| <= A + U"
)


def _part(p: Part, role: str) -> dict[str, Any]:
    return {"source": p.source, "role": role, "metric": p.metric, "kwh": p.kwh,
            "accuracy": p.accuracy, "provenance": p.provenance}


def _reasons(spec: Reconcile, meter: RoleEnergy, below: RoleEnergy, empty: bool) -> list[Issue]:
    """Why the set cannot be reconciled in this window (empty when it can)."""
    if empty:
        return [issue("reconcile_empty_window")]
    reasons: list[Issue] = []
    if not meter.figures:
        reasons.append(issue("reconcile_no_meter", meter=spec.meter))
    found = {f.sources[0] for f in below.figures}
    if missing := [s for s in spec.below if s not in found]:
        reasons.append(issue("reconcile_no_below", sources=missing))
    invalid = [f.sources[0] for f in (*meter.figures, *below.figures) if not f.valid]
    if invalid:
        reasons.append(issue("reconcile_not_valid", sources=invalid))
    return reasons


def reconcile_set(
    spec: Reconcile, series: Sequence[Series], start: float, end: float,
    counter: str, power: str, gap_s: float,
) -> dict[str, Any]:
    """Return one set's reconciliation over [start, end] (epoch s; energies in kWh)."""
    meter = role_energy(series, [spec.meter], start, end, counter, power, gap_s)
    below = role_energy(series, spec.below, start, end, counter, power, gap_s)
    parts = [_part(p, "meter") for p in role_parts(meter, series)]
    parts += [_part(p, "below") for p in role_parts(below, series)]
    hours = max(end - start, 0.0) / 3600.0
    out: dict[str, Any] = {
        "name": spec.name, "meter": spec.meter, "below": list(spec.below),
        "loss": spec.loss.model_dump(), "allowance": spec.allowance.model_dump(),
        "meter_kwh": None, "below_kwh": None, "difference_kwh": None, "ratio": None,
        "expected_loss_kwh": None, "allowance_kwh": None, "uncertainty_kwh": None,
        "excess_kwh": None, "verdict": "not_computed", "per_source": parts,
        "method": METHOD, "issues": [],
    }
    reasons = _reasons(spec, meter, below, end <= start)
    if reasons:  # with the energies' own issues, which say what was wrong
        out["issues"] = [*reasons, *meter.issues, *below.issues]
        return out
    e_meter = math.fsum(f.kwh for f in meter.figures)
    s = math.fsum(f.kwh for f in below.figures)
    d = e_meter - s
    loss, allowance = spec.loss.kwh(e_meter, hours), spec.allowance.kwh(e_meter, hours)
    u = math.hypot(*(p["kwh"] * p["accuracy"] for p in parts))
    excess = abs(d - loss)
    verdict: Verdict = "agrees" if at_most(excess, allowance + u) else "disagrees"
    out.update(
        meter_kwh=e_meter, below_kwh=s, difference_kwh=d, ratio=s / e_meter if e_meter else None,
        expected_loss_kwh=loss, allowance_kwh=allowance, uncertainty_kwh=u, excess_kwh=excess,
        verdict=verdict,
    )
    if verdict == "disagrees":
        out["issues"] = [issue("reconcile_disagrees", name=spec.name, meter=spec.meter,
                               meter_kwh=e_meter, below_kwh=s, excess_kwh=excess,
                               allowance_kwh=allowance, u_kwh=u)]
    return out


def reconciliation(
    site: Site, series: Sequence[Series], start: float, end: float
) -> list[dict[str, Any]]:
    """Return every [[reconcile]] set's reconciliation over [start, end], in site-file order.

    Samples outside the site's physical limits are left out first, as every figure does
    (plausibility.py).
    """
    if not site.reconcile:
        return []
    named = {s for r in site.reconcile for s in (r.meter, *r.below)}
    mine = screen([s for s in series if s.source in named], site.plausibility).series
    e = site.energy.metrics
    return [reconcile_set(r, mine, start, end, e.counter, e.power, site.quality.max_gap_s)
            for r in site.reconcile]


def add_reconciliation(
    result: dict[str, Any], site: Site, series: Sequence[Series], start: float, end: float
) -> None:
    """Set `result["reconciliation"]` and add each disagreement to `result["quality"]` issues."""
    sets = reconciliation(site, series, start, end)
    result["reconciliation"] = sets
    issues = result.setdefault("quality", {}).setdefault("issues", [])
    issues.extend(i for r in sets if r["verdict"] == "disagrees" for i in r["issues"])
