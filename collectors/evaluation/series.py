"""Plain-data input of the evaluation: one time series per (source, metric, labels)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Series:
    """The samples of one metric of one source, sorted by time.

    `ts` are seconds since the Unix epoch (UTC, float), `values` in `unit`. `labels` are the
    source's labels (`point`, `kind`, …) merged with the sample's own. `modulus` is the wrap
    modulus of a counter in `unit`, None where it cannot wrap. `accuracy` is the source's
    relative error where known.
    """

    source: str
    metric: str
    unit: str
    kind: str
    ts: tuple[float, ...]
    values: tuple[float, ...]
    modulus: float | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    accuracy: float | None = None
