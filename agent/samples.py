"""What a source hands the agent: readings of named metrics, with their unit and kind."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

MetricKind = Literal["gauge", "counter"]


@dataclass(frozen=True, slots=True)
class MetricSpec:
    """A metric: its name carries its unit (`power_w`); a counter may declare its wrap modulus.

    `modulus` is in the metric's own unit (a 32-bit Wh register scaled to kWh wraps at
    2**32 / 1000). None on a counter means it cannot wrap, so any decrease is a reset.
    """

    name: str
    unit: str
    kind: MetricKind = "gauge"
    modulus: float | None = None


@dataclass(frozen=True, slots=True)
class Reading:
    """One value read from a device at `ts_ns` (ns since the Unix epoch, UTC)."""

    metric: MetricSpec
    value: float
    ts_ns: int
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class SourceInfo:
    """A source's static identity: it travels once per batch, not once per sample.

    `labels` carry `point` (the GB 40879 measurement point), `kind`, `site`, `room`, `rack`,
    `group`; `accuracy` is the relative measurement error (0.005 for a class 0.5 meter), or
    None where unknown. `device` is what the device says it is, read once per connection
    (DEVICE_KEYS: `make`, `model`, `serial`, `firmware`, `device_id` and protocol extras);
    empty until read, or where the device reports nothing.
    """

    id: str
    protocol: str
    address: str
    labels: Mapping[str, str] = field(default_factory=dict)
    accuracy: float | None = None
    device: Mapping[str, str] = field(default_factory=dict)


# The keys a source's `device` map may carry: the instrument list of the report names them.
DEVICE_KEYS = (
    "make", "model", "serial", "firmware", "device_id", "revision",
    "manufacturer_id", "product_id", "sys_object_id", "sys_descr", "uuid", "profile",
)
# Bounds of one `device` map, checked on the wire (agent/wire.py) and kept by the sources.
DEVICE_MAX_ENTRIES = 16
DEVICE_MAX_VALUE = 1024  # 16 GPU UUIDs (41 characters each) fit


def device_map(**values: object) -> dict[str, str]:
    """A `device` map from the non-empty values given: stripped of control characters and
    surrounding blanks, cut to DEVICE_MAX_VALUE characters (a device's strings are its own)."""
    out: dict[str, str] = {}
    for key, value in values.items():
        if value is None:
            continue
        text = "".join(c for c in str(value) if c.isprintable()).strip()
        if text:
            out[key] = text[:DEVICE_MAX_VALUE]
    return out


def now_ns() -> int:
    """Wall-clock time in ns since the Unix epoch."""
    return time.time_ns()
