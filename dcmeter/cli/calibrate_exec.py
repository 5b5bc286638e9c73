"""Running a calibration's reference tool (iperf3, fio, a workload) with one-line errors:
what the drivers in calibrate_iperf3, calibrate_fio and calibrate_workload share."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence

from dcmeter.cli.calibrate_drivers import DriverError


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
    lines = (done.stdout or done.stderr).strip().splitlines()
    return lines[0] if lines else ""
