"""`dcmeter agent run` loads only what the daemon uses (RSS at rest, docs/benchmarks.md §2).

The command line's other commands pull in the collector (FastAPI, numpy: ~19 MB), and
structlog, httpx and pysnmp import optional extras the agent never uses (rich, pygments,
click, pysmi with requests and jinja2: ~17 MB). A fresh interpreter goes the daemon's way
through the import graph, as `python -m dcmeter agent run` does up to its first tick, and
says which of them it holds. That the daemon still reads every protocol in that process is
tests/test_simulate.py's test_agent_run_accepts_the_written_config.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from typing import Any

from conftest import ROOT

# Modules the daemon must not hold: the collector's stack, the command line's other
# commands, and the extras agent/lean.py keeps out.
KEPT_OUT = ["numpy", "fastapi", "starlette", "uvicorn", "dcmeter.collectors", "dcmeter.cli.client",
            "dcmeter.cli.calibrate_cli", "rich", "pygments", "click", "pysmi", "requests",
            "jinja2", "bcrypt"]

DAEMON_PATH = """
import json, sys
from dcmeter.cli.main import _parse_args
args = _parse_args(sys.argv[1:])
from dcmeter.agent import cli, daemon, shipper
from dcmeter.agent.sources import import_vendor_modules
import_vendor_modules({"ipmi", "snmp", "modbus", "redfish"})
import dcmeter.agent.sources.ipmi, dcmeter.agent.sources.snmp, dcmeter.agent.sources.modbus
names = json.loads(sys.stdin.read())
print(json.dumps({"held": [m for m in names if sys.modules.get(m) is not None],
                  "kept_out": [m for m in names if m in sys.modules and sys.modules[m] is None]}))
"""


def fresh(script: str, data: object, *argv: str) -> Any:
    """What `script`, run in a fresh interpreter on this tree with `data` as JSON on its
    standard input, prints as JSON."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", script, *argv], input=json.dumps(data),
                         capture_output=True, text=True, env=env, timeout=120, check=True)
    return json.loads(out.stdout)


def imports(*argv: str) -> dict[str, list[str]]:
    """Which of KEPT_OUT a fresh interpreter holds, and which it marked not importable, after
    parsing `argv` and importing the daemon's modules."""
    result: dict[str, list[str]] = fresh(DAEMON_PATH, KEPT_OUT, *argv)
    return result


def test_agent_run_holds_neither_the_collector_nor_unused_extras() -> None:
    got = imports("agent", "run", "-c", "agent.toml")
    assert got["held"] == []
    assert sorted(got["kept_out"]) == ["bcrypt", "click", "pygments", "pysmi", "rich"]


def test_other_commands_keep_every_library() -> None:
    """Only the daemon keeps the extras out: `agent once` prints its table with rich, and the
    full command line still builds the collector's parsers (numpy through the token table)."""
    assert imports("agent", "once", "-c", "agent.toml")["kept_out"] == []
    got = imports("collector", "serve", "-c", "c.toml")
    assert got["kept_out"] == [] and {"dcmeter.collectors", "numpy", "rich"} <= set(got["held"])


BUILD = """
import json, sys
from dcmeter.agent.sources import import_vendor_modules, vendor_types
from dcmeter.agent.sources.snmp import SnmpConfig
configs = [SnmpConfig.model_validate(c) for c in json.loads(sys.stdin.read())]
import_vendor_modules(vendor_types(configs))
for c in configs:
    c.build()
print(json.dumps(sorted(m for m in ("pysnmp", "pyasn1") if m in sys.modules)))
"""


def vendor_imports(*versions: str) -> list[str]:
    """Which of pysnmp, pyasn1 a fresh interpreter holds after building SNMP sources of the
    given versions the way the agent does (vendor modules first, then the sources)."""
    configs = [
        {"type": "snmp", "id": f"sw{i}", "host": "127.0.0.1", "port": 161, "version": v,
         "interfaces": {"if_indexes": [1]},
         **({"community": "public"} if v == "2c" else
            {"username": "u", "auth_password": "a" * 8, "priv_password": "p" * 8})}
        for i, v in enumerate(versions)
    ]
    held: list[str] = fresh(BUILD, configs)
    return held


def test_a_v2c_agent_never_loads_pysnmp_and_a_v3_one_loads_it_before_its_first_tick() -> None:
    assert vendor_imports("2c", "2c") == []
    assert vendor_imports("2c", "3") == ["pyasn1", "pysnmp"]


MODBUS_BUILD = """
import asyncio, json, socket, sys
from dcmeter.agent.sources import SourceError, import_vendor_modules, vendor_types
from dcmeter.agent.sources.modbus import ModbusConfig
configs = [ModbusConfig.model_validate(c) for c in json.loads(sys.stdin.read())]
import_vendor_modules(vendor_types(configs))
sources = [c.build() for c in configs if c.transport == "tcp"]

async def read_all():  # the TCP read path to its end: connection refused, a failed target
    for s in sources:
        try:
            await s.read()
        except SourceError:
            pass
        await s.close()

asyncio.run(read_all())
print(json.dumps(sorted(m for m in ("pymodbus", "serial") if m in sys.modules)))
"""


def modbus_imports(*transports: str) -> list[str]:
    """Which of pymodbus, serial (pyserial) a fresh interpreter holds after building Modbus
    sources of the given transports the way the agent does and reading the TCP ones (from a
    closed port: the whole read path, to its failure)."""
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    configs = [
        {"type": "modbus", "id": f"m{i}", "profile": "eastron_sdm630", "timeout_s": 1.0,
         **({"host": "127.0.0.1", "port": port} if t == "tcp" else
            {"transport": "rtu", "serial_port": "/dev/ttyUSB0"})}
        for i, t in enumerate(transports)
    ]
    held: list[str] = fresh(MODBUS_BUILD, configs)
    return held


def test_a_modbus_tcp_agent_never_loads_pymodbus_and_an_rtu_one_loads_it_first() -> None:
    assert modbus_imports("tcp", "tcp") == []
    assert "pymodbus" in modbus_imports("tcp", "rtu")
