"""An agent's public key as text: the one line an operator enrols, and its fingerprint.

Part of the wire format both sides share (docs/architecture.md): the agent prints the line
(`dcmeter agent key`), the collector parses it from its config and from enrolment, and logs,
reports and the audit trail name a key only by its fingerprint. The private key stays in
keys.py, which only the agent imports.
"""

from __future__ import annotations

import base64
import hashlib

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

PREFIX = "ed25519:"


def public_text(key: Ed25519PublicKey) -> str:
    """The public key as one line, `ed25519:<base64 of the 32 raw bytes>`."""
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return PREFIX + base64.b64encode(raw).decode()


def parse_public(text: str) -> Ed25519PublicKey:
    """Parse the one-line form `public_text` prints; raise ValueError if it is not one."""
    text = text.strip()
    if not text.startswith(PREFIX):
        raise ValueError(f"a public key must start with {PREFIX!r}")
    try:
        raw = base64.b64decode(text[len(PREFIX) :], validate=True)
    except ValueError:
        raise ValueError("public key: invalid base64") from None
    if len(raw) != 32:
        raise ValueError("public key: expected 32 bytes")
    return Ed25519PublicKey.from_public_bytes(raw)


def fingerprint(key: Ed25519PublicKey) -> str:
    """A short SHA-256 fingerprint of the public key, for logs and reports."""
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return "SHA256:" + base64.b64encode(hashlib.sha256(raw).digest()).decode().rstrip("=")[:16]
