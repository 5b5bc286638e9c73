"""Verify a posted batch and store it once; every refusal has a precise status."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import structlog
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from dcmeter.agent import pubkey, wire
from dcmeter.base.configfile import ConfigError
from dcmeter.base.ratelimit import LogLimiter
from dcmeter.collectors.intake.agent_keys import KeyHistory
from dcmeter.collectors.storage import audit
from dcmeter.collectors.storage.ownership import Refused
from dcmeter.collectors.storage.store import Store

log = structlog.get_logger("dcmeter.collector.ingest")


@dataclass(frozen=True, slots=True)
class Outcome:
    """The HTTP status and JSON body to answer a posted batch with."""

    status: int
    body: dict[str, Any]


# A running collector reads its enrolled keys again (keys_dir) on an unknown agent or a
# signature that does not verify, at most this often, s: enrolment needs no restart.
RELOAD_EVERY_S = 5.0

# How far ahead of the collector's clock a batch's sample and seal times may be, ns: later
# times would land in windows not yet opened (an agent clock far off, or a forgery): 400
# "time_out_of_range", nothing stored. Past times are accepted: a buffer may ship days late,
# and a window only reads the samples of its own span.
MAX_AHEAD_NS = 24 * 3600 * 10**9


@dataclass
class Ingest:
    """Stateless checks in a fixed order, then one store transaction."""

    store: Store
    keyring: Mapping[str, Ed25519PublicKey]
    max_bytes: int
    accepted: Counter[str] = field(default_factory=Counter)
    rejected: Counter[str] = field(default_factory=Counter)
    # Reads the enrolled keys again (dcmeter.collectors.config.keyring); None: never.
    reload: Callable[[], Mapping[str, Ed25519PublicKey]] | None = None
    # The collector's wall clock, ns since the epoch (the time rule's reference).
    clock: Callable[[], int] = time.time_ns
    # One "batch refused" line per (reason, agent) a minute; every refusal is still counted.
    quiet: LogLimiter = field(default_factory=LogLimiter)
    # Decodes bodies, remembering each agent's checked source and metric tables.
    decoder: wire.Decoder = field(default_factory=wire.Decoder)
    history: KeyHistory = field(init=False)
    _reloaded: float = field(init=False, default=float("-inf"))

    def __post_init__(self) -> None:
        self.history = KeyHistory(self.store)
        self.history.enrol(self.keyring, "start")

    def _reload(self) -> bool:
        """Read the enrolled keys again if allowed now; True if it did."""
        now = time.monotonic()
        if self.reload is None or now - self._reloaded < RELOAD_EVERY_S:
            return False
        self._reloaded = now
        try:
            keyring = self.reload()
        except ConfigError as exc:
            log.error("enrolled keys not reloaded", error=str(exc))
            return False
        self.keyring = keyring
        self.history.enrol(keyring, "reload")
        return True

    def _caught_up(self) -> bool:
        """PostgreSQL, where replicas share the store: read the key history again (another
        replica may have recorded a rotation or an enrolment); True if it did."""
        if self.store.dialect != "postgresql":
            return False
        self.history.refresh()
        return True

    def _key(self, agent: str, seq: int) -> Ed25519PublicKey | None:
        return self.history.at(agent, seq) if agent in self.keyring else None

    def _verify(
        self, agent: str, seq: int, body: bytes, sig: bytes, rotation: wire.Rotation | None
    ) -> Outcome | None:
        """Check the agent is enrolled and the signatures over the raw body verify, before
        the body is decoded; a refusal, or None."""
        key = self._key(agent, seq)
        if key is None and (self._reload() or self._caught_up()):
            key = self._key(agent, seq)
        if key is None:
            return self._refuse(401, "unknown_agent", "agent is not enrolled", agent)
        try:
            try:
                wire.verify(key, body, sig)
            except wire.BadSignature:
                again = (self._key(agent, seq)
                         if self._reload() or self._caught_up() else None)
                if again is None:
                    raise
                key = again
                wire.verify(key, body, sig)
            if rotation is not None:
                wire.verify_rotation(key, body, rotation)
        except wire.BadSignature as exc:
            return self._refuse(403, "bad_signature", str(exc), agent)
        return None

    def _times(self, batch: wire.Batch) -> Outcome | None:
        """Refuse a batch with a sample or seal time more than 24 h ahead of the collector."""
        latest = max(batch.sealed_ns,
                     int(np.frombuffer(batch.ts, np.int64).max()) if len(batch.ts) else 0)
        if latest <= self.clock() + MAX_AHEAD_NS:
            return None
        return self._refuse(
            400, "time_out_of_range",
            "sample or seal time more than 24 h ahead of the collector's clock;"
            " check the agent's clock (NTP)",
            batch.agent,
        )

    def _refuse(self, status: int, reason: str, detail: str, agent: str | None) -> Outcome:
        self.rejected[reason] += 1
        self.store.record_rejection(time.time_ns(), status, reason, agent)
        if (left_out := self.quiet.allow((reason, agent))) is not None:
            log.warning("batch refused", status=status, reason=reason, detail=detail,
                        agent=agent, left_out=left_out)
        return Outcome(status, {"status": "rejected", "reason": reason, "detail": detail})

    def too_large(self, size: int) -> Outcome:
        """Refuse a batch over the size limit without reading it."""
        return self._refuse(413, "too_large", f"{size} > {self.max_bytes} bytes", None)

    def __call__(self, raw: bytes) -> Outcome:
        """Check size, envelope, agent and seq (peeked), key, signature, body, times, then
        store; answer accordingly. Nothing is decoded before the signature verifies."""
        if len(raw) > self.max_bytes:
            return self.too_large(len(raw))
        try:
            body, sig, rotation = wire.open_signed(raw)
            agent, seq = wire.peek(body)
        except wire.WireError as exc:
            return self._refuse(400, "malformed", str(exc), None)
        refused = self._verify(agent, seq, body, sig, rotation)
        if refused is not None:
            return refused
        try:
            batch = self.decoder(body)
            if (batch.agent, batch.seq) != (agent, seq):  # a key given twice in the map
                raise wire.WireError("body: 'agent' or 'seq' given twice with other values")
            new = _announced(batch, rotation)
        except wire.WireError as exc:
            return self._refuse(400, "malformed", str(exc), agent)
        refused = self._times(batch)
        if refused is not None:
            return refused
        try:
            state, chain = self.store.insert_batch(
                batch, wire.batch_hash(body), raw, time.time_ns(), new
            )
        except Refused as exc:  # conflict, chain, key, ownership or series cap: nothing kept
            return self._refuse(exc.status, exc.reason, exc.detail, batch.agent)
        if new is not None:
            self._rotated(batch, new, state)
        self.accepted[state] += 1
        if chain not in ("ok", ""):
            log.warning("hash chain not continuous", agent=batch.agent, seq=batch.seq, chain=chain)
        return Outcome(
            200, {"status": state, "agent": batch.agent, "seq": batch.seq, "samples": len(batch),
                  "chain": chain or None},
        )

    def _rotated(self, batch: wire.Batch, new: tuple[str, str], state: str) -> None:
        """Read the key history again after a batch announcing a key; log what became of it."""
        self.history.refresh()
        now = self.history.at(batch.agent, batch.seq + 1)
        if now is not None and pubkey.public_text(now) == new[0]:
            audit.key_rotated(batch.agent, batch.seq + 1, new[1], state)
        else:
            log.warning("key announced in a duplicate batch not recorded: the agent already"
                        " went on", agent=batch.agent, seq=batch.seq, key=new[1])


def _announced(batch: wire.Batch, rotation: wire.Rotation | None) -> tuple[str, str] | None:
    """The next key a batch announces (public key text, fingerprint): its body's `next_key`,
    or an older agent's verified envelope statement; raise WireError if they differ."""
    raw = batch.next_key
    if rotation is not None:
        if raw is not None and raw != rotation.key:
            raise wire.WireError("body next_key and envelope rotate name different keys")
        raw = rotation.key
    if raw is None:
        return None
    try:
        key = Ed25519PublicKey.from_public_bytes(raw)
    except ValueError:
        raise wire.WireError("next_key is not an Ed25519 public key") from None
    return pubkey.public_text(key), pubkey.fingerprint(key)
