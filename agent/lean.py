"""Keep libraries the agent never uses out of its process (RSS at rest, docs/benchmarks.md §2).

Two libraries the agent depends on import optional extras merely because they are installed:
structlog imports rich (and pygments) for pretty console tracebacks, which the agent's JSON
lines never render (dcmeter/base/log.py), ~4.9 MB; pysnmp imports pysmi (with requests,
jinja2 and lark) to compile ASN.1 MIB files, which the SNMP source never needs because it
asks for numeric OIDs with lookupMib=False (agent/sources/snmp_client.py), ~12.5 MB. Both
import them inside `try: … except ImportError`, so an entry of None in `sys.modules` (the
import system's documented "not importable" marker) makes them fall back as if the extra
were not installed.

httpx likewise imports click, pygments and rich for its own command line (`httpx URL`),
never run here, and cryptography's serialization imports bcrypt for passphrase-protected
OpenSSH keys, where agent.key is an unencrypted PKCS#8 PEM file (agent/keys.py). Only the
daemon's command, `dcmeter agent run`, calls `keep_out()` (dcmeter/cli/main.py), before
anything imports structlog, httpx, cryptography or pysnmp; `agent once` (which prints a
rich table), the collector and the rest of the command line keep them.
"""

from __future__ import annotations

import sys

# Top-level packages only optional extras of the agent's libraries import (see above).
UNUSED: tuple[str, ...] = ("rich", "pygments", "click", "pysmi", "bcrypt")


def keep_out(names: tuple[str, ...] = UNUSED) -> list[str]:
    """Mark `names` not importable in this process unless already imported; return those
    marked. Idempotent."""
    marked = []
    for name in names:
        if name not in sys.modules:
            sys.modules[name] = None  # type: ignore[assignment]
            marked.append(name)
    return marked


def release() -> dict[str, int]:
    """Give back what start-up left behind: collect garbage and hand glibc's free heap pages
    back to the kernel; return what the collector found and what malloc_trim said (1: it
    released memory).

    Start-up builds pydantic schemas, opens sessions in worker threads and parses the
    config: most of it is garbage afterwards, but glibc keeps freed memory in its arenas,
    counted in RSS, until `malloc_trim`. Safe to call again; no trim off glibc. (Not
    `gc.freeze()`: it frees no memory, and what it freezes is never collected as a cycle, so
    the sources a reload drops could stay for good.)
    """
    import gc

    collected = gc.collect()
    trimmed = 0
    try:
        import ctypes

        trim = getattr(ctypes.CDLL(None), "malloc_trim", None)
        if trim is not None:
            trimmed = int(trim(0))
    except OSError:  # no C library to load by that name
        pass
    return {"collected": collected, "trimmed": trimmed}
