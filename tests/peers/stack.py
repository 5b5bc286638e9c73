"""A simulated site as processes, for the end-to-end tests: `dcmeter simulate` serving the
devices and writing the agent config and site file, a collector (`dcmeter collector serve`)
with the agent's key enrolled and an engineer's token, and the agent (`dcmeter agent run`),
started in that order, each waited for, stopped in reverse."""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from conftest import ROOT, free_port

from dcmeter.agent import keys, pubkey
from tests.peers.processes import DCMETER, daemon, stop, wait_for

CLI_TIMEOUT_S = 90.0


def stack_env() -> dict[str, str]:
    """This environment without a token or collector of the caller's, the source tree first."""
    env = {k: v for k, v in os.environ.items() if k not in ("DCMETER_TOKEN", "DCMETER_COLLECTOR")}
    env.update(COLUMNS="120", PYTHONPATH=str(ROOT))
    return env


@dataclass
class SimStack:
    """The running site: where the collector listens, the files written, the token."""

    tmp: Path
    url: str
    env: dict[str, str]
    agent_cfg: Path
    site: Path
    written_site: str  # the site file as the simulator wrote it, before `site_extra`
    token: Path = field(init=False)
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    logs: list[Path] = field(default_factory=list)

    def window(self, *argv: str) -> subprocess.CompletedProcess[str]:
        """`dcmeter window ARGV[0] --collector URL --token-file TOKEN ARGV[1:]`."""
        full = [*DCMETER, "window", argv[0], "--collector", self.url, "--token-file",
                str(self.token), *argv[1:]]
        return subprocess.run(full, capture_output=True, text=True, env=self.env,
                              cwd=self.tmp, timeout=CLI_TIMEOUT_S)


@contextlib.contextmanager
def sim_stack(tmp: Path, agent_id: str, simulate: str, site_extra: str = "") -> Iterator[SimStack]:
    """Run a simulated site in `tmp`: `simulate` is the simulate file's text after the
    `[simulate]` keys this sets (agent_id, a 1 s interval, the collector's URL): more
    `[simulate]` keys, then `[site]`; `site_extra` is appended to the written site file before
    the collector reads it. Yields once the collector has stored the agent's first samples."""
    env, port = stack_env(), free_port()
    url = f"http://127.0.0.1:{port}"
    sim_cfg, agent_cfg, site = (tmp / n for n in ("sim.toml", "agent.toml", "site.toml"))
    sim_cfg.write_text(f'[simulate]\nagent_id = "{agent_id}"\ninterval_s = 1\n'
                       f'collector_url = "{url}"\n' + simulate)
    logs = [tmp / n for n in ("simulate.log", "collector.log", "agent.log")]
    procs: list[subprocess.Popen[bytes]] = []
    try:
        procs.append(daemon(["simulate", "-c", str(sim_cfg), "--agent-config", str(agent_cfg),
                             "--site-file", str(site)], logs[0], env))
        wait_for("simulate", lambda: "devices on" in logs[0].read_text(), procs, logs)
        stack = SimStack(tmp, url, env, agent_cfg, site, site.read_text(), procs=procs,
                         logs=logs)
        site.write_text(stack.written_site + site_extra)
        key = keys.load_or_create(tmp / "agent.toml.state")  # the written config's state dir
        (tmp / "agents").mkdir()
        (tmp / "agents" / f"{agent_id}.pub").write_text(pubkey.public_text(key.public_key()) + "\n")
        collector_cfg = tmp / "collector.toml"
        collector_cfg.write_text(
            f'[collector]\nhost = "127.0.0.1"\nport = {port}\nstore = "collector.sqlite"\n'
            'site = "site.toml"\nkeys_dir = "agents"\n')
        procs.append(daemon(["collector", "serve", "-c", str(collector_cfg)], logs[1], env))
        wait_for("collector", lambda: httpx.get(f"{url}/api/v1/health").is_success, procs, logs)
        made = subprocess.run([*DCMETER, "collector", "token", "create", "--role", "engineer",
                               "-c", str(collector_cfg)], capture_output=True, text=True, env=env,
                              timeout=CLI_TIMEOUT_S)
        assert made.returncode == 0, made.stderr
        stack.token = tmp / "engineer.token"
        stack.token.write_text(made.stdout.strip() + "\n")
        stack.token.chmod(0o600)
        procs.append(daemon(["agent", "run", "-c", str(agent_cfg)], logs[2], env))
        wait_for("first samples",
                 lambda: httpx.get(f"{url}/api/v1/health").json()["samples"] > 0, procs, logs)
        yield stack
    finally:
        for p in reversed(procs):
            stop(p)
