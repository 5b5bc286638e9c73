"""A calibration's record (issue 18, seed 004): the plan, its stored readings and the samples
of the series they name, through collectors/evaluation/calibration.py's pure math.

Each side of a reading is a stored series read over the reading's dwell (the instrument under
calibration, or a reference analyser on Modbus), a value posted with the reading (entered by
hand, or a reference tool's output), or for an AI window's instrument the tokens/s of the run
the reading names. The record is computed on each read while the calibration is open and
frozen at close (collectors/storage/calibration_table.py).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dcmeter import __version__
from dcmeter.collectors.evaluation import calibration as cal
from dcmeter.collectors.evaluation.calibration_plan import Plan, SeriesSpec
from dcmeter.collectors.evaluation.calibration_quantities import QUANTITIES, Mpe, Quantity
from dcmeter.collectors.evaluation.issues import attach_details, issue
from dcmeter.collectors.evaluation.jsonl import parse_rfc3339, rfc3339
from dcmeter.collectors.evaluation.series import Series
from dcmeter.collectors.storage.calibration_table import StoredCalibration, StoredReading
from dcmeter.collectors.storage.store import Store

SOFTWARE = f"dcmeter {__version__}"
BASIS = "seed 004 (STANDARD.md §4): calibration quantities and their maximum permissible errors"
# Samples are read this far around a dwell first (s), then kept within 2 of the series'
# median sampling intervals of it: the edges a counter's delta interpolates from.
READ_MARGIN_S = 600.0
EDGE_PERIODS = 2.0
K = 2.0


def quantity_error(name: str) -> str | None:
    """Why `name` is not a calibration quantity (naming the valid ones), or None."""
    if name in QUANTITIES:
        return None
    return f"quantity {name!r} is not one of {', '.join(sorted(QUANTITIES))} (seed 004)"


def reference_mpe(plan: Plan) -> Mpe:
    """The reference standard's MPE: the plan's, else the quantity's (seed 004); none: 0."""
    if plan.reference.mpe is not None:
        return Mpe(relative=plan.reference.mpe.relative, absolute=plan.reference.mpe.absolute)
    default = QUANTITIES[plan.calibration.quantity].reference_mpe
    return default if default is not None else Mpe(absolute=0.0)


def _matches(s: Series, spec: SeriesSpec) -> bool:
    return s.metric == spec.metric and all(s.labels.get(k) == v for k, v in spec.labels.items())


def _trim(s: Series, start: float, end: float) -> Series:
    """`s` kept within EDGE_PERIODS median sampling intervals of [start, end]."""
    ts, vs = np.asarray(s.ts, dtype=np.float64), np.asarray(s.values, dtype=np.float64)
    if len(ts) < 2:
        return s
    period = float(np.median(np.diff(ts)))
    keep = (ts >= start - EDGE_PERIODS * period) & (ts <= end + EDGE_PERIODS * period)
    return Series(s.source, s.metric, s.unit, s.kind, ts[keep], vs[keep], s.modulus,
                  s.labels, s.accuracy)


@dataclass
class Side:
    """One side's value per reading, its resolution, and what went wrong."""

    values: dict[tuple[str, int], float | None] = field(default_factory=dict)
    spreads: dict[tuple[str, int], float] = field(default_factory=dict)
    resolution: dict[str, float] = field(default_factory=dict)  # per point: the largest seen
    basis: str = ""
    issues: list[str] = field(default_factory=list)


def _series_side(store: Store, spec: SeriesSpec, quantity: Quantity, what: str,
                 readings: Sequence[StoredReading]) -> Side:
    out = Side()
    assert spec.source is not None
    for r in readings:
        key = (r.point, r.repetition)
        start, end = r.start_ns / 1e9, r.end_ns / 1e9
        margin = int(READ_MARGIN_S * 1e9)
        found = [s for s in store.series([spec.source], r.start_ns - margin, r.end_ns + margin)
                 if _matches(s, spec)]
        where = {"side": what, "source": spec.source, "metric": spec.metric,
                 "labels": f" {spec.labels}" if spec.labels else "", "point": repr(r.point),
                 "repetition": r.repetition}
        if len(found) != 1:
            inner = (issue("cal.no_series") if not found
                     else issue("cal.many_series", count=len(found)))
            out.issues.append(issue("ctx.cal_series", **where, inner=inner))
            out.values[key] = None
            continue
        try:
            ind = cal.indication(_trim(found[0], start, end), start, end, quantity)
        except ValueError as exc:
            out.issues.append(issue("ctx.cal_series", **where, inner=str(exc)))
            out.values[key] = None
            continue
        out.values[key], out.spreads[key] = ind.value, ind.spread
        if ind.value is None:
            why = (ind.issues[0] if ind.issues
                   else issue("cal.no_indication_samples", samples=ind.samples))
            out.issues.append(issue("ctx.cal_series", **where,
                                    inner=issue("cal.no_indication", inner=why)))
        out.resolution[r.point] = max(out.resolution.get(r.point, 0.0), ind.resolution)
        out.basis = ind.resolution_basis
    return out


def _posted_side(name: str, readings: Sequence[StoredReading]) -> Side:
    out = Side()
    for r in readings:
        v = r.body.get(name)
        out.values[(r.point, r.repetition)] = None if v is None else float(v)
    return out


def _run_side(store: Store, window: int, readings: Sequence[StoredReading]) -> Side:
    """Tokens/s of the AI window's runs the readings name: tokens / (end − start)."""
    out = Side()
    runs = {r.id: r.body for r in store.runs(window)}
    for r in readings:
        key, rid = (r.point, r.repetition), r.body.get("run")
        body = runs.get(rid) if isinstance(rid, int) else None
        tokens = None if body is None else body.get("tokens")
        if body is None or tokens is None:
            out.issues.append(issue("cal.run_missing" if body is None else "cal.run_no_tokens",
                                    point=repr(r.point), repetition=r.repetition, run=rid,
                                    window=window))
            out.values[key] = None
            continue
        t0, t1 = parse_rfc3339(str(body["start"])), parse_rfc3339(str(body["end"]))
        out.values[key] = float(tokens) / (t1 - t0)
    return out


def _interval(store: Store, plan: Plan, r: StoredReading) -> tuple[float, float]:
    """The reading's dwell (s); for a run instrument, the run's own interval."""
    if plan.instrument.kind == "run" and plan.instrument.window is not None:
        for run in store.runs(plan.instrument.window):
            if run.id == r.body.get("run"):
                return parse_rfc3339(str(run.body["start"])), parse_rfc3339(str(run.body["end"]))
    return r.start_ns / 1e9, r.end_ns / 1e9


def _device(store: Store, plan: Plan, readings: Sequence[StoredReading]) -> dict[str, Any]:
    """The instrument's agent, point and device identity as its series report them."""
    spec = plan.instrument
    if spec.kind != "series" or spec.source is None or not readings:
        return {"agent": None, "point": None, "device": None}
    t0 = min(r.start_ns for r in readings)
    t1 = max(r.end_ns for r in readings)
    found = store.instruments([spec.source], t0, t1)
    if not found:
        return {"agent": None, "point": None, "device": None}
    i = found[-1]
    keys = ("make", "model", "serial", "firmware", "description")
    return {"agent": i.agent, "point": i.labels.get("point"),
            "device": {k: i.device.get(k) for k in keys} if i.device else None}


def calibration_record(store: Store, stored: StoredCalibration) -> dict[str, Any]:
    """The record of the contract: the frozen one once closed, else computed now."""
    if stored.record is not None:
        return stored.record
    plan = Plan.model_validate(stored.plan)
    return build_record(store, stored, plan, store.readings(stored.id))


def build_record(store: Store, stored: StoredCalibration, plan: Plan,
                 readings: Sequence[StoredReading], closed: tuple[int, str | None] | None = None
                 ) -> dict[str, Any]:
    """Compute the record from the plan and the readings; `closed` = (ns, by) at close."""
    q = QUANTITIES[plan.calibration.quantity]
    ins, ref = plan.instrument, plan.reference
    if ins.kind == "series":
        ind = _series_side(store, ins, q, "instrument", readings)
    elif ins.kind == "run":
        assert ins.window is not None
        ind = _run_side(store, ins.window, readings)
    else:
        ind = _posted_side("indicated", readings)
    rs = (_series_side(store, ref, q, "reference", readings) if ref.kind == "series"
          else _posted_side("reference", readings))
    points = []
    for p in plan.points:
        reps = []
        for r in sorted((r for r in readings if r.point == p.label), key=lambda r: r.repetition):
            key = (r.point, r.repetition)
            start, end = _interval(store, plan, r)
            reps.append(cal.Repetition(
                repetition=r.repetition, start=start, end=end, reference=rs.values.get(key),
                indicated=ind.values.get(key),
                spread=max(ind.spreads.get(key, 0.0), rs.spreads.get(key, 0.0)),
                detail=r.body.get("detail") or {},
            ))
        res_i = ins.resolution if ins.resolution is not None else ind.resolution.get(p.label, 0.0)
        res_r = ref.resolution if ref.resolution is not None else rs.resolution.get(p.label, 0.0)
        basis = "; ".join(x for x in (
            "instrument: " + ("given in the plan" if ins.resolution is not None
                              else ind.basis or "not given (negligible)"),
            "reference: " + ("given in the plan" if ref.resolution is not None
                             else rs.basis or "not given (negligible)"),
        ) if x)
        points.append(cal.PointInput(label=p.label, repetitions=reps, resolution_indicated=res_i,
                                     resolution_reference=res_r, resolution_basis=basis))
    result = cal.calibration_result(points, q, reference_mpe(plan), sync_s=plan.calibration.sync_s,
                                    rule=plan.calibration.decision_rule, k=K)
    c = plan.calibration
    first = min((r.start_ns for r in readings), default=None)
    last = max((r.end_ns for r in readings), default=None)

    def at(ns: int | None) -> str | None:
        return None if ns is None else rfc3339(ns / 1e9)

    return attach_details({
        "id": stored.id,
        "state": "open" if closed is None else "closed",
        "quantity": {"name": c.quantity, "unit": q.unit,
                     "range": None if q.range is None else list(q.range),
                     "mpe": q.mpe.as_dict(), "basis": BASIS},
        "instrument": {"kind": ins.kind, "source": ins.source, "metric": ins.metric,
                       "labels": ins.labels, "window": ins.window,
                       **_device(store, plan, readings),
                       "resolution": ins.resolution, "description": ins.description},
        "reference": {"kind": ref.kind, "name": ref.name, "make": ref.make, "model": ref.model,
                      "serial": ref.serial, "certificate": ref.certificate,
                      "calibrated": None if ref.calibrated is None else ref.calibrated.isoformat(),
                      "due": None if ref.due is None else ref.due.isoformat(),
                      "mpe": reference_mpe(plan).as_dict(), "resolution": ref.resolution,
                      "source": ref.source, "metric": ref.metric, "labels": ref.labels},
        "procedure": {"points": [p.label for p in plan.points], "dwell_s": c.dwell_s,
                      "settle_s": c.settle_s, "repetitions": c.repetitions, "sync_s": c.sync_s,
                      "decision_rule": c.decision_rule, "k": K, "driver": plan.driver.kind},
        "environment": c.environment, "laboratory": c.laboratory, "customer": c.customer,
        "note": c.note,
        "dates": {"created": at(stored.created_ns), "first_reading": at(first),
                  "last_reading": at(last), "closed": at(closed[0] if closed else None),
                  "issued": at(closed[0] if closed else None)},
        "people": {"created_by": stored.created_by,
                   "closed_by": closed[1] if closed else None},
        "points": result["points"],
        "statement": {"rule": c.decision_rule, "result": result["statement"].get("result"),
                      "basis": result["statement"].get("basis") or _rule_basis(c.decision_rule)},
        "issues": [*ind.issues, *rs.issues, *result["issues"]],
        "software": SOFTWARE,
    })


def _rule_basis(rule: str) -> str:
    return ("ILAC-G8:09/2019 §4.2.1, simple acceptance (w = 0)" if rule == "simple"
            else "ILAC-G8:09/2019 §4.2.3, guarded acceptance, non-binary (w = U)")


def summary(stored: StoredCalibration) -> dict[str, Any]:
    """A calibration's line in GET /api/v1/calibrations."""
    plan: Mapping[str, Any] = stored.plan
    record = stored.record or {}
    return {"id": stored.id, "state": "open" if stored.closed_ns is None else "closed",
            "quantity": plan.get("calibration", {}).get("quantity"),
            "created": rfc3339(stored.created_ns / 1e9), "created_by": stored.created_by,
            "closed": None if stored.closed_ns is None else rfc3339(stored.closed_ns / 1e9),
            "statement": (record.get("statement") or {}).get("result")}
