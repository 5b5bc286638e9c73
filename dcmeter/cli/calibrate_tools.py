"""Reference tools that drive their own load: iperf3 (network), fio (storage), a workload run
(tokens/s) — seed 004's network tester, storage stress software and AI framework.

Each driver starts its tool once per repetition, lets the load settle, holds it for the
dwell and reads the tool's own figure over the dwell as the reference (docs/calibration.md,
"Reference tools that drive the load"). This module picks the driver and holds what the
three share: running a tool to completion with one-line errors.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence

from dcmeter.cli.calibrate_drivers import Driver, DriverError, PostRun
from dcmeter.collectors.evaluation.calibration_plan import Plan


def find_tool(name: str, env: Mapping[str, str] | None = None) -> str:
    """The path of the executable `name` on PATH (of `env` when given); DriverError if none."""
    path = (env if env is not None else os.environ).get("PATH", os.defpath)
    found = shutil.which(name, path=path)
    if found is None:
        raise DriverError(f"driver {name}: {name} not found on PATH; install it (Debian: apt"
                          f" install {name})")
    return found


def run_tool(argv: Sequence[str], what: str, timeout_s: float) -> subprocess.CompletedProcess[str]:
    """Run a tool to completion and return it (any exit status); DriverError if it cannot
    be started or outlives `timeout_s` (s)."""
    try:
        return subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout_s,
                              stdin=subprocess.DEVNULL)
    except OSError as exc:
        raise DriverError(f"{what}: cannot start {argv[0]}: {exc.strerror or exc}") from None
    except subprocess.TimeoutExpired:
        raise DriverError(f"{what}: {argv[0]} still running after {timeout_s:.0f} s;"
                          " stopped") from None


def last_line(*texts: str | None) -> str:
    """The last non-blank line of the first text that has one (a tool's error message)."""
    for text in texts:
        lines = [x.strip() for x in (text or "").splitlines() if x.strip()]
        if lines:
            return lines[-1]
    return "no output"


def tool_version(argv: Sequence[str]) -> str:
    """The first line a tool prints for its version option ("" when it prints none)."""
    try:
        done = subprocess.run(list(argv), capture_output=True, text=True, timeout=30,
                              stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return (done.stdout or done.stderr).strip().splitlines()[0] if (done.stdout or done.stderr) \
        else ""


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
