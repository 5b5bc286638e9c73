"""Plain-data input of the evaluation: one time series per (source, metric, labels)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

# Times or values: a plain sequence or an array of float64.
Floats = Sequence[float] | npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True, eq=False)
class Series:
    """The samples of one metric of one source, sorted by time.

    `ts` are seconds since the Unix epoch (UTC, float), `values` in `unit`: any sequences of
    numbers, held as float64 arrays. `labels` are the source's labels (`point`, `kind`, …)
    merged with the sample's own. `modulus` is the wrap modulus of a counter in `unit`, None
    where it cannot wrap. `accuracy` is the source's relative error where known.
    """

    source: str
    metric: str
    unit: str
    kind: str
    ts: Floats
    values: Floats
    modulus: float | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    accuracy: float | None = None

    def __post_init__(self) -> None:
        # Held as float64 arrays, converted once: every evaluation function reads them so.
        for name in ("ts", "values"):
            value = getattr(self, name)
            if not isinstance(value, np.ndarray) or value.dtype != np.float64:
                object.__setattr__(self, name, np.asarray(value, dtype=np.float64))


def arrays(series: Series) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], int]:
    """Return the series' finite samples as (ts, values) arrays sorted by time, and how many
    non-finite samples were dropped. Samples with equal times keep their order."""
    if len(series.ts) != len(series.values):
        raise ValueError(
            f"{series.source} {series.metric}: {len(series.ts)} times but"
            f" {len(series.values)} values"
        )
    ts, vs = np.asarray(series.ts), np.asarray(series.values)
    keep = np.isfinite(ts) & np.isfinite(vs)
    dropped = int(ts.size - np.count_nonzero(keep))
    if dropped:
        ts, vs = ts[keep], vs[keep]
    if ts.size > 1 and not bool(np.all(ts[1:] >= ts[:-1])):
        order = np.argsort(ts, kind="stable")
        ts, vs = ts[order], vs[order]
    return ts, vs, dropped


def median(x: npt.NDArray[np.float64]) -> float:
    """Return the median of a non-empty array (the mean of the middle two for an even size);
    np.median's general machinery costs several times more on the short arrays used here."""
    n = x.size
    k = n // 2
    if n % 2:
        return float(np.partition(x, k)[k])
    part = np.partition(x, (k - 1, k))
    return float((part[k - 1] + part[k]) / 2)
