"""`host` source: CPU utilisation of the machine the agent runs on (psutil)."""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Literal

import psutil

from agent.samples import MetricSpec, Reading, SourceInfo, now_ns
from agent.sources.base import SourceConfigBase

CPU_UTIL = MetricSpec("cpu_util_pct", "%", "gauge")


class HostConfig(SourceConfigBase):
    """The local host; `labels.kind` defaults to `compute`."""

    type: Literal["host"]

    def build(self) -> HostSource:
        """Make the source this config describes."""
        return HostSource(self)


class HostSource:
    """Mean CPU utilisation over all cores since the previous read.

    The first read after start has no previous read to compare with; psutil then measures
    over a short blocking interval instead, so the first sample is real too.
    """

    def __init__(
        self,
        config: HostConfig,
        cpu_percent: Callable[..., float] = psutil.cpu_percent,
        clock: Callable[[], int] = now_ns,
    ) -> None:
        labels = {"kind": "compute", **config.labels}
        self.info = SourceInfo(
            config.id, "host", socket.gethostname(), labels, config.accuracy
        )
        self._cpu_percent = cpu_percent
        self._clock = clock
        self._primed = False

    async def read(self) -> list[Reading]:
        """Read the CPU utilisation in percent (0..100)."""
        if self._primed:
            value = float(self._cpu_percent(interval=None))
        else:
            value = float(self._cpu_percent(interval=0.1))
            self._primed = True
        return [Reading(CPU_UTIL, value, self._clock())]

    async def close(self) -> None:
        """Nothing to release."""
