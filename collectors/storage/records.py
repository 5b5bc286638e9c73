"""The store's records as plain values: a window, an AI run recorded in it, a drop record.

What the store hands out and its helpers (the gauge folds, store_folds.py) take in; kept
apart from the store so that both can name them without importing each other.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# A drop record an agent reported: (first_seq, last_seq, samples, first_ts_ns, last_ts_ns).
Drop = tuple[int, int, int, int, int]


@dataclass(frozen=True, slots=True)
class StoredRun:
    """An AI run recorded in a window: `body` is the run object as evaluate() reads it."""

    id: int
    window_id: int
    body: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Window:
    """A measurement window; `end_ns` is None while it is open."""

    id: int
    kind: str
    start_ns: int
    end_ns: int | None
    note: str | None
    opened_by: str | None = None  # the name of the token that opened it
    scope: tuple[str, ...] | None = None  # the source ids it covers; None: the whole site
    closed_by: str | None = None  # the name of the token that stopped it
    closed_ns: int | None = None  # when it was stopped (ns; `end_ns` may be set earlier)
