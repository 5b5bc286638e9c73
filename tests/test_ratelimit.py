"""The log limiter: one line per key per interval, and the count of the lines left out."""

from __future__ import annotations

import logging

from dcmeter.base.ratelimit import LogLimiter, RateLimitFilter


def test_one_line_per_key_per_interval_with_the_repeats_counted() -> None:
    now = [100.0]
    limiter = LogLimiter(60.0, clock=lambda: now[0])
    assert limiter.allow(("malformed", None)) == 0
    assert [limiter.allow(("malformed", None)) for _ in range(5)] == [None] * 5
    assert limiter.allow(("bad_signature", "rack-a")) == 0  # another key: its own line
    now[0] += 59.9
    assert limiter.allow(("malformed", None)) is None
    now[0] += 0.1  # 60 s after the first line: written, saying 6 were left out
    assert limiter.allow(("malformed", None)) == 6
    assert limiter.allow(("malformed", None)) is None


def test_drain_hands_over_the_counts_not_written_once() -> None:
    now = [0.0]
    limiter = LogLimiter(60.0, clock=lambda: now[0])
    assert limiter.allow(("unknown_token", "10.0.0.9")) == 0
    assert limiter.allow(("no_token", "10.0.0.9")) == 0
    assert [limiter.allow(("unknown_token", "10.0.0.9")) for _ in range(3)] == [None] * 3
    assert limiter.drain() == {("unknown_token", "10.0.0.9"): 3}  # no_token: nothing left out
    assert limiter.drain() == {}
    now[0] = 60.0  # the next line counts only what came after the drain
    assert limiter.allow(("unknown_token", "10.0.0.9")) == 0


def test_invented_keys_do_not_grow_the_table() -> None:
    limiter = LogLimiter(60.0, clock=lambda: 0.0, max_keys=3)
    for i in range(10):
        assert limiter.allow(("unknown_agent", f"forged-{i}")) == 0
    assert len(limiter._keys) == 3
    assert limiter.allow(("unknown_agent", "forged-9")) is None  # the newest are kept


def test_filter_keys_on_the_first_line_and_notes_what_it_left_out() -> None:
    now = [0.0]
    f = RateLimitFilter(LogLimiter(60.0, clock=lambda: now[0]))

    def record(msg: str) -> logging.LogRecord:
        return logging.LogRecord("asyncio", logging.ERROR, __file__, 1, msg, None, None)

    assert f.filter(record("socket.accept() out of system resource\nsocket: <fd=9>"))
    assert not f.filter(record("socket.accept() out of system resource\nsocket: <fd=10>"))
    now[0] = 61.0
    r = record("socket.accept() out of system resource\nsocket: <fd=9>")
    assert f.filter(r) and "[1 like it left out in the last 60 s]" in r.msg
