"""fio as the storage reference (seed 004's storage stress software, Gbit/s).

Each repetition runs `fio --name=dcmeter-cal --filename=F --rw=write --bs=BS --size=SIZE
--rate=RATE --time_based --ramp_time=SETTLE --runtime=DWELL --direct=1 --output-format=json`.
fio runs the ramp time first and leaves it out of its figures, then writes for the runtime
(the ramp adds to the total run time: fio(1), ramp_time). The reference is
`jobs[0].write.bw_bytes` × 8 / 1e9. The dwell is taken from fio's own report: it ends at the
report's `timestamp_ms` and lasts `write.runtime` ms; the launch time plus the ramp would be
late by the time fio takes to lay the file out, which grows with SIZE.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from dcmeter.cli.calibrate_drivers import DriverError, Measured
from dcmeter.cli.calibrate_exec import find_tool, last_line, run_tool, tool_version
from dcmeter.collectors.evaluation.calibration_plan import Plan, PlanPoint

DEFAULT_SIZE = "256M"  # looped over while time-based: the size only bounds the file


def block_device(path: str | os.PathLike[str]) -> str | None:
    """The disk (as named in /proc/diskstats) that holds `path`: the file system's device
    (st_dev), through /sys/dev/block/MAJ:MIN, a partition's parent disk. None when the file
    system has no block device (tmpfs, overlay, NFS)."""
    dev = os.stat(path).st_dev
    node = Path(f"/sys/dev/block/{os.major(dev)}:{os.minor(dev)}")
    try:
        real = node.resolve(strict=True)
    except OSError:
        return None
    # A partition (…/block/vda/vda1) has a `partition` file; the host source counts disks.
    return real.parent.name if (real / "partition").exists() else real.name


def ms(seconds: float) -> str:
    """A fio time option in whole milliseconds (fio takes an `ms` suffix)."""
    return f"{round(seconds * 1000)}ms"


def parse_output(text: str) -> dict[str, Any]:
    """fio's JSON report; it may print warning lines before it on stdout."""
    brace = text.find("{")
    if brace < 0:
        raise ValueError("no JSON report")
    report = json.loads(text[brace:])
    if not isinstance(report, dict):
        raise ValueError("the report is not a JSON object")
    return report


class FioDriver:
    """Runs one rate-limited sequential write per repetition on one file."""

    def __init__(self, plan: Plan) -> None:
        self._plan = plan
        self._fio = find_tool("fio")
        self.version = tool_version([self._fio, "--version"])
        spec = plan.driver
        self._dir: tempfile.TemporaryDirectory[str] | None = None
        if spec.filename:
            self.filename = Path(spec.filename)
            if self.filename.exists():
                # fio overwrites it: refuse rather than destroy someone's file.
                raise DriverError(f"driver fio: filename {self.filename} exists and fio would"
                                  " overwrite it; remove it or name a new file")
        else:
            self._dir = tempfile.TemporaryDirectory(prefix="dcmeter-cal-fio-")
            self.filename = Path(self._dir.name) / "fio.dat"
        if not self.filename.parent.is_dir():
            raise DriverError(f"driver fio: filename {self.filename}: no folder"
                              f" {self.filename.parent}")
        self.device = block_device(self.filename.parent)

    def measure(self, point: PlanPoint, repetition: int) -> Measured:
        """Write at the point's rate for settle + dwell; fio's write bandwidth is the reference."""
        cal, spec = self._plan.calibration, self._plan.driver
        argv = [self._fio, "--name=dcmeter-cal", f"--filename={self.filename}", "--rw=write",
                f"--bs={spec.bs}", f"--size={spec.size or DEFAULT_SIZE}", f"--rate={point.rate}",
                "--time_based", f"--runtime={ms(cal.dwell_s)}",
                f"--direct={1 if spec.direct else 0}", "--output-format=json"]
        if cal.settle_s > 0:
            argv.insert(-1, f"--ramp_time={ms(cal.settle_s)}")
        what = f"point {point.label!r}: fio on {self.filename}"
        launch = time.time()
        done = run_tool(argv, what, cal.settle_s + cal.dwell_s + 600)
        exited = time.time()
        if done.returncode != 0:
            raise DriverError(f"{what}: {last_line(done.stderr, done.stdout)}")
        try:
            report = parse_output(done.stdout)
            job = report["jobs"][0]
            if job.get("error"):
                raise ValueError(f"job error {job['error']}")
            write = job["write"]
            bw, io_bytes, runtime_ms = (float(write["bw_bytes"]), int(write["io_bytes"]),
                                        float(write["runtime"]))
            stamp = float(report["timestamp_ms"]) / 1000
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise DriverError(f"{what}: no usable report ({exc}):"
                              f" {last_line(done.stderr, done.stdout)}") from None
        if runtime_ms <= 0:
            raise DriverError(f"{what}: fio wrote nothing in the dwell (runtime 0 ms)")
        # fio stamps its report as the job ends (ms resolution): the dwell's end, kept inside
        # the process's life should the clocks disagree.
        end = min(max(stamp, launch + runtime_ms / 1000), exited)
        return Measured(
            start=end - runtime_ms / 1000, end=end, reference=bw * 8 / 1e9,
            detail={"tool": "fio", "version": report.get("fio version", self.version),
                    "target_rate": point.rate, "bw_bytes": bw, "io_bytes": io_bytes,
                    "runtime_ms": runtime_ms, "filename": str(self.filename),
                    "device": self.device, "direct": spec.direct},
        )

    def close(self) -> None:
        """Remove the file fio wrote (and the temporary folder it was put in)."""
        self.filename.unlink(missing_ok=True)
        if self._dir is not None:
            self._dir.cleanup()
