"""Agent key rotation: announce the next key in a batch signed by the current one, then switch.

`dcmeter agent key rotate` leaves a new key in `agent.key.next`. The next batch the agent
seals is signed by the current key and names the new key in its body (`next_key`, agent/
wire.py): the announcement is covered by the batch's signature, so no one on the way can
strip it. Once that batch is committed to the buffer, the current key is kept as
`agent.key.retired-<seq>` (the last seq it signed) and the new key becomes `agent.key`.
When the collector acknowledges (2xx) that batch or any later one, the rotation is on
record there and the retired private key is deleted: a stolen retired key can then sign
nothing (the collector also refuses it for every seq from its successor's first on).
A crash between the commit and the switch is recovered at start: if a buffered batch
already announces the pending key (in its body, or in the envelope statement of agents
before next_key), the switch is completed instead of announced twice.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterable
from pathlib import Path

import structlog
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from dcmeter.agent import keys, pubkey, wire

log = structlog.get_logger("dcmeter.agent.keys")


def _raw(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )


def start_rotation(state_dir: Path) -> tuple[Ed25519PrivateKey, bool]:
    """Make the next key pair (mode 0600) unless one is pending; return it and whether new."""
    existed = (state_dir / keys.NEXT_FILE).exists()
    keys.load_or_create(state_dir)  # an agent without a key has nothing to rotate from
    return keys.load_or_create(state_dir, keys.NEXT_FILE), not existed


class Signer:
    """Signs batch bodies with the agent key, announcing and then using a pending next key."""

    def __init__(
        self, state_dir: Path,
        buffered: Callable[[], Iterable[tuple[int, bytes]]] = lambda: (),
    ) -> None:
        """Load the key; `buffered()` gives the (seq, envelope) batches still in the buffer,
        read only when a rotation is pending at start."""
        self.state_dir = state_dir
        self.key = keys.load_or_create(state_dir)
        self._announced: int | None = None  # seq whose body named the pending key
        self._announcing = False
        self._retired = self._retired_seqs()
        nxt = self._next()
        if nxt is not None:
            for seq, raw in buffered():
                if _announces(raw) == _raw(nxt):
                    self._announced = seq
            if self._announced is not None:
                self.sealed(self._announced)

    def _next(self) -> Ed25519PrivateKey | None:
        path = self.state_dir / keys.NEXT_FILE
        return keys.load(path) if path.exists() else None

    def _retired_seqs(self) -> set[int]:
        prefix = f"{keys.KEY_FILE}.retired-"
        return {
            int(p.name[len(prefix):]) for p in self.state_dir.glob(prefix + "*")
            if p.name[len(prefix):].isdigit()
        }

    def next_key(self) -> bytes | None:
        """The pending next key's raw public key, for the body of the batch being sealed
        (None: no rotation pending); that batch's `sealed()` then switches to it."""
        nxt = self._next()
        self._announcing = nxt is not None
        return None if nxt is None else _raw(nxt)

    def envelope(self, body: bytes) -> bytes:
        """Sign `body` with the current key."""
        return wire.envelope(body, self.key)

    def sealed(self, seq: int) -> None:
        """Batch `seq` is committed: if it announced the next key, switch to that key now."""
        if not self._announcing and self._announced != seq:
            return
        self._announcing, self._announced = False, None
        current, nxt = self.state_dir / keys.KEY_FILE, self.state_dir / keys.NEXT_FILE
        retired = self.state_dir / f"{keys.KEY_FILE}.retired-{seq}"
        old = pubkey.fingerprint(self.key.public_key())
        with contextlib.suppress(FileExistsError):
            os.link(current, retired)
        os.replace(nxt, current)
        self.key = keys.load(current)
        self._retired.add(seq)
        log.info(
            "agent key rotated", announced_in_seq=seq, old_key=old,
            new_key=pubkey.fingerprint(self.key.public_key()), kept_as=retired.name,
        )

    def acknowledged(self, seq: int) -> None:
        """The collector answered 2xx for batch `seq`: delete the retired keys whose
        rotation was announced in it or before (the collector has it on record)."""
        if not self._retired or min(self._retired) > seq:
            return
        for done in sorted(s for s in self._retired if s <= seq):
            path = self.state_dir / f"{keys.KEY_FILE}.retired-{done}"
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            self._retired.discard(done)
            log.info("retired agent key deleted: the collector acknowledged its rotation",
                     file=path.name, acknowledged_seq=seq)


def _announces(raw: bytes) -> bytes | None:
    """The next key a sealed batch announces: its body's next_key or envelope statement."""
    body, _, rot = wire.open_signed(raw)
    if rot is not None:
        return rot.key
    return wire.decode_body(body).next_key


def cmd_rotate(path: Path) -> int:
    """`dcmeter agent key rotate`: make the next key; the agent announces it in its next batch."""
    import sys

    from dcmeter.agent import config

    cfg = config.load(path)
    state = cfg.agent.state_dir
    current = keys.load_or_create(state)
    nxt, new = start_rotation(state)
    print(pubkey.public_text(nxt.public_key()))
    what = "new key made" if new else "a rotation is already pending; its key is"
    print(
        f"agent {cfg.agent.id}: {what} {pubkey.fingerprint(nxt.public_key())}; the agent"
        f" announces it in its next batch, signed by the current key"
        f" {pubkey.fingerprint(current.public_key())}, then signs with it",
        file=sys.stderr,
    )
    return 0
