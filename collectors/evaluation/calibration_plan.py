"""A calibration's plan (seed 004, STANDARD.md §4): what is calibrated against what, at which
load points, how long and how often; the TOML file `dcmeter calibrate` reads and the body of
POST /api/v1/calibrations.

The instrument under calibration is a dcmeter series (a BMC's DCMI power, a port's octet
counter, a host's disk counter), the tokens/s of an AI window's runs, or readings entered by
hand. The reference is a series of a source marked as a standard (a reference power analyser
on Modbus), readings entered from its display, or a reference tool's own output (iperf3,
fio, the workload's framework figure) that `dcmeter calibrate run` records per point.
"""

from __future__ import annotations

from datetime import date
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Name = str
DecisionRule = Literal["simple", "guarded"]
InstrumentKind = Literal["series", "run", "entered"]
ReferenceKind = Literal["series", "entered", "iperf3", "fio", "workload"]
DriverKind = Literal["none", "command", "iperf3", "fio", "workload"]
# A reference tool that runs on the host and drives the load it measures: its driver.
TOOL_DRIVERS = {"iperf3": "iperf3", "fio": "fio", "workload": "workload"}


class Strict(BaseModel):
    """Unknown keys are errors (a typo must not silently change a calibration)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class MpeSpec(Strict):
    """A maximum permissible error: ± (relative × |value| + absolute), in the quantity's unit."""

    relative: float | None = Field(default=None, ge=0, lt=1)
    absolute: float | None = Field(default=None, ge=0)


class Calibration(Strict):
    """`[calibration]`: the quantity, the procedure's timing, the decision rule, the notes."""

    quantity: str = Field(min_length=1, description="a key of calibration_quantities.QUANTITIES")
    note: str | None = Field(default=None, max_length=2000)
    environment: str | None = Field(default=None, max_length=500)
    laboratory: str | None = Field(default=None, max_length=500)
    customer: str | None = Field(default=None, max_length=500)
    decision_rule: DecisionRule = "simple"
    repetitions: int = Field(default=3, ge=1, le=100)
    dwell_s: float = Field(default=30.0, gt=0, le=86400)
    settle_s: float = Field(default=5.0, ge=0, le=3600)
    sync_s: float = Field(
        default=0.5, ge=0, le=60,
        description="bound of the offset between the reference's and the instrument's time"
        " bases (s)",
    )


class SeriesSpec(Strict):
    """Which stored series: a source id, a metric and the labels that pick one series."""

    source: str | None = Field(default=None, min_length=1)
    metric: str | None = Field(default=None, min_length=1)
    labels: dict[str, str] = Field(default_factory=dict)


class InstrumentSpec(SeriesSpec):
    """`[instrument]`: the instrument under calibration."""

    kind: InstrumentKind = "series"
    window: int | None = Field(default=None, ge=1, description="the AI window (kind = run)")
    resolution: float | None = Field(default=None, ge=0)
    description: str | None = Field(default=None, max_length=500)

    @model_validator(mode="after")
    def _complete(self) -> InstrumentSpec:
        if self.kind == "series" and (self.source is None or self.metric is None):
            raise ValueError("an instrument of kind series needs source and metric")
        if self.kind == "run" and self.window is None:
            raise ValueError("an instrument of kind run needs window (the AI window's id)")
        return self


class ReferenceSpec(SeriesSpec):
    """`[reference]`: the measurement standard and its certificate."""

    kind: ReferenceKind = "entered"
    name: str = Field(default="", max_length=200)
    make: str | None = Field(default=None, max_length=200)
    model: str | None = Field(default=None, max_length=200)
    serial: str | None = Field(default=None, max_length=200)
    certificate: str | None = Field(default=None, max_length=200)
    calibrated: date | None = None
    due: date | None = None
    mpe: MpeSpec | None = Field(
        default=None, description="absent: the quantity's reference-standard MPE (seed 004)"
    )
    resolution: float | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _complete(self) -> ReferenceSpec:
        if self.kind == "series" and (self.source is None or self.metric is None):
            raise ValueError("a reference of kind series needs source and metric")
        if self.calibrated is not None and self.due is not None and self.due < self.calibrated:
            raise ValueError(f"due {self.due} is before calibrated {self.calibrated}")
        return self


class DriverSpec(Strict):
    """`[driver]`: how `dcmeter calibrate run` sets each load point (the collector keeps it as
    part of the record and does not act on it)."""

    kind: DriverKind = "none"
    host: str = "127.0.0.1"
    port: int = Field(default=5201, ge=1, le=65535)
    filename: str | None = None
    size: str | None = None
    bs: str = "1M"
    direct: bool = True
    command: list[str] = Field(default_factory=list)
    phase: Literal["inference", "training"] | None = None
    model: str | None = None


class PlanPoint(Strict):
    """`[[points]]`: one load point."""

    label: str = Field(min_length=1, max_length=100)
    rate: str | None = Field(default=None, description="iperf3 -b / fio --rate, e.g. 1G, 50m")
    command: list[str] = Field(default_factory=list)


class Plan(Strict):
    """A whole calibration plan."""

    calibration: Calibration
    instrument: InstrumentSpec
    reference: ReferenceSpec
    driver: DriverSpec = Field(default_factory=DriverSpec)
    points: list[PlanPoint] = Field(min_length=1, max_length=100)

    @model_validator(mode="after")
    def _consistent(self) -> Plan:
        labels = [p.label for p in self.points]
        twice = sorted({x for x in labels if labels.count(x) > 1})
        if twice:
            raise ValueError(f"point label(s) {', '.join(twice)} given twice")
        tool = TOOL_DRIVERS.get(self.reference.kind)
        if tool is not None and self.driver.kind != tool:
            raise ValueError(
                f"reference kind {self.reference.kind} is read from its own run: driver kind"
                f" must be {tool}, not {self.driver.kind}"
            )
        if self.driver.kind in ("iperf3", "fio"):
            missing = [p.label for p in self.points if p.rate is None]
            if missing:
                raise ValueError(f"driver {self.driver.kind}: point(s) {', '.join(missing)}"
                                 " need a rate")
        if self.driver.kind == "workload" and not self.driver.command:
            raise ValueError("driver workload needs command (the workload to run)")
        return self
