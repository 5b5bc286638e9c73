"""The agent's Ed25519 identity: created on first start, kept with mode 0600."""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
)

from dcmeter.base.configfile import ConfigError

KEY_FILE = "agent.key"
NEXT_FILE = "agent.key.next"  # made by `agent key rotate`; announced in the next batch


class KeyFileError(ConfigError):
    """The key file exists but cannot be used."""


def load_or_create(state_dir: Path, name: str = KEY_FILE) -> Ed25519PrivateKey:
    """Load the agent key from `state_dir`, creating it (mode 0600) if there is none."""
    path = state_dir / name
    if path.exists():
        return load(path)
    state_dir.mkdir(parents=True, exist_ok=True)
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
        f.flush()
        os.fsync(f.fileno())
    # link() fails if another process created the key meanwhile: then use theirs.
    try:
        os.link(tmp, path)
    except FileExistsError:
        pass
    finally:
        tmp.unlink(missing_ok=True)
    return load(path)


def load(path: Path) -> Ed25519PrivateKey:
    """Read a PEM Ed25519 private key."""
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError) as exc:
        raise KeyFileError(f"{path}: not a readable Ed25519 private key ({exc})") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyFileError(f"{path}: not an Ed25519 key")
    return key
