"""Which public key verifies an agent's batch: enrolled keys and rotations, by sequence number.

Every key an agent has used stays in the store's `agent_keys` table with the first seq it
signs (`valid_from_seq`). A batch is verified with the key in force at its seq: the row with
the largest `valid_from_seq` not above it (the latest added among equals). Enrolled keys
(`[[agents]]`, `keys_dir`) are recorded as valid from seq 1 for a new agent, else from the
seq after its last stored batch; a verified rotation statement adds the announced key as
valid from the next seq (docs/tls.md).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from agent import keys, wire
from collectors.store import Store


class KeyHistory:
    """The keys of every agent over time, read from the store and kept in memory."""

    def __init__(
        self, store: Store, fallback: Mapping[str, Ed25519PublicKey] | None = None
    ) -> None:
        """`fallback`: keys for agents the table does not know (a store never served)."""
        self.store = store
        self.fallback = dict(fallback or {})
        self._keys: dict[str, list[tuple[int, Ed25519PublicKey]]] = {}
        self.refresh()

    def refresh(self) -> None:
        """Read the `agent_keys` table again."""
        table: dict[str, list[tuple[int, Ed25519PublicKey]]] = {}
        for agent, text, start, *_ in self.store.agent_keys():
            table.setdefault(agent, []).append((start, keys.parse_public(text)))
        self._keys = table

    def enrol(self, keyring: Mapping[str, Ed25519PublicKey]) -> None:
        """Record the enrolled keys the table does not hold yet."""
        now = time.time_ns()
        for agent, key in keyring.items():
            self.store.enrol_key(agent, keys.public_text(key), keys.fingerprint(key), now)
        self.refresh()

    def at(self, agent: str, seq: int) -> Ed25519PublicKey | None:
        """The key in force for `agent`'s batch `seq`, or None."""
        found = None if agent in self._keys else self.fallback.get(agent)
        for start, key in self._keys.get(agent, ()):
            if start <= seq:
                found = key
        return found


@dataclass
class Audit:
    """The outcome of re-verifying stored batches."""

    verified: int = 0
    failed: int = 0
    faults: list[str] = field(default_factory=list)


def verify_stored(
    store: Store, agent: str | None = None,
    fallback: Mapping[str, Ed25519PublicKey] | None = None,
) -> Audit:
    """Re-verify every stored batch's raw envelope against the key in force at its seq;
    check the stored hash and that every key added by rotation was announced."""
    history = KeyHistory(store, fallback)
    audit = Audit()
    announced: set[tuple[str, int, bytes]] = set()
    for a, seq, digest, raw in store.raw_batches(agent):
        fault = _check(history, a, seq, digest, raw, announced)
        if fault is None:
            audit.verified += 1
        else:
            audit.failed += 1
            audit.faults.append(f"agent {a} seq {seq}: {fault}")
    for a, text, start, _, _, via in store.agent_keys(agent):
        raw_key = keys.parse_public(text).public_bytes_raw()
        if via == "rotation" and (a, start - 1, raw_key) not in announced:
            audit.failed += 1
            audit.faults.append(
                f"agent {a}: key {keys.fingerprint(keys.parse_public(text))} valid from seq"
                f" {start} is not announced by a verified batch {start - 1}"
            )
    return audit


def _check(
    history: KeyHistory, agent: str, seq: int, digest: bytes, raw: bytes,
    announced: set[tuple[str, int, bytes]],
) -> str | None:
    """Why stored batch (agent, seq) does not verify, or None if it does."""
    try:
        body, sig, rotation = wire.open_signed(raw)
        batch = wire.decode_body(body)
    except wire.WireError as exc:
        return f"malformed: {exc}"
    if (batch.agent, batch.seq) != (agent, seq):
        return f"body names agent {batch.agent} seq {batch.seq}"
    if wire.batch_hash(body) != digest:
        return "stored hash differs from the body's SHA-256"
    key = history.at(agent, seq)
    if key is None:
        return "no key of this agent is in force at this seq"
    try:
        wire.verify(key, body, sig)
        if rotation is not None:
            wire.verify_rotation(key, body, rotation)
            announced.add((agent, seq, rotation.key))
    except wire.BadSignature as exc:
        return f"{exc} ({keys.fingerprint(key)})"
    return None
