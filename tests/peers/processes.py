"""dcmeter's own commands as peers of the end-to-end tests: the console script (or the
module), a daemon started with its output in a log, stopped with SIGTERM, and a wait for a
condition that fails at once, with the logs, when a daemon dies."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import httpx
import pytest

# The console script of this environment (.venv/bin/dcmeter), else the module.
_SCRIPT = Path(sys.executable).with_name("dcmeter")
DCMETER = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "dcmeter"]


def daemon(args: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    """Start `dcmeter *args` with stdout and stderr into `log`."""
    with log.open("wb") as f:
        return subprocess.Popen([*DCMETER, *args], stdout=f, stderr=subprocess.STDOUT, env=env)


def stop(proc: subprocess.Popen[bytes], wait_s: float = 30.0) -> None:
    """SIGTERM (the daemons drain and exit), then SIGKILL after `wait_s`."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(wait_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def wait_for(what: str, pred: Callable[[], object], procs: Sequence[subprocess.Popen[bytes]],
             logs: Sequence[Path], timeout: float = 60.0) -> None:
    """Poll `pred` every 0.2 s until it is true (an HTTP or file error counts as not yet);
    fail with the logs' tails when a daemon exits or `timeout` s pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        dead = [p for p in procs if p.poll() is not None]
        if dead:
            pytest.fail(f"{what}: a daemon exited ({dead[0].returncode}):\n"
                        + "\n".join(p.read_text()[-2000:] for p in logs if p.exists()))
        try:
            if pred():
                return
        except (httpx.HTTPError, OSError, ValueError):
            pass
        time.sleep(0.2)
    pytest.fail(f"{what}: not within {timeout:g} s:\n"
                + "\n".join(p.read_text()[-2000:] for p in logs if p.exists()))
