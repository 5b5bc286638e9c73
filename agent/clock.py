"""Whether the kernel believes its clock is synchronised (adjtimex), for each batch."""

from __future__ import annotations

import ctypes
import ctypes.util

from agent.wire import ClockStatus

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


def clock_status() -> ClockStatus:
    """Read (never set) the kernel's clock discipline: synced flag and max error in s."""
    name = ctypes.util.find_library("c")
    if name is None:  # pragma: no cover - not Linux
        return ClockStatus()
    try:
        libc = ctypes.CDLL(name, use_errno=True)
        tx = _Timex()  # modes = 0: read only
        state = libc.adjtimex(ctypes.byref(tx))
    except (OSError, AttributeError):  # pragma: no cover
        return ClockStatus()
    if state < 0:
        return ClockStatus()
    synced = state != _TIME_ERROR and not tx.status & _STA_UNSYNC
    return ClockStatus(synced=synced, max_error_s=tx.maxerror / 1e6)
