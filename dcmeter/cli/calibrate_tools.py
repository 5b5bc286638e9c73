"""Reference tools that drive their own load: iperf3 (network), fio (storage), a workload run
(tokens/s) — seed 004's network tester, storage stress software and AI framework.

Each driver starts its tool once per repetition, lets the load settle, holds it for the
dwell and reads the tool's own figure over the dwell as the reference (docs/calibration.md,
"Reference tools that drive the load"). This module picks the driver; calibrate_exec holds
what the three share.
"""

from __future__ import annotations

from dcmeter.cli.calibrate_drivers import Driver, DriverError, PostRun
from dcmeter.collectors.evaluation.calibration_plan import Plan


def tool_driver(plan: Plan, post_run: PostRun | None) -> Driver:
    """The iperf3, fio or workload driver for `plan` (its [driver] kind)."""
    kind = plan.driver.kind
    if kind == "iperf3":
        from dcmeter.cli.calibrate_iperf3 import Iperf3Driver

        return Iperf3Driver(plan)
    if kind == "fio":
        from dcmeter.cli.calibrate_fio import FioDriver

        return FioDriver(plan)
    if kind == "workload":
        from dcmeter.cli.calibrate_workload import WorkloadDriver

        if post_run is None:
            raise DriverError("driver workload: the runs need a collector to be posted to")
        return WorkloadDriver(plan, post_run)
    raise DriverError(f"driver {kind}: not a reference tool; valid: iperf3, fio, workload")
