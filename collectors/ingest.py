"""Verify a posted batch and store it once; every refusal has a precise status."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import structlog
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from agent import wire
from collectors.store import Store

log = structlog.get_logger("dcmeter.collector.ingest")


@dataclass(frozen=True, slots=True)
class Outcome:
    """The HTTP status and JSON body to answer a posted batch with."""

    status: int
    body: dict[str, Any]


@dataclass
class Ingest:
    """Stateless checks in a fixed order, then one store transaction."""

    store: Store
    keyring: Mapping[str, Ed25519PublicKey]
    max_bytes: int
    accepted: Counter[str] = field(default_factory=Counter)
    rejected: Counter[str] = field(default_factory=Counter)

    def _refuse(self, status: int, reason: str, detail: str, agent: str | None) -> Outcome:
        self.rejected[reason] += 1
        self.store.record_rejection(time.time_ns(), status, reason, agent)
        log.warning("batch refused", status=status, reason=reason, detail=detail, agent=agent)
        return Outcome(status, {"status": "rejected", "reason": reason, "detail": detail})

    def too_large(self, size: int) -> Outcome:
        """Refuse a batch over the size limit without reading it."""
        return self._refuse(413, "too_large", f"{size} > {self.max_bytes} bytes", None)

    def __call__(self, raw: bytes) -> Outcome:
        """Check size, envelope, body, agent, signature, then store; answer accordingly."""
        if len(raw) > self.max_bytes:
            return self.too_large(len(raw))
        try:
            body, sig = wire.open_envelope(raw)
            batch = wire.decode_body(body)
        except wire.WireError as exc:
            return self._refuse(400, "malformed", str(exc), None)
        key = self.keyring.get(batch.agent)
        if key is None:
            return self._refuse(401, "unknown_agent", "agent is not enrolled", batch.agent)
        try:
            wire.verify(key, body, sig)
        except wire.BadSignature as exc:
            return self._refuse(403, "bad_signature", str(exc), batch.agent)
        state, chain = self.store.insert_batch(batch, wire.batch_hash(body), raw, time.time_ns())
        if state == "conflict":
            return self._refuse(
                409, "seq_conflict", f"seq {batch.seq} already stored with other content",
                batch.agent,
            )
        self.accepted[state] += 1
        if chain not in ("ok", ""):
            log.warning("hash chain not continuous", agent=batch.agent, seq=batch.seq, chain=chain)
        return Outcome(
            200, {"status": state, "agent": batch.agent, "seq": batch.seq, "samples": len(batch),
                  "chain": chain or None},
        )
