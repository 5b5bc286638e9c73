"""systemd's sd_notify protocol in pure Python: readiness, watchdog pings, status lines.

A service started with Type=notify gets `NOTIFY_SOCKET` (a path, or an abstract socket
name starting with '@') and, with WatchdogSec=, `WATCHDOG_USEC` and `WATCHDOG_PID`. It
sends newline-separated `KEY=value` datagrams there: READY=1, WATCHDOG=1, STATUS=…,
RELOADING=1, STOPPING=1 (sd_notify(3)). Without `NOTIFY_SOCKET` every call does nothing.
A failed send is logged once and never raises: losing a status line must not stop a service.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Mapping

import structlog

log = structlog.get_logger("dcmeter.base.sdnotify")


def _address(raw: str) -> str | None:
    """The socket address of a NOTIFY_SOCKET value; '@' names an abstract socket."""
    if raw.startswith("@"):
        return "\0" + raw[1:]
    if raw.startswith("/"):
        return raw
    return None  # vsock addresses (vsock:CID:PORT) are for VMs: not supported here


class Notifier:
    """Sends sd_notify datagrams to `$NOTIFY_SOCKET` (or `address`); a no-op without one."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        raw = env.get("NOTIFY_SOCKET", "")
        self.address = _address(raw) if raw else None
        if raw and self.address is None:
            log.warning("NOTIFY_SOCKET not understood, not notifying", notify_socket=raw)
        self._sock: socket.socket | None = None
        self._failed = False

    @property
    def enabled(self) -> bool:
        """Whether a notification socket was given."""
        return self.address is not None

    def notify(self, *fields: str) -> bool:
        """Send `fields` ("READY=1", "STATUS=…") as one datagram; return whether it went out."""
        if self.address is None or not fields:
            return False
        data = "\n".join(fields).encode()
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                # Never block the event loop on a full queue: drop the datagram instead.
                self._sock.setblocking(False)
            self._sock.sendto(data, self.address)
        except OSError as exc:
            if not self._failed:
                self._failed = True
                log.warning(
                    "cannot notify systemd", notify_socket=self.address.replace("\0", "@"),
                    error=f"{type(exc).__name__}: {exc}",
                )
            return False
        return True

    def close(self) -> None:
        """Close the socket (a later notify opens it again)."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def watchdog_interval(environ: Mapping[str, str] | None = None) -> float | None:
    """Seconds between WATCHDOG=1 pings: half of `$WATCHDOG_USEC`; None when not asked.

    `WATCHDOG_PID`, when set, must be this process (as sd_watchdog_enabled(3) checks):
    a child that inherited the variables is not the one being watched.
    """
    env = os.environ if environ is None else environ
    try:
        usec = int(env.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    if usec <= 0:
        return None
    pid = env.get("WATCHDOG_PID")
    if pid is not None:
        try:
            if int(pid) != os.getpid():
                return None
        except ValueError:
            return None
    return usec / 2 / 1e6


async def watchdog(notifier: Notifier, interval_s: float) -> None:
    """Send WATCHDOG=1 every `interval_s` from the running event loop, until cancelled.

    Running as a task of the service's own loop is the point: a loop that is stuck stops the
    pings, and systemd restarts the service after WatchdogSec.
    """
    while True:
        notifier.notify("WATCHDOG=1")
        await asyncio.sleep(interval_s)
