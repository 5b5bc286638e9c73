"""The batch: columnar msgpack, Ed25519-signed, numbered and hash-chained.

The one module both the agent and the collector use. A batch travels as an envelope
`{"body": <msgpack bytes>, "sig": <64-byte Ed25519 signature over body>}`. The body is a map:

    v          1
    agent      agent id (str)
    seq        sequence number, strictly +1 per batch from 1, never reused
    prev       SHA-256 of the previous batch's body (32 zero bytes before seq 1)
    sealed_ns  seal time, ns since the Unix epoch (UTC)
    clock      {"synced": bool | None, "max_error_s": float | None[, "stepped_s": float]}
               stepped_s (only when the agent saw its wall clock step): the step in s
    sources    [[id, protocol, address, {labels}, accuracy | None[, {device}]], ...]
               device (only once the source has read its device's identity): what the
               device says it is, {"model": ..., "serial": ...} (agent/samples.py DEVICE_KEYS),
               at most 16 entries, keys of [a-z0-9_] up to 32, values up to 1024 characters
    metrics    [[name, unit, "gauge" | "counter", modulus | None, {labels}], ...]
    ts         int64 little-endian array: sample times, ns since the Unix epoch (UTC)
    src        uint32 little-endian array: index into sources
    met        uint32 little-endian array: index into metrics
    val        float64 little-endian array: values in the metric's unit
    dropped    [[first_seq, last_seq, samples, first_ts_ns, last_ts_ns], ...] batches the
               agent's full buffer discarded since the previous batch
    next_key   (only in the batch that announces a key rotation) the agent's next Ed25519
               public key, 32 raw bytes: it signs from seq + 1 on
    failures   (only when a target failed since the previous batch) [[source_id, ts_ns,
               reason], ...]: a read that failed, when, and why (no secrets), at most
               MAX_FAILURES entries, ids up to 128 and reasons up to 300 characters

Integers are int64 (the collector's store): seq and every `dropped` integer in
[0, 2^63), seq at most 2^63 - 2 (seq + 1 must fit), sealed_ns in [0, 2^63).

The hash of a batch is SHA-256 of its body bytes. Sealing happens once on the agent; every
retry sends the same bytes, so the collector deduplicates on (agent, seq).

Key rotation: the last batch signed by the old key names the new key in its body
(`next_key`), covered by the body's signature, so it cannot be stripped. Agents before
that put the statement in the envelope instead, `"rotate": {"key": <32 bytes>, "sig":
<64 bytes>}`, `sig` being the old key's signature over `ROTATION_DOMAIN + SHA-256(body) +
key`; collectors still accept it (docs/wire-format.md).
"""

from __future__ import annotations

import hashlib
import sys
from array import array
from collections.abc import Sequence
from typing import Any

import msgpack
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from dcmeter.agent.samples import SourceInfo

# The types and the decoder live in their own modules; this one names them all, so the
# collector imports the wire format from one module (pyproject.toml's `wire-only`).
from dcmeter.agent.wire_decode import Decoder, decode_body, peek
from dcmeter.agent.wire_types import (
    FAILURE_ID_MAX,
    FAILURE_REASON_MAX,
    GENESIS,
    INT64_END,
    MAX_FAILURES,
    MAX_SEQ,
    ROTATION_DOMAIN,
    VERSION,
    BadSignature,
    Batch,
    ClockStatus,
    Dropped,
    Failure,
    MetricEntry,
    Rotation,
    WireError,
)

__all__ = [
    "FAILURE_ID_MAX", "FAILURE_REASON_MAX", "GENESIS", "INT64_END", "MAX_FAILURES", "MAX_SEQ",
    "ROTATION_DOMAIN", "VERSION", "BadSignature", "Batch", "ClockStatus", "Decoder", "Dropped",
    "Failure", "MetricEntry", "Rotation", "WireError", "batch_hash", "decode_body",
    "encode_body", "envelope", "open_envelope", "open_signed", "pack_arrays", "peek",
    "rotation_message", "seal", "verify", "verify_rotation",
]

_LITTLE = sys.byteorder == "little"


def _to_bytes(arr: array[Any]) -> bytes:
    if not _LITTLE:  # pragma: no cover - big-endian hosts
        arr = array(arr.typecode, arr)
        arr.byteswap()
    return arr.tobytes()



def batch_hash(body: bytes) -> bytes:
    """SHA-256 of a batch body: the link the next batch's `prev` carries."""
    return hashlib.sha256(body).digest()


def encode_body(batch: Batch) -> bytes:
    """Pack a batch body into msgpack bytes."""
    body: dict[str, Any] = {
        "v": VERSION,
        "agent": batch.agent,
        "seq": batch.seq,
        "prev": batch.prev,
        "sealed_ns": batch.sealed_ns,
        "clock": _clock(batch.clock),
        "sources": [_source_entry(s) for s in batch.sources],
        "metrics": [
            [m.spec.name, m.spec.unit, m.spec.kind, m.spec.modulus, dict(m.labels)]
            for m in batch.metrics
        ],
        "ts": _to_bytes(batch.ts),
        "src": _to_bytes(batch.src),
        "met": _to_bytes(batch.met),
        "val": _to_bytes(batch.val),
        "dropped": [
            [d.first_seq, d.last_seq, d.samples, d.first_ts_ns, d.last_ts_ns]
            for d in batch.dropped
        ],
    }
    if batch.next_key is not None:  # absent otherwise: other batches stay byte-identical
        body["next_key"] = batch.next_key
    if batch.failures:  # absent otherwise: batches without failures stay byte-identical
        body["failures"] = [[f.source, f.ts_ns, f.reason] for f in batch.failures]
    packed: bytes = msgpack.packb(body, use_bin_type=True)
    return packed


def _source_entry(s: SourceInfo) -> list[Any]:
    entry: list[Any] = [s.id, s.protocol, s.address, dict(s.labels), s.accuracy]
    if s.device:  # absent otherwise: batches without it stay byte-identical to older agents'
        entry.append(dict(s.device))
    return entry


def _clock(c: ClockStatus) -> dict[str, Any]:
    out: dict[str, Any] = {"synced": c.synced, "max_error_s": c.max_error_s}
    if c.stepped_s is not None:
        out["stepped_s"] = c.stepped_s
    return out


def seal(batch: Batch, key: Ed25519PrivateKey) -> bytes:
    """Sign a batch body and wrap it in an envelope: the bytes sent on every retry."""
    return envelope(encode_body(batch), key)


def envelope(
    body: bytes, key: Ed25519PrivateKey, rotate_to: Ed25519PublicKey | None = None
) -> bytes:
    """Sign an encoded body and wrap it with its signature; with `rotate_to`, also announce
    the agent's next key in an envelope rotation statement signed by `key` (the legacy form:
    agents now name it in the body's `next_key`, which no one can strip)."""
    env: dict[str, Any] = {"body": body, "sig": key.sign(body)}
    if rotate_to is not None:
        new = rotate_to.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        env["rotate"] = {"key": new, "sig": key.sign(rotation_message(body, new))}
    packed: bytes = msgpack.packb(env, use_bin_type=True)
    return packed


def rotation_message(body: bytes, new_key: bytes) -> bytes:
    """What a rotation statement signs: the domain, the batch's hash, the new raw key."""
    return ROTATION_DOMAIN + batch_hash(body) + new_key


def open_envelope(raw: bytes) -> tuple[bytes, bytes]:
    """Split an envelope into (body, signature) or raise WireError."""
    body, sig, _ = open_signed(raw)
    return body, sig


def open_signed(raw: bytes) -> tuple[bytes, bytes, Rotation | None]:
    """Split an envelope into (body, signature, rotation statement or None); raise WireError."""
    try:
        env = msgpack.unpackb(raw, raw=False, strict_map_key=True)
    except Exception as exc:  # msgpack raises several unrelated types
        raise WireError(f"envelope is not msgpack: {type(exc).__name__}") from None
    if not isinstance(env, dict) or set(env) - {"rotate"} != {"body", "sig"}:
        raise WireError("envelope must be a map of 'body', 'sig' and optionally 'rotate'")
    body, sig = env["body"], env["sig"]
    if not isinstance(body, bytes) or not isinstance(sig, bytes) or len(sig) != 64:
        raise WireError("envelope: body must be bytes and sig 64 bytes")
    rot = env.get("rotate")
    if rot is None:
        return body, sig, None
    if (
        not isinstance(rot, dict)
        or set(rot) != {"key", "sig"}
        or not isinstance(rot["key"], bytes)
        or len(rot["key"]) != 32
        or not isinstance(rot["sig"], bytes)
        or len(rot["sig"]) != 64
    ):
        raise WireError("envelope: rotate must be {key: 32 bytes, sig: 64 bytes}")
    return body, sig, Rotation(rot["key"], rot["sig"])


def verify_rotation(public_key: Ed25519PublicKey, body: bytes, rotation: Rotation) -> None:
    """Raise BadSignature unless `rotation` is signed by `public_key` for this `body`."""
    try:
        public_key.verify(rotation.sig, rotation_message(body, rotation.key))
    except InvalidSignature:
        raise BadSignature("key rotation statement does not verify with the agent's key") from None


def verify(public_key: Ed25519PublicKey, body: bytes, sig: bytes) -> None:
    """Raise BadSignature unless `sig` is the agent's signature over `body`."""
    try:
        public_key.verify(sig, body)
    except InvalidSignature:
        raise BadSignature("signature does not verify with the enrolled key") from None



def pack_arrays(
    ts: Sequence[int], src: Sequence[int], met: Sequence[int], val: Sequence[float]
) -> tuple[array[int], array[int], array[int], array[float]]:
    """Turn parallel sequences into the typed arrays a Batch holds."""
    return array("q", ts), array("I", src), array("I", met), array("d", val)
