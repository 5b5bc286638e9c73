"""Rate-limited log lines: one line per key per interval, with the count of repeats left out.

A fault a hostile or broken peer can repeat at will (a refused batch, a failed accept) must
not grow the log without bound: the first occurrence of a key is logged, the repeats within
`interval_s` are only counted, and the next line logged for that key says how many were left
out (`suppressed`). Counting elsewhere (the store's rejections table) is not affected.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Hashable

INTERVAL_S = 60.0
# Distinct keys remembered; past it the oldest are forgotten (a hostile peer could otherwise
# grow the table with invented agent ids). A forgotten key logs its next line at once.
MAX_KEYS = 4096


class LogLimiter:
    """Decide, per key, whether a log line may be written now (thread-safe)."""

    def __init__(
        self, interval_s: float = INTERVAL_S, clock: Callable[[], float] = time.monotonic,
        max_keys: int = MAX_KEYS,
    ) -> None:
        """Allow one line per key every `interval_s` seconds of `clock`."""
        self.interval_s = interval_s
        self.clock = clock
        self.max_keys = max_keys
        self._lock = threading.Lock()
        # key -> (time of the last line written, repeats left out since)
        self._keys: dict[Hashable, tuple[float, int]] = {}

    def allow(self, key: Hashable) -> int | None:
        """None: leave this line out. Else write it, saying how many repeats were left out."""
        now = self.clock()
        with self._lock:
            last = self._keys.get(key)
            if last is not None and now - last[0] < self.interval_s:
                self._keys[key] = (last[0], last[1] + 1)
                return None
            self._keys.pop(key, None)  # re-inserted last: the dict stays oldest first
            if len(self._keys) >= self.max_keys:
                del self._keys[next(iter(self._keys))]
            self._keys[key] = (now, 0)
            return 0 if last is None else last[1]

    def drain(self) -> dict[Hashable, int]:
        """The keys with repeats left out since their last line, with the counts; reset them
        (at stop, so that no count is lost)."""
        with self._lock:
            out = {k: n for k, (_, n) in self._keys.items() if n}
            for k in out:
                self._keys[k] = (self._keys[k][0], 0)
        return out


class RateLimitFilter(logging.Filter):
    """A logging filter letting one record per (logger, message) through per interval."""

    def __init__(self, limiter: LogLimiter | None = None) -> None:
        """Limit with `limiter` (one line per minute per message by default)."""
        super().__init__()
        self.limiter = limiter or LogLimiter()

    def filter(self, record: logging.LogRecord) -> bool:
        """Pass the record, noting left-out repeats in its message, or drop it."""
        # The first line: asyncio appends the context (socket, transport) on later lines.
        left_out = self.limiter.allow((record.name, str(record.msg).split("\n", 1)[0]))
        if left_out is None:
            return False
        if left_out:
            record.msg = f"{record.msg} [{left_out} like it left out in the last" \
                f" {self.limiter.interval_s:g} s]"
        return True


# Loggers whose lines a peer can trigger at will: asyncio's "socket.accept() out of system
# resource" (with a traceback, every second while descriptors run out), uvicorn's
# "Exceeded concurrency limit." and "Invalid HTTP request received." per request.
NOISY = ("asyncio", "uvicorn.error")


def limit_loggers(names: tuple[str, ...] = NOISY, interval_s: float = INTERVAL_S) -> None:
    """Put one rate-limiting filter on each of the named loggers (once; idempotent)."""
    for name in names:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RateLimitFilter) for f in logger.filters):
            logger.addFilter(RateLimitFilter(LogLimiter(interval_s)))
