"""Load points set by the operator (`none`) or by a command (`command`).

`none`: the operator sets the load by hand; the driver asks on the terminal and waits for
Enter, then settles and dwells. `command`: the point's `command` runs to completion (it sets
the load: a simulator's control, a load generator started in the background, a power
cap), then the driver settles and dwells. Neither reads a reference: the plan's reference is
a series (a reference analyser) or readings entered afterwards.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable

from dcmeter.cli.calibrate_drivers import DriverError, Measured
from dcmeter.collectors.evaluation.calibration_plan import Plan, PlanPoint


class LoadDriver:
    """Sets a point (by the operator or a command), then waits settle_s and dwell_s."""

    def __init__(
        self, plan: Plan, sleep: Callable[[float], None] = time.sleep,
        now: Callable[[], float] = time.time, ask: Callable[[str], str] = input,
    ) -> None:
        self._plan = plan
        self._sleep, self._now, self._ask = sleep, now, ask
        self._current: str | None = None

    def _apply(self, point: PlanPoint) -> None:
        if self._plan.driver.kind == "none":
            if point.label != self._current:
                self._ask(f"set the load to point {point.label!r}, then press Enter: ")
            return
        command = point.command or self._plan.driver.command
        if not command:
            raise DriverError(f"point {point.label!r}: the command driver needs a command")
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=600)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise DriverError(f"point {point.label!r}: {command[0]}: {exc}") from None
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
            raise DriverError(
                f"point {point.label!r}: {' '.join(command)} exited {done.returncode}: {tail[0]}"
            )

    def measure(self, point: PlanPoint, repetition: int) -> Measured:
        """Set the point's load (once per point), settle, then hold the dwell."""
        cal = self._plan.calibration
        self._apply(point)
        self._current = point.label
        self._sleep(cal.settle_s)
        start = self._now()
        self._sleep(cal.dwell_s)
        return Measured(start=start, end=self._now())

    def close(self) -> None:
        """Nothing to stop: the load is the operator's or the command's."""


def load_driver(plan: Plan) -> LoadDriver:
    """The `none` or `command` driver for `plan`."""
    return LoadDriver(plan)
