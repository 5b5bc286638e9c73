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
never run here. Only the daemon's command, `dcmeter agent run`, calls `keep_out()`
(dcmeter/cli/main.py), before anything imports structlog, httpx or pysnmp; `agent once`
(which prints a rich table), the collector and the rest of the command line keep them.
"""

from __future__ import annotations

import sys

# Top-level packages only optional extras of the agent's libraries import (see above).
UNUSED: tuple[str, ...] = ("rich", "pygments", "click", "pysmi")


def keep_out(names: tuple[str, ...] = UNUSED) -> list[str]:
    """Mark `names` not importable in this process unless already imported; return those
    marked. Idempotent."""
    marked = []
    for name in names:
        if name not in sys.modules:
            sys.modules[name] = None  # type: ignore[assignment]
            marked.append(name)
    return marked
