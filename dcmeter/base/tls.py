"""TLS for the HTTP clients (agent shipper, window and run commands): contexts and messages."""

from __future__ import annotations

import ssl
from pathlib import Path


def client_context(
    ca_file: Path | None = None,
    cert_file: Path | None = None,
    key_file: Path | None = None,
) -> ssl.SSLContext:
    """A client context verifying the server against `ca_file` (default: the system store),
    presenting `cert_file`/`key_file` when given (mutual TLS). Raises OSError or ssl.SSLError."""
    ctx = ssl.create_default_context(cafile=None if ca_file is None else str(ca_file))
    if cert_file is not None:
        ctx.load_cert_chain(str(cert_file), None if key_file is None else str(key_file))
    return ctx


def tls_cause(exc: BaseException) -> ssl.SSLError | None:
    """The ssl error behind an httpx/httpcore exception, if a TLS failure caused it."""
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        if isinstance(cur, ssl.SSLError):
            return cur
        seen.add(id(cur))
        cur = cur.__cause__ or cur.__context__
    return None


def describe(url: str, exc: BaseException, ca_file: Path | None) -> str | None:
    """One clear line for a TLS failure talking to `url`, or None if `exc` is not one."""
    err = tls_cause(exc)
    if err is None:
        return None
    against = str(ca_file) if ca_file is not None else "the system CA store"
    if isinstance(err, ssl.SSLCertVerificationError):
        reason = err.verify_message or err.reason or str(err)
        return f"collector {url}: certificate does not verify against {against}: {reason}"
    reason = err.reason or str(err)
    hint = ""
    if "CERTIFICATE_REQUIRED" in reason.upper() or "HANDSHAKE_FAILURE" in reason.upper():
        hint = " (the collector may require a client certificate: set client_cert_file)"
    return f"collector {url}: TLS handshake failed: {reason}{hint}"
