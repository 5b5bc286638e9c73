"""The agent's clock: whether the kernel believes it synchronised (adjtimex), and its steps.

A step (NTP or an operator setting the time) is told from time passing by comparing the
wall clock with the monotonic clock between two checks. After a backward step the wall
clock reads times already used: `OrderGuard` holds back a series' readings until its clock
passes the last time that series was stamped, so no series ever goes back in time and no
counter increase is counted twice (docs/design-decisions.md, "Clock steps").
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import time
from collections.abc import Callable, Iterable, Mapping

from dcmeter.agent.samples import Reading, SourceInfo
from dcmeter.agent.wire import ClockStatus

# Wall minus monotonic time between two checks beyond this, s, is a step: NTP slews at most
# 500 ppm (30 ms a minute), so anything near a second was set, not slewed.
STEP_TOLERANCE_S = 1.0

_STA_UNSYNC = 0x0040
_TIME_ERROR = 5


class _Timeval(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_usec", ctypes.c_long)]


class _Timex(ctypes.Structure):
    # struct timex of <sys/timex.h> on Linux: the fields read here, then padding.
    _fields_ = [
        ("modes", ctypes.c_uint),
        ("offset", ctypes.c_long),
        ("freq", ctypes.c_long),
        ("maxerror", ctypes.c_long),
        ("esterror", ctypes.c_long),
        ("status", ctypes.c_int),
        ("constant", ctypes.c_long),
        ("precision", ctypes.c_long),
        ("tolerance", ctypes.c_long),
        ("time", _Timeval),
        ("tick", ctypes.c_long),
        ("_rest", ctypes.c_int * 32),
    ]


@functools.cache
def _libc() -> ctypes.CDLL | None:
    """The C library, found once: find_library runs `ldconfig -p` in a child process (~0.5 ms
    of the agent's CPU and more in the child, twice a tick when it was looked up per call)."""
    name = ctypes.util.find_library("c")
    if name is None:  # pragma: no cover - not Linux
        return None
    try:
        return ctypes.CDLL(name, use_errno=True)
    except OSError:  # pragma: no cover
        return None


def clock_status() -> ClockStatus:
    """Read (never set) the kernel's clock discipline: synced flag and max error in s."""
    libc = _libc()
    if libc is None:  # pragma: no cover - not Linux
        return ClockStatus()
    try:
        tx = _Timex()  # modes = 0: read only
        state = libc.adjtimex(ctypes.byref(tx))
    except (OSError, AttributeError):  # pragma: no cover
        return ClockStatus()
    if state < 0:
        return ClockStatus()
    synced = state != _TIME_ERROR and not tx.status & _STA_UNSYNC
    return ClockStatus(synced=synced, max_error_s=tx.maxerror / 1e6)


class StepWatch:
    """Tell a step of the wall clock from time passing: wall and monotonic time compared."""

    def __init__(
        self,
        tolerance_s: float = STEP_TOLERANCE_S,
        wall_ns: Callable[[], int] = time.time_ns,
        mono_ns: Callable[[], int] = time.monotonic_ns,
    ) -> None:
        self.tolerance_s = tolerance_s
        self._wall, self._mono = wall_ns, mono_ns
        self._last: tuple[int, int] | None = None
        self._pending: float | None = None

    def check(self) -> float | None:
        """Return the step since the previous check in s (negative: backwards), or None.
        A step is also kept until `take()`, so the next batch reports it."""
        wall, mono = self._wall(), self._mono()
        step = None
        if self._last is not None:
            drift = ((wall - self._last[0]) - (mono - self._last[1])) / 1e9
            if abs(drift) > self.tolerance_s:
                step = drift
                self._pending = (self._pending or 0.0) + drift
        self._last = (wall, mono)
        return step

    def take(self) -> float | None:
        """The steps seen since the last take, summed in s; None if none."""
        pending, self._pending = self._pending, None
        return pending

    def restore(self, step: float) -> None:
        """Keep a taken step for the next batch (nothing was sealed this time)."""
        self._pending = step + (self._pending or 0.0)


SeriesKey = tuple[str, str, tuple[tuple[str, str], ...]]


class OrderGuard:
    """Let through only readings stamped after the last reading of the same series."""

    def __init__(self) -> None:
        self._last: dict[SeriesKey, int] = {}
        self.held = 0  # readings held back so far (a backward step's overlap)

    def keep(
        self, tick: Iterable[tuple[SourceInfo, Reading]]
    ) -> list[tuple[SourceInfo, Reading]]:
        """The readings of `tick` that move their series forward in time, in order."""
        out = []
        last_of = self._last
        # A source gives one labels mapping to all readings of a port: sort it once. Keyed by
        # id(), the mapping held beside its items so no other can take its id in this call.
        sorted_labels: dict[int, tuple[Mapping[str, str], tuple[tuple[str, str], ...]]] = {}
        for info, r in tick:
            labels = r.labels
            if not labels:
                key: SeriesKey = (info.id, r.metric.name, ())
            else:
                memo = sorted_labels.get(id(labels))
                if memo is None:
                    memo = sorted_labels[id(labels)] = (labels, tuple(sorted(labels.items())))
                key = (info.id, r.metric.name, memo[1])
            last = last_of.get(key)
            if last is not None and r.ts_ns <= last:
                self.held += 1
                continue
            last_of[key] = r.ts_ns
            out.append((info, r))
        return out
