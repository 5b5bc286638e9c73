"""How `dcmeter calibrate run` sets a load point and reads the reference tool's value.

A driver applies a point's load (a command, iperf3 at a rate, fio at a rate, a workload run),
lets it settle, holds it for the dwell and returns the dwell's interval with what the
reference reported over it. The collector reads the instrument's side from its own series.
This module holds what every driver shares; `calibrate_load` (none, command) and
`calibrate_tools` (iperf3, fio, workload) hold the drivers, `calibrate_cli.driver_for` picks one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from dcmeter.collectors.evaluation.calibration_plan import PlanPoint

# Posts one run to the plan's AI window and answers its id (the workload driver).
PostRun = Callable[[dict[str, Any]], int]


class DriverError(RuntimeError):
    """A point could not be driven (the tool is missing, failed or wrote no result)."""


@dataclass(frozen=True, slots=True)
class Measured:
    """One repetition of one point: its dwell and what the driver's reference gave."""

    start: float  # the dwell, epoch seconds by this host's clock
    end: float
    reference: float | None = None  # the reference tool's value, in the quantity's unit
    indicated: float | None = None
    run: int | None = None  # the AI window's run id (workload driver)
    detail: dict[str, Any] = field(default_factory=dict)


class Driver(Protocol):
    """Sets each load point and measures one repetition of it."""

    def measure(self, point: PlanPoint, repetition: int) -> Measured:
        """Apply the point's load, wait settle_s, hold dwell_s; return the dwell."""
        ...

    def close(self) -> None:
        """Stop whatever the driver started (a server, a load)."""
        ...
