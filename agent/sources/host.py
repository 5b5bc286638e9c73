"""`host` source: CPU utilisation and, optionally, disk byte counters of the agent's machine."""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any, Literal

import psutil
import structlog
from pydantic import Field, field_validator

from dcmeter.agent.samples import MetricSpec, Reading, SourceInfo, now_ns
from dcmeter.agent.sources import DeviceError
from dcmeter.agent.sources.base import SourceConfigBase

log = structlog.get_logger("dcmeter.agent.host")

CPU_UTIL = MetricSpec("cpu_util_pct", "%", "gauge")
# Bytes read from / written to the disks since boot. psutil corrects the kernel's 32-bit
# wraps itself (nowrap), so the counters cannot wrap: a decrease is a reset (reboot).
DISK_READ = MetricSpec("disk_read_bytes", "B", "counter")
DISK_WRITE = MetricSpec("disk_write_bytes", "B", "counter")


class HostConfig(SourceConfigBase):
    """The local host; `labels.kind` defaults to `compute`.

    `disk_io` adds the disk byte counters (storage throughput of AI runs, seed 004);
    `disks` names the block devices to sum (as in /proc/diskstats, e.g. "nvme0n1"); empty:
    every whole disk psutil sees (partitions excluded).
    """

    type: Literal["host"]
    disk_io: bool = False
    disks: list[str] = Field(default_factory=list)

    @field_validator("disks")
    @classmethod
    def _names(cls, value: list[str]) -> list[str]:
        if any(not d or "/" in d for d in value):
            raise ValueError("disk names are device names such as 'sda' or 'nvme0n1', no path")
        return value

    def build(self) -> HostSource:
        """Make the source this config describes."""
        return HostSource(self)


class HostSource:
    """Mean CPU utilisation over all cores since the previous read, and the disk counters.

    The first read after start has no previous read to compare with; psutil then measures
    over a short blocking interval instead, so the first sample is real too.
    """

    def __init__(
        self,
        config: HostConfig,
        cpu_percent: Callable[..., float] = psutil.cpu_percent,
        clock: Callable[[], int] = now_ns,
        disk_io_counters: Callable[..., Any] = psutil.disk_io_counters,
    ) -> None:
        labels = {"kind": "compute", **config.labels}
        self.info = SourceInfo(
            config.id, "host", socket.gethostname(), labels, config.accuracy
        )
        self._cpu_percent = cpu_percent
        self._clock = clock
        self._disk_io = config.disk_io
        self._disks = list(config.disks)
        self._disk_io_counters = disk_io_counters
        self._primed = False
        self._told_no_disks = False

    async def read(self) -> list[Reading]:
        """Read the CPU utilisation in percent (0..100) and, if configured, the disk bytes."""
        if self._primed:
            value = float(self._cpu_percent(interval=None))
        else:
            value = float(self._cpu_percent(interval=0.1))
            self._primed = True
        readings = [Reading(CPU_UTIL, value, self._clock())]
        if self._disk_io:
            readings += self._read_disks()
        return readings

    def _read_disks(self) -> list[Reading]:
        """Return the summed read and write byte counters of the configured disks."""
        if self._disks:
            per_disk = self._disk_io_counters(perdisk=True) or {}
            missing = [d for d in self._disks if d not in per_disk]
            if missing:
                raise DeviceError(
                    f"disk(s) {', '.join(missing)} not found; this host has"
                    f" {', '.join(sorted(per_disk)) or 'none'}: check `disks`"
                )
            counters = [per_disk[d] for d in self._disks]
        else:
            total = self._disk_io_counters(perdisk=False)
            if total is None:
                if not self._told_no_disks:
                    log.info("host has no disk counters; disk_io skipped", source=self.info.id)
                    self._told_no_disks = True
                return []
            counters = [total]
        ts = self._clock()
        return [
            Reading(DISK_READ, float(sum(c.read_bytes for c in counters)), ts),
            Reading(DISK_WRITE, float(sum(c.write_bytes for c in counters)), ts),
        ]

    async def close(self) -> None:
        """Nothing to release."""
