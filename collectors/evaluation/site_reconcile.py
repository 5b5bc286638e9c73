"""[[reconcile]] of the site file: sets of sources that sit behind one meter.

A rack feed, a PDU inlet or the IT meter measures what the servers, PDUs or GPUs below it
draw, plus the losses between them (PSU conversion is inside the servers' own input
readings; cables, busways and PDU electronics are not). Each set is checked in every window
(collectors/evaluation/reconcile.py, docs/evaluation.md "Reconciliation").
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from dcmeter.collectors.evaluation.site_ids import check_ids


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class Band(_Strict):
    """An energy stated as a share of the meter's energy plus a constant power over the window.

    relative: a fraction of the meter's energy (0.03 = 3 %); fixed_w: a constant power in W,
    counted over the window's hours (50 W over 2 h = 0.1 kWh).
    """

    relative: float = Field(default=0.0, ge=0, le=1)
    fixed_w: float = Field(default=0.0, ge=0)

    def kwh(self, meter_kwh: float, hours: float) -> float:
        """The band's energy (kWh) for a meter energy (kWh) over a window of `hours`."""
        return self.relative * meter_kwh + self.fixed_w * hours / 1000.0


class Reconcile(_Strict):
    """[[reconcile]]: the meter, the sources below it, the expected loss and the allowance.

    The set agrees when |E_meter − Σ E_below − loss| ≤ allowance + U (U: the combined
    uncertainty of the difference from the sources' accuracies).
    """

    name: str = Field(min_length=1)
    meter: str = Field(min_length=1)
    below: list[str] = Field(min_length=1)
    loss: Band = Field(default_factory=Band)
    allowance: Band = Field(default_factory=Band)

    @field_validator("below")
    @classmethod
    def _ids(cls, value: list[str]) -> list[str]:
        return check_ids(value)

    @model_validator(mode="after")
    def _meter_not_below(self) -> Reconcile:
        if self.meter in self.below:
            raise ValueError(
                f"reconcile {self.name!r}: the meter {self.meter!r} is also listed in `below`;"
                " a source cannot sit behind itself")
        return self


def check_reconcile(sets: list[Reconcile]) -> list[Reconcile]:
    """Refuse two sets of one name (the report and the issues name a set by it)."""
    seen: set[str] = set()
    for s in sets:
        if s.name in seen:
            raise ValueError(f"two [[reconcile]] sets are named {s.name!r}; give each its own name")
        seen.add(s.name)
    return sets
