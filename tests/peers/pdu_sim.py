"""snmpsim serving recorded PDU walks (tests/peers/pdu_walks/*.snmprec) as a test peer.

`start_snmpsim` copies the walks into a world-readable directory, starts
`snmpsim-command-responder` on a free UDP port of 127.0.0.1 and waits until it answers. Each
walk is served under the community named as its file (`apc_rpdu2.snmprec` -> community
`apc_rpdu2`). net-snmp's snmpget/snmpwalk (tests/peers/snmpd.py `tool`, `parse`) read the same
agent as the independent client.

snmpsim refuses to run as root: it then drops to nobody/nogroup before it reads its data, so
the data and cache directories must be readable by nobody. The Python standard library of
this machine may sit under /root (pyenv), which nobody cannot read, so the responder is
started through a small prelude that imports (and settles) the dbm module it needs lazily.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.peers.snmpd import free_udp_port, parse, tool

WALKS = Path(__file__).parent / "pdu_walks"
SYS_UPTIME = "1.3.6.1.2.1.1.3.0"

# Imports dbm (and opens one file, so dbm picks its backend) while the standard library is
# still readable, then runs snmpsim's responder with the arguments after `--`.
PRELUDE = """
import dbm, dbm.dumb, sys
dbm.open(sys.argv[1], "n").close()
from snmpsim.commands import responder
sys.argv = ["snmpsim-command-responder", *sys.argv[2:]]
responder.main()
"""


@dataclass
class Snmpsim:
    """A running snmpsim on 127.0.0.1:port serving the walks in `directory`."""

    directory: Path
    port: int
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def cli(self, program: str, community: str, *oids: str) -> subprocess.CompletedProcess[str]:
        """snmpget/snmpwalk (v2c) against this agent: numeric OIDs, bare values, one try."""
        cmd = [tool(program), "-v2c", "-c", community, "-m", "", "-Oqn", "-Ot", "-Oe",
               "-t", "2", "-r", "1", f"udp:127.0.0.1:{self.port}", *oids]
        env = {**os.environ, "SNMP_PERSISTENT_DIR": str(self.directory / "cli")}
        return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=30, check=False)

    def get(self, community: str, *oids: str) -> dict[str, str]:
        """snmpget: numeric OID (no leading dot) -> value as printed (strings unquoted)."""
        done = self.cli("snmpget", community, *oids)
        if done.returncode != 0:
            raise RuntimeError(f"snmpget failed: {done.stderr.strip()}")
        return parse(done.stdout)

    def walk(self, community: str, oid: str) -> dict[str, str]:
        """snmpwalk of a subtree: numeric OID -> value as printed."""
        done = self.cli("snmpwalk", community, oid)
        if done.returncode != 0:
            raise RuntimeError(f"snmpwalk failed: {done.stderr.strip()}")
        return {k: v for k, v in parse(done.stdout).items() if not v.startswith("No Such ")}

    def log_text(self) -> str:
        """What the responder wrote so far."""
        path = self.directory / "snmpsim.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    def stop(self) -> None:
        """Stop the responder (SIGTERM, then SIGKILL after 5 s) and remove its directory."""
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
            self.process = None
        shutil.rmtree(self.directory, ignore_errors=True)


def start_snmpsim(timeout_s: float = 30.0, extra: dict[str, str] | None = None) -> Snmpsim:
    """Start snmpsim on a free UDP port serving every walk, and `extra` walks (community ->
    snmprec text; snmpsim learns its communities at start); wait until it answers."""
    directory = Path(tempfile.mkdtemp(prefix="dcm-snmpsim-"))
    directory.chmod(0o755)
    data = directory / "data"
    data.mkdir(mode=0o755)
    for walk in WALKS.glob("*.snmprec"):
        shutil.copy(walk, data / walk.name)
        (data / walk.name).chmod(0o644)
    for community, text in (extra or {}).items():
        (data / f"{community}.snmprec").write_text(text)
        (data / f"{community}.snmprec").chmod(0o644)
    cache = directory / "cache"
    cache.mkdir()
    cache.chmod(0o777)
    agent = Snmpsim(directory, free_udp_port())
    args = [f"--data-dir={data}", f"--cache-dir={cache}", "--logging-method=stderr",
            f"--agent-udpv4-endpoint=127.0.0.1:{agent.port}"]
    if os.geteuid() == 0:
        args += ["--process-user=nobody", "--process-group=nogroup"]
    log = (directory / "snmpsim.log").open("wb")
    agent.process = subprocess.Popen(
        [sys.executable, "-c", PRELUDE, str(directory / "dbm-probe"), *args],
        stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + timeout_s
    while True:
        if agent.process.poll() is not None:
            text = agent.log_text()
            agent.process = None
            agent.stop()
            raise RuntimeError(f"snmpsim exited: {text}")
        if agent.cli("snmpget", "apc_rpdu2", SYS_UPTIME).returncode == 0:
            return agent
        if time.monotonic() > deadline:
            text = agent.log_text()
            agent.stop()
            raise RuntimeError(f"snmpsim did not answer within {timeout_s} s: {text}")
        time.sleep(0.2)
