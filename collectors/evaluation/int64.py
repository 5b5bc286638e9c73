"""Bounds of the store's 64-bit integer columns, for the values the API accepts.

Both store dialects keep integers in signed 64 bits (SQLite INTEGER, PostgreSQL BIGINT) and
times as nanoseconds since 1970 in them, so a larger value would fail in the database driver
(a 500); the API refuses it first with a 422 that names the bound.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
# Whole days inside what int64 ns can hold (1677-09-21T00:12:43Z .. 2262-04-11T23:47:16Z),
# so a time converted through a float still fits.
FIRST_TIME = datetime(1677, 9, 22, tzinfo=UTC)
LAST_TIME = datetime(2262, 4, 11, tzinfo=UTC)


def in_store_range(dt: datetime) -> datetime:
    """Return `dt` when a store can hold it as int64 ns; raise ValueError naming the bound.

    A naive `dt` passes: whoever requires a UTC offset says so in its own words.
    """
    if dt.tzinfo is None:
        return dt
    if dt > LAST_TIME:
        raise ValueError(f"{dt.isoformat()} is after {LAST_TIME.isoformat()}, the last time"
                         " the store holds (nanoseconds since 1970 in 64 bits)")
    if dt < FIRST_TIME:
        raise ValueError(f"{dt.isoformat()} is before {FIRST_TIME.isoformat()}, the first"
                         " time the store holds (nanoseconds since 1970 in 64 bits)")
    return dt


# A time that fits an int64 ns column.
StoreTime = Annotated[datetime, AfterValidator(in_store_range)]
