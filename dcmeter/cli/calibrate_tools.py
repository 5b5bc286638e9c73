"""Reference tools that drive their own load: iperf3, fio, a workload run (issue 18, in work)."""

from __future__ import annotations

from dcmeter.cli.calibrate_drivers import Driver, DriverError, PostRun
from dcmeter.collectors.evaluation.calibration_plan import Plan


def tool_driver(plan: Plan, post_run: PostRun | None) -> Driver:
    """The iperf3, fio or workload driver for `plan`."""
    raise DriverError(f"driver {plan.driver.kind}: not built yet")
