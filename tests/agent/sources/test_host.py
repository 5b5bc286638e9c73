"""`host` source: CPU utilisation and the disk byte counters, checked against /proc/diskstats."""

from __future__ import annotations

import asyncio
import os
from collections import namedtuple
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from dcmeter.agent.sources import DeviceError
from dcmeter.agent.sources.host import DISK_READ, DISK_WRITE, HostConfig, HostSource

SECTOR = 512  # /proc/diskstats counts 512-byte sectors whatever the device's sector size


def diskstats(names: set[str]) -> tuple[int, int]:
    """Bytes read and written by the named block devices, read straight from the kernel."""
    read = written = 0
    for line in Path("/proc/diskstats").read_text().splitlines():
        f = line.split()
        if f[2] in names:
            read += int(f[5]) * SECTOR
            written += int(f[9]) * SECTOR
    return read, written


def whole_disks() -> set[str]:
    """The whole block devices (partitions have no entry in /sys/block)."""
    return set(os.listdir("/sys/block"))


def source(**extra: Any) -> HostSource:
    return HostConfig.model_validate({"type": "host", "id": "h", **extra}).build()


def values(readings: list[Any]) -> dict[str, float]:
    return {r.metric.name: r.value for r in readings}


def test_without_disk_io_only_cpu_is_read() -> None:
    got = values(asyncio.run(source().read()))
    assert set(got) == {"cpu_util_pct"} and 0.0 <= got["cpu_util_pct"] <= 100.0


def test_disk_counters_match_the_kernel() -> None:
    disks = whole_disks()
    before = diskstats(disks)
    got = values(asyncio.run(source(disk_io=True).read()))
    after = diskstats(disks)
    assert before[0] <= got["disk_read_bytes"] <= after[0]
    assert before[1] <= got["disk_write_bytes"] <= after[1]
    assert got["disk_read_bytes"] > 0  # the machine has read its own root file system


def test_named_disk_is_summed_alone() -> None:
    busy = [d for d in sorted(whole_disks()) if diskstats({d})[0] > 0]
    assert busy, "no block device with reads in /proc/diskstats"
    name = busy[0]
    before = diskstats({name})
    got = values(asyncio.run(source(disk_io=True, disks=[name]).read()))
    after = diskstats({name})
    assert before[0] <= got["disk_read_bytes"] <= after[0]
    assert before[1] <= got["disk_write_bytes"] <= after[1]


def test_unknown_disk_names_what_exists() -> None:
    with pytest.raises(DeviceError, match=r"no-such-disk not found; this host has .*check `disks`"):
        asyncio.run(source(disk_io=True, disks=["no-such-disk"]).read())


def test_disk_metrics_are_counters_in_bytes() -> None:
    for spec in (DISK_READ, DISK_WRITE):
        assert spec.kind == "counter" and spec.unit == "B" and spec.modulus is None


def test_host_without_disks_keeps_cpu() -> None:
    # No machine without block devices can be produced here: the psutil call is replaced.
    config = HostConfig.model_validate({"type": "host", "id": "h", "disk_io": True})
    src = HostSource(config, disk_io_counters=lambda perdisk=False: None)
    for _ in range(2):
        assert set(values(asyncio.run(src.read()))) == {"cpu_util_pct"}


def test_named_disks_are_summed() -> None:
    io = namedtuple("io", "read_bytes write_bytes")
    table = {"sda": io(100, 10), "sdb": io(1000, 20), "sdc": io(5, 5)}
    config = HostConfig.model_validate(
        {"type": "host", "id": "h", "disk_io": True, "disks": ["sda", "sdb"]}
    )
    src = HostSource(config, disk_io_counters=lambda perdisk=False: table if perdisk else None)
    got = values(asyncio.run(src.read()))
    assert got["disk_read_bytes"] == 1100.0 and got["disk_write_bytes"] == 30.0


def test_disk_names_are_validated() -> None:
    with pytest.raises(ValidationError, match="no path"):
        HostConfig.model_validate({"type": "host", "id": "h", "disks": ["/dev/sda"]})
