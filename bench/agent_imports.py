"""Benchmark: what each import on the `dcmeter agent run` path adds to the agent's RSS.

    .venv/bin/python bench/agent_imports.py [--json FILE]

One fresh interpreter goes the way `dcmeter agent run` goes and reads its own RSS (psutil,
/proc) after each step: first the command line (dcmeter.cli.main parsing `agent run`), then
the libraries, the agent's own modules and the vendor modules of a config with ipmi, snmp
and modbus sources (agent/sources/__init__.py VENDOR_MODULES). A step's figure is what it
added beyond the steps before it, so an import shared by two steps counts in the first.
Printed and written (`--json`): per step the MB added and the top-level packages it brought
in. `--root` measures another source tree (an older commit, for a before/after table).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

# (label, Python statements); run in this order in one interpreter.
STEPS: list[tuple[str, str]] = [
    # As dcmeter.cli.main.main() does before it runs `agent run` (older trees: no _parse_args).
    ("the command line: dcmeter.cli.main, parsing `agent run`",
     "import dcmeter.cli.main as m\n"
     "argv = ['agent', 'run', '-c', 'x']\n"
     "m._parse_args(argv) if hasattr(m, '_parse_args') else m._parser().parse_args(argv)"),
    ("asyncio", "import asyncio"),
    ("pydantic", "import pydantic"),
    ("structlog", "import structlog"),
    ("cryptography (Ed25519)",
     "from cryptography.hazmat.primitives.asymmetric import ed25519"),
    ("msgpack, sqlite3", "import msgpack, sqlite3"),
    ("httpx", "import httpx"),
    ("APScheduler", "from apscheduler.schedulers.asyncio import AsyncIOScheduler"),
    ("the agent's own modules (dcmeter.agent.cli, .daemon)",
     "import dcmeter.agent.cli, dcmeter.agent.daemon"),
    ("pysnmp, python-ipmi, pymodbus (VENDOR_MODULES)",
     "from dcmeter.agent.sources import import_vendor_modules\n"
     "import_vendor_modules({'ipmi', 'snmp', 'modbus'})"),
]

CHILD = r"""
import json, sys
import psutil
p = psutil.Process()
def tops():
    return {k.split('.')[0] for k in sys.modules}
out = [{"step": "the interpreter (and psutil)", "rss_mb": p.memory_info().rss / 2**20,
        "new": []}]
seen = tops()
for label, code in json.loads(sys.argv[1]):
    exec(code, {})
    now = tops()
    out.append({"step": label, "rss_mb": p.memory_info().rss / 2**20,
                "new": sorted(now - seen)})
    seen = now
print(json.dumps(out))
"""


def measure(root: Path) -> list[dict[str, Any]]:
    """Run the steps in a fresh interpreter importing the tree at `root`."""
    env = {**os.environ, "PYTHONPATH": str(root)}
    res = subprocess.run([sys.executable, "-c", CHILD, json.dumps(STEPS)], env=env,
                         capture_output=True, text=True, check=True, cwd=root)
    rows: list[dict[str, Any]] = json.loads(res.stdout)
    prev = 0.0
    for r in rows:
        r["added_mb"] = round(r["rss_mb"] - prev, 1)
        prev = r["rss_mb"]
        r["rss_mb"] = round(r["rss_mb"], 1)
    return rows


def main() -> int:
    """Parse arguments, measure, print the table, write the JSON."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", type=Path, default=ROOT,
                    help="the source tree to import (default: this one)")
    ap.add_argument("--json", type=Path, default=None, help="write the figures here")
    args = ap.parse_args()
    rows = measure(args.root.resolve())
    width = max(len(r["step"]) for r in rows)
    for r in rows:
        new = ", ".join(n for n in r["new"] if not n.startswith("_"))
        print(f"{r['step']:<{width}}  +{r['added_mb']:5.1f}  = {r['rss_mb']:5.1f} MB  {new}")
    if args.json:
        args.json.write_text(json.dumps(
            {"benchmark": "agent_imports", "root": str(args.root), "rows": rows,
             "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
             "loadavg_1_5_15": os.getloadavg(), "python": sys.version.split()[0]},
            indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
