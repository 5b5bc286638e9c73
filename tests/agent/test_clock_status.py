"""agent/clock.py's clock_status looks the C library up once: ctypes.util.find_library runs
`ldconfig -p` in a child process, and the agent asks for the clock's status on every tick."""

from __future__ import annotations

import ctypes.util

import pytest

from dcmeter.agent import clock


def test_the_c_library_is_found_once_for_every_status(monkeypatch: pytest.MonkeyPatch) -> None:
    lookups: list[str] = []
    find = ctypes.util.find_library

    def counted(name: str) -> str | None:
        lookups.append(name)
        return find(name)

    monkeypatch.setattr(ctypes.util, "find_library", counted)
    clock._libc.cache_clear()
    try:
        first = [clock.clock_status() for _ in range(5)]
    finally:
        clock._libc.cache_clear()
    assert lookups == ["c"]
    # Read, never set: five reads in a row agree on whether the clock is synchronised.
    assert len({s.synced for s in first}) == 1
