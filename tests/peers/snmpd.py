"""net-snmp's snmpd as a test peer, and net-snmp's command-line tools as independent clients.

`start_snmpd` writes a private snmpd.conf into a directory, starts
`SNMP_PERSISTENT_DIR=DIR/state snmpd -f -C -c FILE -m "" -Lf LOG -p PIDFILE` on a free UDP
port of 127.0.0.1 with a v2c community and SNMPv3 users, and waits until it answers.
`override OID TYPE VALUE` lines make the agent serve chosen values (ifAlias, hrProcessorLoad,
ifSpeed, a Counter32); `exclude_modules` (snmpd `-I -a,b`) hides MIB modules, e.g. ifXTable
for an agent without 64-bit counters.

net-snmp facts these tests rely on (snmpd 5.9.3): ifIndex is the kernel's ifindex; the
interface table is cached for about 3 s; hrProcessorLoad appears only about a minute after
the agent starts (it averages over a minute of history), so tests serve it by `override`;
with `-C`, snmpd reads its persistent state only when that file is named with `-c`.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SYS_UPTIME = "1.3.6.1.2.1.1.3.0"
IF_TABLE = "1.3.6.1.2.1.2.2"
# NET-SNMP-AGENT-MIB::nsCacheTimeout, indexed by the cached table's OID (seconds).
NS_CACHE_TIMEOUT = "1.3.6.1.4.1.8072.1.5.3.1.2"


@dataclass(frozen=True)
class V3User:
    """An SNMPv3 user; protocol names as net-snmp spells them (SHA-256, AES-256, ...)."""

    name: str
    auth_protocol: str | None = None
    auth_password: str | None = None
    priv_protocol: str | None = None
    priv_password: str | None = None

    @property
    def level(self) -> str:
        """The user's security level."""
        if self.priv_protocol:
            return "authPriv"
        return "authNoPriv" if self.auth_protocol else "noAuthNoPriv"

    def config_lines(self) -> list[str]:
        """snmpd.conf lines that create the user and give it read access at its level."""
        parts = [f"createUser {self.name}"]
        if self.auth_protocol:
            parts.append(f'{self.auth_protocol} "{self.auth_password}"')
        if self.priv_protocol:
            parts.append(f'{self.priv_protocol} "{self.priv_password}"')
        minimum = {"authPriv": "priv", "authNoPriv": "auth", "noAuthNoPriv": "noauth"}[self.level]
        return [" ".join(parts), f"rouser {self.name} {minimum}"]

    def cli_args(self) -> list[str]:
        """snmpget/snmpwalk options for this user."""
        args = ["-v3", "-l", self.level, "-u", self.name]
        if self.auth_protocol:
            args += ["-a", self.auth_protocol, "-A", str(self.auth_password)]
        if self.priv_protocol:
            args += ["-x", self.priv_protocol, "-X", str(self.priv_password)]
        return args

    def source_fields(self) -> dict[str, Any]:
        """The matching keys of an `snmp` source config."""
        fields: dict[str, Any] = {
            "version": "3",
            "username": self.name,
            "security_level": self.level,
        }
        if self.auth_protocol:
            fields |= {"auth_protocol": self.auth_protocol, "auth_password": self.auth_password}
        if self.priv_protocol:
            fields |= {"priv_protocol": self.priv_protocol, "priv_password": self.priv_password}
        return fields


# One user per combination the source is tested with; passwords differ per user.
USERS: tuple[V3User, ...] = (
    V3User("dcm-sha-aes", "SHA", "auth-pass-sha", "AES", "priv-pass-aes"),
    V3User("dcm-sha256-aes", "SHA-256", "auth-pass-sha256", "AES", "priv-pass-aes128"),
    V3User("dcm-sha512-aes256", "SHA-512", "auth-pass-sha512", "AES-256", "priv-pass-aes256"),
    V3User("dcm-sha224-aes192c", "SHA-224", "auth-pass-sha224", "AES-192-C", "priv-pass-aes192c"),
    V3User("dcm-md5-des", "MD5", "auth-pass-md5", "DES", "priv-pass-des"),
    V3User("dcm-auth-only", "SHA-384", "auth-pass-sha384"),
)


def free_udp_port() -> int:
    """A UDP port on loopback that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def tool(name: str) -> str:
    """The path of a net-snmp program; fails (never skips) when it is not installed."""
    path = shutil.which(name)
    if path is None and Path(f"/usr/sbin/{name}").exists():
        path = f"/usr/sbin/{name}"
    if path is None:
        raise RuntimeError(f"{name} not found: apt-get install -y snmpd snmp")
    return path


def loopback_ifindex() -> int:
    """The kernel's ifindex of `lo`, which net-snmp serves as lo's ifIndex."""
    return int(Path("/sys/class/net/lo/ifindex").read_text())


def quote(value: str | int) -> str:
    """An override value as snmpd.conf wants it (strings in double quotes)."""
    return f'"{value}"' if isinstance(value, str) else str(value)


@dataclass
class Snmpd:
    """A running snmpd on 127.0.0.1:port with its directory, community and users."""

    directory: Path
    port: int
    community: str
    users: tuple[V3User, ...]
    overrides: list[tuple[str, str, str | int]]
    extra_config: list[str]
    exclude_modules: list[str]
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def user(self, name: str) -> V3User:
        """The configured user of that name."""
        return next(u for u in self.users if u.name == name)

    def write_config(self) -> Path:
        """Write snmpd.conf for the current settings; return its path."""
        lines = [
            f"agentAddress udp:127.0.0.1:{self.port}",
            f"rocommunity {self.community} 127.0.0.1",
            "dontLogTCPWrappersConnects yes",
        ]
        for user in self.users:
            lines += user.config_lines()
        lines += [f"override {oid} {kind} {quote(value)}" for oid, kind, value in self.overrides]
        lines += self.extra_config
        path = self.directory / "snmpd.conf"
        path.write_text("\n".join(lines) + "\n")
        return path

    def start(self, timeout_s: float = 15.0) -> None:
        """Start snmpd on the configured port and wait until it answers a v2c GET."""
        config = self.write_config()
        log = self.directory / "snmpd.log"
        log.unlink(missing_ok=True)
        # -C skips every other config file, the agent's own persistent state too: name that
        # file after the first run, so a restart keeps the engine ID and counts engineBoots
        # up, as a rebooted switch does.
        files = [config, *[p for p in [self.directory / "state" / "snmpd.conf"] if p.exists()]]
        cmd = [tool("snmpd"), "-f", "-C", "-c", ",".join(map(str, files)), "-m", ""]
        cmd += ["-Lf", str(log), "-p", str(self.directory / "snmpd.pid")]
        # smux would fight other agents for TCP port 199; it is not needed here.
        cmd += ["-I", "-" + ",".join(["smux", *self.exclude_modules])]
        env = {**os.environ, "SNMP_PERSISTENT_DIR": str(self.directory / "state")}
        self.process = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout_s
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"snmpd exited ({self.process.returncode}): {self.log_text()}")
            if self.cli("snmpget", SYS_UPTIME, timeout_s=0.3).returncode == 0:
                return
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"snmpd did not answer within {timeout_s} s: {self.log_text()}")
            time.sleep(0.05)

    def stop(self) -> None:
        """Stop snmpd (SIGTERM, then SIGKILL after 5 s)."""
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)
        self.process = None

    def restart(
        self, overrides: list[tuple[str, str, str | int]] | None = None, new_engine_id: bool = False
    ) -> None:
        """Stop and start again on the same port: same engine ID with engineBoots one up, as
        after a reboot, or with its state wiped and a new engine ID, as a replaced device."""
        self.stop()
        if overrides is not None:
            self.overrides = overrides
        if new_engine_id:
            shutil.rmtree(self.directory / "state", ignore_errors=True)
        self.start()

    def engine(self) -> tuple[str, int]:
        """snmpEngineID (hex) and snmpEngineBoots, as snmpget reads them."""
        engine_id = self.cli("snmpget", "1.3.6.1.6.3.10.2.1.1.0").stdout  # hex, may wrap
        boots = self.get("1.3.6.1.6.3.10.2.1.2.0")["1.3.6.1.6.3.10.2.1.2.0"]
        return " ".join(engine_id.split()[1:]), int(boots)

    def log_text(self) -> str:
        """What snmpd wrote to its log so far."""
        path = self.directory / "snmpd.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def cli(
        self, program: str, *oids: str, user: V3User | None = None, timeout_s: float = 2.0
    ) -> subprocess.CompletedProcess[str]:
        """Run snmpget/snmpwalk against this agent (v2c, or v3 as `user`), numeric output."""
        auth = user.cli_args() if user else ["-v2c", "-c", self.community]
        # Numeric OIDs, bare values, raw timeticks, enums as numbers; one try.
        output = ["-m", "", "-Oqn", "-Ot", "-Oe", "-t", str(timeout_s), "-r", "0"]
        cmd = [tool(program), *auth, *output, f"udp:127.0.0.1:{self.port}", *oids]
        env = {**os.environ, "SNMP_PERSISTENT_DIR": str(self.directory / "cli")}
        return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=30, check=False)

    def set_cache_timeout(self, table: str, seconds: int, write_community: str) -> None:
        """Set snmpd's cache timeout of a MIB table (NET-SNMP-AGENT-MIB nsCacheTimeout) with
        snmpset; the agent must have `rwcommunity write_community 127.0.0.1` in its config.
        The interface table is cached 3 s by default: its counters then move in 3 s steps."""
        cmd = [tool("snmpset"), "-v2c", "-c", write_community, "-m", "", "-t", "2", "-r", "1",
               f"udp:127.0.0.1:{self.port}", f"{NS_CACHE_TIMEOUT}.{table}", "i", str(seconds)]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=30, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"snmpset of the cache timeout failed: {done.stderr.strip()}")

    def get(self, *oids: str, user: V3User | None = None) -> dict[str, str]:
        """snmpget: numeric OID (no leading dot) -> value as printed (strings unquoted)."""
        done = self.cli("snmpget", *oids, user=user)
        if done.returncode != 0:
            raise RuntimeError(f"snmpget failed: {done.stderr.strip()}")
        return parse(done.stdout)

    def walk(self, oid: str, user: V3User | None = None) -> dict[str, str]:
        """snmpwalk of a subtree: numeric OID -> value as printed."""
        done = self.cli("snmpwalk", oid, user=user)
        if done.returncode != 0:
            raise RuntimeError(f"snmpwalk failed: {done.stderr.strip()}")
        # An empty subtree comes back as one "No Such Instance/Object" line for `oid` itself.
        return {k: v for k, v in parse(done.stdout).items() if not v.startswith("No Such ")}


def parse(output: str) -> dict[str, str]:
    """Lines of `-Oqn` output ('.1.3.6 value') -> {'1.3.6': 'value'}."""
    values: dict[str, str] = {}
    for line in output.splitlines():
        oid, _, value = line.partition(" ")
        if oid.startswith("."):
            values[oid[1:]] = value.strip().strip('"')
    return values


def start_snmpd(
    directory: Path,
    *,
    community: str | None = None,
    users: Iterable[V3User] = USERS,
    overrides: Sequence[tuple[str, str, str | int]] = (),
    extra_config: Sequence[str] = (),
    exclude_modules: Sequence[str] = (),
) -> Snmpd:
    """Start snmpd in `directory` on a free UDP port (another one if that port got taken)."""
    directory.mkdir(parents=True, exist_ok=True)
    last: Exception | None = None
    for _ in range(5):
        agent = Snmpd(
            directory,
            free_udp_port(),
            community or f"dcm-{secrets.token_hex(6)}",
            tuple(users),
            list(overrides),
            list(extra_config),
            list(exclude_modules),
        )
        try:
            agent.start()
            return agent
        except RuntimeError as exc:  # most likely the port was taken in between
            last = exc
    raise RuntimeError(f"snmpd would not start: {last}")
