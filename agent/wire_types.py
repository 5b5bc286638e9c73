"""The batch's types, bounds and errors (agent/wire.py describes the format; it re-exports
everything here, so `from dcmeter.agent.wire import Batch` is the way to name them)."""

from __future__ import annotations

from array import array
from collections.abc import Mapping
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from dcmeter.agent.samples import MetricSpec, SourceInfo

VERSION = 1
GENESIS = bytes(32)
# The store's integers are int64: the largest seq (seq + 1 names the next key's first batch
# and the successor link) and the bound of every other integer of a body.
MAX_SEQ = 2**63 - 2
INT64_END = 2**63
# Bounds of the optional `failures` field: entries per batch, characters of an id, a reason.
MAX_FAILURES = 4096
FAILURE_ID_MAX = 128
FAILURE_REASON_MAX = 300


class WireError(ValueError):
    """The bytes are not a well-formed batch; str() says which part."""


class BadSignature(ValueError):
    """The signature does not verify with the agent's enrolled key."""


# Prefix of the message a rotation statement signs, so it can never pass for a batch body.
ROTATION_DOMAIN = b"dcmeter key rotation v1\0"


@dataclass(frozen=True, slots=True)
class Rotation:
    """A rotation statement: the agent's next public key (raw 32 bytes), signed by the old."""

    key: bytes
    sig: bytes

    def public_key(self) -> Ed25519PublicKey:
        """The announced key as a cryptography object."""
        return Ed25519PublicKey.from_public_bytes(self.key)


@dataclass(frozen=True, slots=True)
class ClockStatus:
    """Whether the agent's clock was NTP-synchronised when it sealed, and its error bound.

    `stepped_s`: the agent saw its wall clock step by this much (s, negative: backwards)
    since the previous batch; None: no step seen. Travels only when set, so batches without
    it are byte-identical to those of agents that predate it.
    """

    synced: bool | None = None
    max_error_s: float | None = None
    stepped_s: float | None = None


@dataclass(frozen=True, slots=True)
class Dropped:
    """Batches the agent discarded because its buffer was full."""

    first_seq: int
    last_seq: int
    samples: int
    first_ts_ns: int
    last_ts_ns: int


@dataclass(frozen=True, slots=True)
class Failure:
    """A target's failed read: its source id, when (ns since the Unix epoch), and why."""

    source: str
    ts_ns: int
    reason: str


@dataclass(frozen=True, slots=True)
class MetricEntry:
    """A metric as one source reports it: spec plus per-sample labels (a GPU, a port)."""

    spec: MetricSpec
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class Batch:
    """A decoded batch body."""

    agent: str
    seq: int
    prev: bytes
    sealed_ns: int
    clock: ClockStatus
    sources: list[SourceInfo]
    metrics: list[MetricEntry]
    ts: array[int]
    src: array[int]
    met: array[int]
    val: array[float]
    dropped: list[Dropped] = field(default_factory=list)
    # The agent's next public key (raw 32 bytes) in the batch announcing a rotation, else None.
    next_key: bytes | None = None
    # Targets' failed reads since the previous batch (absent from the body when none).
    failures: list[Failure] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.ts)

