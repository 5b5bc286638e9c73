"""AEE per task and phase, the combined AEE and ACE of an AI window's evaluated runs.

T/CECA-G 0355—2025 6.3.2 (AEE_train = Σ w_i · F_i / E_i over the model tasks, Σ w_i = 1;
likewise inference; AEE = w_t · AEE_train + w_i · AEE_infer, w ∈ {0, 0.5, 1}) and 6.3.3.3
step 5 of both procedures (at least 5 repetitions, the mean is the result). The runs are
the dicts `ai.py` makes.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from typing import Any

from dcmeter.collectors.evaluation.issues import issue
from dcmeter.collectors.evaluation.site_ai import PHASES, AiSection, Phase


def mean(xs: Sequence[float]) -> float | None:
    """Return the arithmetic mean, None for no values."""
    return math.fsum(xs) / len(xs) if xs else None


def tasks_of(results: Sequence[dict[str, Any]], min_reps: int) -> list[dict[str, Any]]:
    """Per (phase, model): the mean over valid repetitions with its spread (6.3.3.3 step 5)."""
    keys = sorted(
        {(r["phase"], r["model"]) for r in results}, key=lambda k: (PHASES.index(k[0]), k[1])
    )
    tasks = []
    for phase, model in keys:
        mine = [r for r in results if (r["phase"], r["model"]) == (phase, model)]
        good = [r for r in mine if r["valid"]]
        aees = [r["aee_gflops_per_wh"] for r in good]
        issues: list[str] = []
        if len(good) < min_reps:
            issues.append(issue("too_few_reps", phase=phase, model=model, good=len(good),
                                minimum=min_reps, bad=len(mine) - len(good)))

        def mean_of(key: str, good: list[dict[str, Any]] = good) -> float | None:
            return mean([r[key] for r in good if r[key] is not None])

        tasks.append({
            "phase": phase,
            "model": model,
            "runs": len(mine),
            "valid_runs": len(good),
            "repetitions": sorted(r["repetition"] for r in good),
            "aee_gflops_per_wh": mean(aees),
            "aee_stdev": statistics.stdev(aees) if len(aees) > 1 else None,
            "aee_min": min(aees, default=None),
            "aee_max": max(aees, default=None),
            "flops_mean": mean_of("flops"),
            "energy_wh_mean": mean_of("energy_wh"),
            "tokens_per_s": mean_of("tokens_per_s"),
            "tokens_per_wh": mean_of("tokens_per_wh"),
            "gpu_util": mean_of("gpu_util"),
            "compute_utilisation": mean_of("compute_utilisation"),
            "valid": len(good) >= min_reps,
            "issues": issues,
        })
    return tasks


def _phase_aee(
    phase: Phase, tasks: Sequence[dict[str, Any]], section: AiSection | None
) -> tuple[float | None, dict[str, float], list[str], bool]:
    """Return AEE_phase = Σ w_m · mean AEE_m (6.3.2), its weights, issues and validity."""
    mine = {t["model"]: t for t in tasks if t["phase"] == phase}
    configured = section.task_weights.get(phase) if section else None
    weights = dict(configured) if configured else {m: 1.0 / len(mine) for m in sorted(mine)}
    issues: list[str] = [
        issue("task_not_weighted", phase=phase, model=m)
        for m in sorted(set(mine) - set(weights))
    ]
    if not weights:
        return None, {}, issues, False
    missing = [m for m in weights if mine.get(m, {}).get("aee_gflops_per_wh") is None]
    if missing:
        issues.append(issue("aee_phase_missing", phase=phase, models=missing))
        return None, weights, issues, False
    value = math.fsum(w * mine[m]["aee_gflops_per_wh"] for m, w in weights.items())
    return value, weights, issues, all(mine[m]["valid"] for m in weights)


def _phase_weights(
    section: AiSection | None, tasks: Sequence[dict[str, Any]]
) -> tuple[dict[str, float], bool]:
    """Return w_t, w_i: configured, else 1 for the only phase with runs, else 0.5 each."""
    if section and section.phase_weights:
        return {"train": section.phase_weights.train, "infer": section.phase_weights.infer}, True
    present = [p for p in PHASES if any(t["phase"] == p for t in tasks)]
    return {p: (1.0 / len(present) if p in present else 0.0) for p in PHASES}, False


def combine(
    tasks: Sequence[dict[str, Any]], section: AiSection | None
) -> tuple[dict[str, Any], list[str], bool]:
    """Return AEE_train, AEE_infer, the combined AEE (6.3.2), their weights, issues, validity."""
    issues: list[str] = []
    phase_w, configured = _phase_weights(section, tasks)
    out: dict[str, Any] = {}
    valid = True
    task_w: dict[str, dict[str, float]] = {}
    for phase in PHASES:
        value, weights, p_issues, p_valid = _phase_aee(phase, tasks, section)
        out[f"aee_{phase}"] = value
        task_w[phase] = weights
        if phase_w[phase] > 0:
            issues += p_issues
            valid = valid and p_valid
        elif any(t["phase"] == phase for t in tasks):
            issues.append(issue("phase_weight_zero", phase=phase))
    needed = [p for p in PHASES if phase_w[p] > 0]
    combined = None
    if needed and all(out[f"aee_{p}"] is not None for p in needed):
        combined = math.fsum(phase_w[p] * out[f"aee_{p}"] for p in needed)
    elif not tasks:
        issues.append(issue("no_runs"))
    out["aee_gflops_per_wh"] = combined
    out["aee_weights"] = {"phase": phase_w, "phase_configured": configured, "task": task_w}
    return out, issues, valid and combined is not None


def ace(results: Sequence[dict[str, Any]]) -> float | None:
    """Return ACE = Σ CE / Σ F over the valid runs, kg CO2 per FP16-equivalent FLOP."""
    good = [r for r in results if r["valid"]]
    if not good or any(r["carbon_kg"] is None for r in good):
        return None
    flops = math.fsum(r["flops"] for r in good)
    return math.fsum(r["carbon_kg"] for r in good) / flops if flops > 0 else None


def sum_valid(results: Sequence[dict[str, Any]], key: str) -> float | None:
    """Return the sum of `key` over the valid runs; None if none or any is unknown."""
    good = [r[key] for r in results if r["valid"]]
    if not good or any(v is None for v in good):
        return None
    return math.fsum(good)
