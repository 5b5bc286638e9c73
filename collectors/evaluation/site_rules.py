"""The standard's fixed rules a site file can set, and which of its values deviate from them.

T/CECA-G 0355—2025 fixes these rules; the site file may set them only as a declared deviation
(`[deviations]`, config/site.toml), and a result that uses one is marked `conforming: false`
(collectors/evaluation/conformance.py). Values the standard leaves to the site (a rating, the
grid factor, GB 40879's level bounds, extra precision factors) are plain settings.

A minimum (repetitions, sampling density) conforms at or above the standard's value: the
standard says "at least". A threshold, a coefficient or the FP16 reference conforms only at
the standard's value: any other changes the grade.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

Kind = Literal["infrastructure", "general", "ai"]
Compare = Literal["equal", "at_least"]


@dataclass(frozen=True, slots=True)
class Rule:
    """One fixed rule: its site-file key, what it says, its clause and the standard's value."""

    key: str  # dotted site-file key, as written in [deviations]
    rule: str
    clause: str
    standard: float
    compare: Compare
    kinds: tuple[Kind, ...]  # the result kinds whose figures the rule changes
    read: Callable[[Any], float | None]  # the site's value, None where the site leaves it out

    def conforms(self, used: float) -> bool:
        """Tell whether `used` keeps to the standard's rule."""
        if self.compare == "at_least":
            return used >= self.standard
        return used == self.standard

    def wanted(self) -> str:
        """Return the values that conform, in words."""
        return f">= {self.standard:g}" if self.compare == "at_least" else f"{self.standard:g}"


def _ai(name: str) -> Callable[[Any], float | None]:
    return lambda site: None if site.ai is None else getattr(site.ai, name)


def _general(name: str) -> Callable[[Any], float | None]:
    return lambda site: None if site.general is None else getattr(site.general, name)


def _fp16(site: Any) -> float | None:
    return None if site.ai is None else site.ai.precision_factors.get("fp16")


RULES: tuple[Rule, ...] = (
    Rule("ai.min_repetitions", "at least 5 repetitions of each task; their mean is the result",
         "T/CECA-G 0355—2025 6.3.3.3 step 5", 5, "at_least", ("ai",), _ai("min_repetitions")),
    Rule("ai.min_sampling_density", "energy sampling density of each run at least 10 %",
         "T/CECA-G 0355—2025 6.3.3.2", 0.10, "at_least", ("ai",), _ai("min_sampling_density")),
    Rule("ai.advanced_gflops_per_wh", "AEE advanced level: >= 224 GFLOPs/Wh",
         "T/CECA-G 0355—2025 4.3 Table 2", 224.0, "equal", ("ai",),
         _ai("advanced_gflops_per_wh")),
    Rule("ai.precision_factors.fp16", "F is counted at FP16: one FP16 operation counts 1",
         "T/CECA-G 0355—2025 6.3.2 formula (3)", 1.0, "equal", ("ai",), _fp16),
    Rule("general.lambda", "normalisation coefficient of compute λ = 0.85",
         "T/CECA-G 0355—2025 Annex B Table B.1", 0.85, "equal", ("general",),
         _general("lambda_")),
    Rule("general.beta", "normalisation coefficient of storage β = 0.10",
         "T/CECA-G 0355—2025 Annex B Table B.1", 0.10, "equal", ("general",), _general("beta")),
    Rule("general.gamma", "normalisation coefficient of network γ = 0.05",
         "T/CECA-G 0355—2025 Annex B Table B.1", 0.05, "equal", ("general",), _general("gamma")),
)
RULE_KEYS: tuple[str, ...] = tuple(r.key for r in RULES)


@dataclass(frozen=True, slots=True)
class Deviation:
    """A fixed rule the site file changes: the rule, the value used, and the declared reason."""

    rule: Rule
    used: float
    reason: str | None  # None: not declared (only a Site built in code, never a loaded file)

    def to_json(self) -> dict[str, Any]:
        """Return the result's deviation object: rule, clause, standard, used, key, reason."""
        r = self.rule
        return {"rule": r.rule, "clause": r.clause, "standard": r.standard, "used": self.used,
                "key": r.key, "reason": self.reason}


def deviations(site: Any, kind: Kind | None = None) -> list[Deviation]:
    """Return the fixed rules `site` changes (those changing results of `kind`, or all)."""
    declared: dict[str, str] = getattr(site, "deviations", {}) or {}
    out = []
    for rule in RULES:
        used = rule.read(site)
        if used is None or rule.conforms(used) or (kind is not None and kind not in rule.kinds):
            continue
        out.append(Deviation(rule, used, declared.get(rule.key)))
    return out


def check_declared(site: Any) -> list[tuple[str, str]]:
    """Return (key, message) for each undeclared change of a fixed rule and stale declaration."""
    declared: dict[str, str] = getattr(site, "deviations", {}) or {}
    found = {d.rule.key: d for d in deviations(site)}
    faults = []
    for key, d in found.items():
        if key not in declared:
            r = d.rule
            faults.append((key, (
                f"bad value {d.used!r}: the standard's value is {r.wanted()} ({r.clause}:"
                f" {r.rule}). To use {d.used!r} anyway, declare the deviation with its reason:"
                f' [deviations] "{key}" = "<why>"; every result using it is then marked'
                " conforming: false and lists the deviation"
            )))
    for key in declared:
        if key not in found:
            rule = next(r for r in RULES if r.key == key)
            faults.append((f'deviations."{key}"', (
                f"declared, but the site file keeps the standard's rule ({rule.clause}:"
                f" {rule.wanted()}): remove the declaration"
            )))
    return faults
