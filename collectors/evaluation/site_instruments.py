"""[[instruments]] of the site file: each instrument's calibration, and the instrument list.

The report lists every source that delivered samples to a window (the instrument list):
what it is (kind, measurement point, the device's own identity as the agent read it), how
accurate it is and who says so, and when it was calibrated and is due again. The site file
holds what no device reports: the calibration certificate's dates and, where the
certificate states it, the accuracy (which then overrides the agent's configured one).

An instrument whose calibration is due before the window's end date is **overdue**: an issue
in the result, not a reason to call it not valid. STANDARD.md (seed 004, the calibration
proposal) names the quantities and their MPEs but no rule on a lapsed calibration, and
neither T/CECA-G 0355—2025 nor GB 40879 makes a result's validity depend on a calibration
date; the evaluator judges it. Due on the window's end date is not overdue (the instrument
is within its period on its due date); due the day before is.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from dcmeter.collectors.evaluation.issues import Issue, issue

AccuracySource = Literal["site file", "agent config", "default"]


class Instrument(BaseModel):
    """[[instruments]]: one source's calibration (dates, certificate) and stated accuracy."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    source: str = Field(min_length=1)
    calibrated: date | None = None
    calibration_due: date | None = None
    certificate: str | None = Field(default=None, min_length=1)
    accuracy: float | None = Field(default=None, gt=0, lt=1)
    accuracy_basis: str | None = Field(default=None, min_length=1)

    @model_validator(mode="after")
    def _due_after_calibration(self) -> Instrument:
        if (self.calibrated is not None and self.calibration_due is not None
                and self.calibration_due < self.calibrated):
            raise ValueError(
                f"calibration_due {self.calibration_due} is before calibrated"
                f" {self.calibrated}"
            )
        return self


def check_instruments(
    instruments: Sequence[Instrument], known: Sequence[str]
) -> list[tuple[str, str]]:
    """The faults of the [[instruments]] list as (key, text): a source id no list of the site
    file names, or one listed twice."""
    faults: list[tuple[str, str]] = []
    seen: set[str] = set()
    for i, inst in enumerate(instruments):
        key = f"instruments[{i}].source"
        if inst.source not in known:
            faults.append((key, f"{inst.source!r} is not a source the site file names;"
                                f" valid: {', '.join(sorted(known)) or '(none)'}"))
        if inst.source in seen:
            faults.append((key, f"{inst.source!r} is listed twice"))
        seen.add(inst.source)
    return faults


def overdue(inst: Instrument | None, end_day: date) -> bool:
    """Tell whether `inst`'s calibration was due before `end_day` (the window's last day, in
    the site's time): due on that day is still within the calibration period."""
    return inst is not None and inst.calibration_due is not None and (
        inst.calibration_due < end_day
    )


def instrument_entry(
    stored: Mapping[str, Any],
    cal: Instrument | None,
    roles: Sequence[str],
    end_day: date,
) -> dict[str, Any]:
    """One row of the result's `instruments` list.

    `stored`: the store's view of an (agent, source) (`agent`, `source`, `protocol`,
    `address`, `labels`, `accuracy`, `device`, `samples`); `cal`: its [[instruments]] entry
    or None; `roles`: the site file's lists that name it (`energy.total`, `ai.gpus`, …).
    Accuracy (relative) comes from the site file where it states one, else from the agent's
    configuration, else none is known (`accuracy_source` null).
    """
    labels: Mapping[str, str] = stored.get("labels") or {}
    accuracy, basis = None, None
    source: AccuracySource | None = None
    if cal is not None and cal.accuracy is not None:
        accuracy, source = cal.accuracy, "site file"
    elif stored.get("accuracy") is not None:
        accuracy, source = float(stored["accuracy"]), "agent config"
    if cal is not None:
        basis = cal.accuracy_basis
    return {
        "source": stored["source"],
        "agent": stored["agent"],
        "protocol": stored["protocol"],
        "address": stored["address"],
        "kind": labels.get("kind"),
        "point": labels.get("point"),
        "roles": list(roles),
        "device": dict(stored.get("device") or {}),
        "accuracy": accuracy,
        "accuracy_source": source,
        "accuracy_basis": basis,
        "calibrated": None if cal is None or cal.calibrated is None else cal.calibrated.isoformat(),
        "calibration_due": (None if cal is None or cal.calibration_due is None
                            else cal.calibration_due.isoformat()),
        "certificate": None if cal is None else cal.certificate,
        "overdue": overdue(cal, end_day),
        "samples": int(stored["samples"]),
    }


def overdue_issue(entry: Mapping[str, Any], end_day: date) -> Issue:
    """The quality issue of an overdue instrument's row."""
    return issue("instrument_overdue", source=entry["source"], agent=entry["agent"],
                 due=entry["calibration_due"], end=end_day.isoformat())
