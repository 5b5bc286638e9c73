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

from dcmeter.agent import pubkey, wire
from dcmeter.collectors.storage import audit
from dcmeter.collectors.storage.store import Store


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
            table.setdefault(agent, []).append((start, pubkey.parse_public(text)))
        self._keys = table

    def enrol(self, keyring: Mapping[str, Ed25519PublicKey], via: str = "start") -> None:
        """Record the enrolled keys the table does not hold yet; log each (audit, `via`:
        "start", or "reload" when a running collector reads its enrolled keys again)."""
        now = time.time_ns()
        for agent, key in keyring.items():
            fp = pubkey.fingerprint(key)
            start = self.store.enrol_key(agent, pubkey.public_text(key), fp, now)
            if start is not None:
                audit.agent_enrolled(agent, fp, start, "collector", via=via)
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
    """The outcome of re-verifying stored batches: signatures, links and missing seqs."""

    verified: int = 0
    failed: int = 0
    faults: list[str] = field(default_factory=list)
    links: int = 0  # links between consecutive stored seqs that hold
    breaks: int = 0  # links that do not (listed in `faults`)
    gaps: list[str] = field(default_factory=list)  # missing seqs: listed, not failures


@dataclass
class _Last:
    """The previous stored batch of the agent being audited."""

    agent: str = ""
    seq: int = 0
    digest: bytes | None = None  # SHA-256 of its body; None if it could not be read


def verify_stored(
    store: Store, agent: str | None = None,
    fallback: Mapping[str, Ed25519PublicKey] | None = None,
) -> Audit:
    """Re-verify every stored batch's raw envelope against the key in force at its seq;
    check the stored hash, that consecutive stored seqs link (each `prev` is the SHA-256 of
    its predecessor's body, seq 1's is GENESIS), list missing seqs, and check that every key
    added by rotation was announced by a verified batch."""
    history = KeyHistory(store, fallback)
    audit = Audit()
    announced: set[tuple[str, int, bytes]] = set()
    last = _Last()
    # Each agent's unchanged source and metric tables are checked once, not once a batch.
    decoder = wire.Decoder()
    for a, seq, digest, raw in store.raw_batches(agent):
        if a != last.agent:
            last = _Last(a)
        fault, batch, body_hash = _check(history, a, seq, digest, raw, announced, decoder)
        if fault is None:
            audit.verified += 1
        else:
            audit.failed += 1
            audit.faults.append(f"agent {a} seq {seq}: {fault}")
        if batch is not None:
            _link(audit, last, seq, batch.prev)
        last.seq, last.digest = seq, body_hash
    for a, text, start, _, _, via in store.agent_keys(agent):
        raw_key = pubkey.parse_public(text).public_bytes_raw()
        if via == "rotation" and (a, start - 1, raw_key) not in announced:
            audit.failed += 1
            audit.faults.append(
                f"agent {a}: key {pubkey.fingerprint(pubkey.parse_public(text))} valid from seq"
                f" {start} is not announced by a verified batch {start - 1}"
            )
    return audit


def _link(audit: Audit, last: _Last, seq: int, prev: bytes) -> None:
    """Check batch `seq`'s `prev` against the agent's previous stored batch `last`."""
    if last.seq < seq - 1:
        first = last.seq + 1
        audit.gaps.append(f"agent {last.agent}: seq {first}" + (
            f"-{seq - 1}" if seq - 1 > first else "") + " not stored")
    if seq == 1:
        expected: bytes | None = wire.GENESIS
    elif last.seq == seq - 1:
        expected = last.digest
    else:
        return  # the predecessor is missing: a gap, listed above
    if expected is None:
        return  # the predecessor could not be read: a fault listed for it
    if prev == expected:
        audit.links += 1
        return
    audit.breaks += 1
    audit.faults.append(
        f"agent {last.agent} seq {seq}: hash chain broken: prev is not the SHA-256 of "
        + ("GENESIS (seq 1)" if seq == 1 else f"the stored batch {seq - 1}'s body")
    )


def _check(
    history: KeyHistory, agent: str, seq: int, digest: bytes, raw: bytes,
    announced: set[tuple[str, int, bytes]], decoder: wire.Decoder,
) -> tuple[str | None, wire.Batch | None, bytes | None]:
    """Why stored batch (agent, seq) does not verify, or None if it does; its decoded body
    and the SHA-256 of its body, where readable."""
    try:
        body, sig, rotation = wire.open_signed(raw)
        batch = decoder(body)
    except wire.WireError as exc:
        return f"malformed: {exc}", None, None
    body_hash = wire.batch_hash(body)
    if (batch.agent, batch.seq) != (agent, seq):
        return f"body names agent {batch.agent} seq {batch.seq}", None, None
    if body_hash != bytes(digest):
        return "stored hash differs from the body's SHA-256", batch, body_hash
    key = history.at(agent, seq)
    if key is None:
        return "no key of this agent is in force at this seq", batch, body_hash
    try:
        wire.verify(key, body, sig)
        if batch.next_key is not None:
            announced.add((agent, seq, batch.next_key))
        if rotation is not None:
            wire.verify_rotation(key, body, rotation)
            announced.add((agent, seq, rotation.key))
    except wire.BadSignature as exc:
        return f"{exc} ({pubkey.fingerprint(key)})", batch, body_hash
    return None, batch, body_hash
