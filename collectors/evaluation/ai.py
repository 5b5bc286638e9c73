"""Evaluate an AI window: energy, FLOPs and AEE of each run, AEE per task and phase, ACE.

T/CECA-G 0355—2025 4.3, 6.3 and Annexes C to E (STANDARD.md §3), with the calibration figures
of seed 004 (STANDARD.md §4). The result builds on the infrastructure result of the window
(energies, PUE, CE, CUE, sources, uncertainty, quality) and adds the AI fields.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from dcmeter.collectors.evaluation.ai_calibration import (
    gauge_mean,
    port_throughput,
    power_by_gpu_util,
    storage_throughput,
)
from dcmeter.collectors.evaluation.ai_coverage import EDGE_SHARE, run_coverage
from dcmeter.collectors.evaluation.ai_runs import Run, check_quality, no_work, parse_runs, run_flops
from dcmeter.collectors.evaluation.ai_tasks import ace, combine, mean, sum_valid, tasks_of
from dcmeter.collectors.evaluation.energy import POWER_UNITS_TO_KW
from dcmeter.collectors.evaluation.indicators import AEE_ADVANCED, aee_level
from dcmeter.collectors.evaluation.infrastructure import evaluate_infrastructure
from dcmeter.collectors.evaluation.issues import issue
from dcmeter.collectors.evaluation.jsonl import rfc3339
from dcmeter.collectors.evaluation.plausibility import flag, screen
from dcmeter.collectors.evaluation.quality import series_quality
from dcmeter.collectors.evaluation.roles import RoleEnergy, role_energy
from dcmeter.collectors.evaluation.series import Series
from dcmeter.collectors.evaluation.site import Site
from dcmeter.collectors.evaluation.site_ai import PHASES, AiSection
from dcmeter.collectors.evaluation.uncertainty import MPE, role_parts, sum_rel, within_mpe

NO_SECTION = issue("no_ai_section")
ACE_METHOD = (
    "ACE = CE / F (kg CO2 per FP16-equivalent FLOP) over the valid runs: CE = E_servers x"
    " (1 - E_green / E_total of the window) x grid factor, E_servers the servers under test's"
    " energy over each run (T/CECA-G 0355 6.1.2 formula (2) applied to the tasks' energy)"
)
DENSITY_METHOD = (
    "sampled time share (6.3.3.2): sum of tau_i / T per power series over the samples inside"
    " the run, tau_i the time sample i stands for (the averaging period its source reports"
    " with it, as DCMI's power_avg_period_s, else ai.power_sample_period_s), T the run's"
    " duration; 1 - (d_start + d_end) / T per energy counter, d the distance from each"
    " run edge to its nearest reading. A run's energy is measured when every series has a"
    f" reading within {EDGE_SHARE:.0%} of T of each edge and the density reaches"
    " ai.min_sampling_density (collectors/evaluation/ai_coverage.py)"
)


@dataclass(frozen=True, slots=True)
class _Ctx:
    site: Site
    section: AiSection | None
    series: Sequence[Series]
    start: float
    end: float
    carbon_factor: float | None  # kg CO2 per kWh of the servers' energy: (1 - green share) × η


def _div(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or not b > 0 else a / b


def _carbon_factor(site: Site, infra: Mapping[str, Any]) -> tuple[float | None, list[str]]:
    """Return (1 - E_green / E_total) × η in kg CO2/kWh, or None with the reason."""
    eta = float(infra["grid_factor"]["value"])
    if not site.energy.green:
        return eta, []
    total, green = infra["energy_kwh"]["total"], infra["energy_kwh"]["green"]
    if total is None or green is None or not total > 0:
        return None, [issue("ace_no_green_share")]
    return (1.0 - min(green / total, 1.0)) * eta, []


def _energy(ctx: _Ctx, ids: Sequence[str], counter: str, power: str, run: Run) -> RoleEnergy:
    gap = ctx.site.quality.max_gap_s
    return role_energy(ctx.series, ids, run.start_s, run.end_s, counter, power, gap)


def _metrics(ctx: _Ctx) -> tuple[str, str]:
    own = ctx.section.metrics if ctx.section else None
    base = ctx.site.energy.metrics
    return (own and own.counter) or base.counter, (own and own.power) or base.power


def _gpu_util(ctx: _Ctx, run: Run) -> float | None:
    """Return the GPUs' mean utilisation over the run as a fraction 0..1, None without data."""
    if ctx.section is None:
        return None
    metric = ctx.section.metrics.gpu_util
    means = [
        gauge_mean(s, run.start_s, run.end_s)
        for s in ctx.series
        if s.source in ctx.section.gpus and s.metric == metric
    ]
    known = [m for m in means if m is not None]
    return math.fsum(known) / len(known) / 100.0 if known else None


def _role_issues(role: RoleEnergy, what: str = "") -> tuple[list[str], list[str]]:
    """Split a role's issues into those that invalidate and notes on how it was measured."""
    texts = [f"{what}{i}" if what else i for i in role.issues]  # keep each issue's code
    if role.valid:
        return [], texts
    notes = [t for t in texts if "integrated power used for" in t]
    return [t for t in texts if t not in notes], notes


@dataclass
class _Energy:
    """The servers under test's energy over one run and how it was obtained."""

    wh: float | None = None
    method: str | None = None
    rel: float | None = None
    density: float | None = None
    gpu_wh: float | None = None
    measured: bool = False
    edges: dict[str, float | None] | None = None


def _servers(ctx: _Ctx, run: Run, issues: list[str], notes: list[str]) -> _Energy:
    """Measure the run's energy at the servers (6.3.3.2) and the GPUs' beside it."""
    section = ctx.section
    if section is None:
        issues.append(NO_SECTION)
        return _Energy()
    counter, power = _metrics(ctx)
    servers = _energy(ctx, section.servers, counter, power, run)
    out = _Energy(None if servers.kwh is None else servers.kwh * 1000.0, servers.method)
    bad, fine = _role_issues(servers)
    issues += bad
    notes += fine
    if out.wh is not None and not out.wh > 0:
        issues.append(issue("servers_not_positive"))
    other = [p for p in servers.points if p != "it_input"]
    if other:
        notes.append(issue("servers_point", points=other))
    cover = run_coverage(servers, ctx.series, run.start_s, run.end_s,
                         section.min_sampling_density, section.power_sample_period_s)
    out.density, out.measured, out.edges = cover.density, cover.measured, cover.edges_json()
    issues += cover.issues
    if servers.valid and out.wh:
        out.rel = sum_rel([(p.kwh, p.accuracy) for p in role_parts(servers, ctx.series)])
    if section.gpus:
        m = section.metrics
        gpus = _energy(ctx, section.gpus, m.gpu_energy, m.gpu_power, run)
        out.gpu_wh = None if gpus.kwh is None else gpus.kwh * 1000.0
        notes += [issue("ctx.gpu", inner=i) for i in gpus.issues]
    return out


def _evaluate_run(ctx: _Ctx, run: Run) -> dict[str, Any]:
    """Return one run's figures: energy, FLOPs, AEE, ACE, calibration figures, validity."""
    section = ctx.section
    issues: list[str] = []
    notes: list[str] = []
    duration = run.end_s - run.start_s
    if run.start_s < ctx.start or run.end_s > ctx.end:
        issues.append(issue("run_outside", start=rfc3339(ctx.start), end=rfc3339(ctx.end)))
    if run.exit_status not in (None, 0):
        issues.append(issue("run_failed", status=run.exit_status))
    flops = run_flops(run, section)
    issues += [*flops.issues, *no_work(run, flops)]
    met, targets, quality_issues = check_quality(
        run, section.targets(*run.key) if section else ()
    )
    issues += quality_issues
    energy = _servers(ctx, run, issues, notes)
    aee = _div(None if flops.fp16 is None else flops.fp16 / 1e9, energy.wh)
    carbon = None
    if energy.wh is not None and ctx.carbon_factor is not None:
        carbon = energy.wh / 1000.0 * ctx.carbon_factor
    achieved = None if flops.fp16 is None else flops.fp16 / duration
    s, e = run.start_s, run.end_s
    return {
        "phase": run.phase,
        "model": run.key[1],
        "repetition": run.repetition,
        "start": rfc3339(s),
        "end": rfc3339(e),
        "duration_s": duration,
        "samples": flops.samples,
        "flops": flops.fp16,
        "flops_native": flops.native,
        "flops_source": flops.source,
        "precision": flops.precision,
        "precision_factor": flops.factor,
        "energy_wh": energy.wh,
        "energy_method": energy.method,
        "energy_rel": energy.rel,
        "sampling_density": energy.density,
        "energy_measured": energy.measured,
        "energy_edges_s": energy.edges,
        "gpu_energy_wh": energy.gpu_wh,
        "aee_gflops_per_wh": aee,
        "carbon_kg": carbon,
        "ace_kg_per_flop": _div(carbon, flops.fp16),
        "tokens": run.tokens,
        "tokens_per_s": None if run.tokens is None else run.tokens / duration,
        "tokens_per_wh": _div(run.tokens, energy.wh),
        "mean_power_w": None if energy.wh is None else energy.wh * 3600.0 / duration,
        "gpu_util": _gpu_util(ctx, run),
        "achieved_flops": achieved,
        "compute_utilisation": _div(achieved, section.peak_flops if section else None),
        "network": port_throughput(ctx.series, section.network, s, e) if section else [],
        "storage": storage_throughput(ctx.series, section.storage, s, e) if section else None,
        "quality": run.quality,
        "quality_target": targets,
        "quality_met": met,
        "exit_status": run.exit_status,
        "note": run.note,
        "valid": not issues and aee is not None,
        "issues": issues,
        "notes": notes,
    }


def _mark_conflicts(runs: Sequence[Run], results: Sequence[dict[str, Any]]) -> None:
    """Invalidate repeated (phase, model, repetition) and runs that overlap in time."""
    seen: dict[tuple[str, str, int], int] = {}
    for i, run in enumerate(runs):
        key = (*run.key, run.repetition)
        if key in seen:
            results[i]["issues"].append(issue("repetition_twice", rep=run.repetition,
                                              phase=run.phase, model=run.key[1],
                                              first=seen[key]))
            results[i]["valid"] = False
        else:
            seen[key] = i
    for i, a in enumerate(runs):
        others = [
            j for j, b in enumerate(runs) if j != i and b.start_s < a.end_s and a.start_s < b.end_s
        ]
        if others:
            results[i]["issues"].append(issue("runs_overlap", others=str(others)))
            results[i]["valid"] = False


def _calibration(ctx: _Ctx, results: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Return the seed 004 calibration figures summed up over the window's valid runs."""
    good = [r for r in results if r["valid"]]

    def by_phase(key: str) -> dict[str, float | None]:
        return {p: mean([r[key] for r in good if r["phase"] == p and r[key] is not None])
                for p in PHASES}

    ports: dict[tuple[str, Any, Any], list[float]] = {}
    for r in good:
        for p in r["network"]:
            if p["gbps"] is not None:
                ports.setdefault((p["source"], p["if_index"], p["if_name"]), []).append(p["gbps"])
    storage = [r["storage"]["gbit_s"] for r in good if r["storage"] is not None]
    power_by_util: list[dict[str, Any]] = []
    if ctx.section is not None:
        _, power = _metrics(ctx)
        powers = [
            _watts(s) for s in ctx.series if s.source in ctx.section.servers and s.metric == power
        ]
        utils = [
            s for s in ctx.series
            if s.source in ctx.section.gpus and s.metric == ctx.section.metrics.gpu_util
        ]
        power_by_util = power_by_gpu_util(powers, utils, ctx.start, ctx.end)
    return {
        "tokens_per_s": by_phase("tokens_per_s"),
        "tokens_per_wh": by_phase("tokens_per_wh"),
        "normalised_effective_compute": {
            "gpu_util": mean([r["gpu_util"] for r in good if r["gpu_util"] is not None]),
            "compute_utilisation": mean(
                [r["compute_utilisation"] for r in good if r["compute_utilisation"] is not None]
            ),
            "peak_flops": ctx.section.peak_flops if ctx.section else None,
        },
        "power_by_run": [
            {"phase": r["phase"], "model": r["model"], "repetition": r["repetition"],
             "mean_power_w": r["mean_power_w"], "gpu_util": r["gpu_util"]}
            for r in results
        ],
        "power_by_gpu_util": power_by_util,
        "network_gbps": [
            {"source": s, "if_index": i, "if_name": n, "mean_gbps": mean(v), "max_gbps": max(v)}
            for (s, i, n), v in sorted(ports.items(), key=lambda kv: str(kv[0]))
        ],
        "storage_gbit_s": {"mean": mean(storage), "max": max(storage, default=None)},
    }


def _watts(s: Series) -> Series:
    """Return a power series in W (kW and MW scaled)."""
    scale = POWER_UNITS_TO_KW.get(s.unit.lower(), 1e-3) * 1000.0
    if scale == 1.0:
        return s
    return Series(s.source, s.metric, "W", s.kind, s.ts, tuple(v * scale for v in s.values),
                  s.modulus, s.labels, s.accuracy)


def _uncertainty(infra: dict[str, Any], results: Sequence[dict[str, Any]]) -> None:
    """Add the AEE's relative uncertainty: the servers' energy, systematic across runs."""
    rels = [r["energy_rel"] for r in results if r["valid"] and r["energy_rel"] is not None]
    rel = max(rels, default=None)
    block = infra["uncertainty"]
    block["aee_rel"] = rel
    block["energy_servers_rel"] = rel
    block["within_mpe"]["energy_servers"] = None if rel is None else within_mpe(rel, "energy")
    block["mpe"].setdefault("energy", MPE["energy"])
    block["aee_method"] = (
        "AEE = F / E with F exact (counted): AEE's relative uncertainty is the servers'"
        " energy's, the largest over the valid runs; the same meters measure every run, so"
        " their error is taken as systematic and not reduced by averaging"
    )


def evaluate_ai(
    site: Site,
    series: Sequence[Series],
    runs: Sequence[Mapping[str, Any]],
    start: float,
    end: float,
) -> dict[str, Any]:
    """Return the JSON-ready AI result of [start, end] (epoch s) and its runs.

    Per run: the servers under test's energy (Wh) over [run start, run end], from their
    counters where they have them, else integrated power; F in FP16-equivalent FLOPs; AEE =
    F / E in GFLOPs/Wh. Per (phase, model) the mean over the valid repetitions; AEE_train and
    AEE_infer with the task weights, the combined AEE with w_t, w_i; the Table 2 level; ACE.
    A run is valid when it finished (exit status 0), did work (no samples, tokens or flops
    of 0), reached its quality target, lies in the window, overlaps no other run, and its
    energy is valid and measured: readings bound the run and reach ai.min_sampling_density
    (collectors/evaluation/ai_coverage.py). The result is valid when the combined AEE is computed
    and every task it weighs has at least ai.min_repetitions valid runs. Samples outside the
    site's physical limits are left out and listed in `quality.implausible`, and make the
    result not valid (collectors/evaluation/plausibility.py).
    """
    screened = screen(series, site.plausibility)
    series = screened.series
    result = evaluate_infrastructure(site, series, start, end)
    section = site.ai
    parsed = parse_runs(runs)
    factor, issues = _carbon_factor(site, result)
    ctx = _Ctx(site, section, series, start, end, factor)
    results = [_evaluate_run(ctx, run) for run in parsed]
    _mark_conflicts(parsed, results)
    tasks = tasks_of(results, section.min_repetitions if section else 5)
    aee, aee_issues, valid = combine(tasks, section)
    issues += [i for t in tasks for i in t["issues"]] + aee_issues
    if section is None:
        issues.insert(0, NO_SECTION)
    threshold = section.advanced_gflops_per_wh if section else AEE_ADVANCED
    level = aee_level(aee["aee_gflops_per_wh"], threshold)
    ace_value = ace(results)
    _uncertainty(result, results)
    quality = result["quality"]
    quality["infrastructure_valid"] = quality["valid"]
    quality["valid"] = valid and section is not None
    run_issues = [issue("ctx.run", run=i, inner=x) for i, r in enumerate(results)
                  for x in r["issues"]]
    quality["issues"] = issues + run_issues + quality["issues"]
    if section is not None:
        ai_ids = {*section.servers, *section.gpus}
        seen = {(q["source"], q["metric"], str(sorted(q["labels"].items())))
                for q in quality["sources"]}
        quality["sources"] += [
            series_quality(s, start, end, site.quality.max_gap_s)
            for s in series
            if s.source in ai_ids
            and (s.source, s.metric, str(sorted(s.labels.items()))) not in seen
        ]
    quality["sampling_density_method"] = DENSITY_METHOD
    flag(quality, screened.findings)
    result.update({
        "kind": "ai",
        "servers_under_test": {
            "servers": list(section.servers) if section else [],
            "gpus": list(section.gpus) if section else [],
            "network": list(section.network) if section else [],
            "storage": list(section.storage) if section else [],
        },
        "runs": results,
        "tasks": tasks,
        **aee,
        "aee_level": level,
        "aee_thresholds": {"advanced": threshold, "note": "Table 2: advanced >= 224 GFLOPs/Wh"},
        "ace_kg_per_flop": ace_value,
        "ace_method": ACE_METHOD if factor is not None else None,
        "ai_carbon_kg": sum_valid(results, "carbon_kg"),
        "calibration": _calibration(ctx, results),
    })
    return result
