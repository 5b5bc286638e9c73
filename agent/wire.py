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
import io
import math
import sys
from array import array
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgpack
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from dcmeter.agent.samples import DEVICE_MAX_ENTRIES, DEVICE_MAX_VALUE, MetricSpec, SourceInfo

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
_LITTLE = sys.byteorder == "little"


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


def _to_bytes(arr: array[Any]) -> bytes:
    if not _LITTLE:  # pragma: no cover - big-endian hosts
        arr = array(arr.typecode, arr)
        arr.byteswap()
    return arr.tobytes()


def _from_bytes(typecode: str, raw: object, name: str) -> array[Any]:
    if not isinstance(raw, bytes):
        raise WireError(f"{name}: expected bytes")
    arr = array(typecode)
    if len(raw) % arr.itemsize:
        raise WireError(f"{name}: length {len(raw)} is not a multiple of {arr.itemsize}")
    arr.frombytes(raw)
    if not _LITTLE:  # pragma: no cover
        arr.byteswap()
    return arr


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


def _need(m: Mapping[str, Any], key: str, kind: type | tuple[type, ...]) -> Any:
    if key not in m:
        raise WireError(f"body: missing {key!r}")
    value = m[key]
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is int):
        raise WireError(f"body: {key!r} has the wrong type")
    return value


def _labels(raw: object, where: str) -> dict[str, str]:
    if not isinstance(raw, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in raw.items()
    ):
        raise WireError(f"{where}: labels must map strings to strings")
    return raw


def _opt_float(raw: object, where: str) -> float | None:
    if raw is None:
        return None
    if isinstance(raw, bool) or not isinstance(raw, int | float) or not math.isfinite(raw):
        raise WireError(f"{where}: expected a finite number or nil")
    return float(raw)


_DEVICE_KEY_MAX = 32


def _device(raw: object, where: str) -> dict[str, str]:
    """A source entry's `device` map, bounded: a device's strings are the agent's to send,
    but never unbounded into the collector's store and report."""
    device = _labels(raw, f"{where} device")
    if len(device) > DEVICE_MAX_ENTRIES:
        raise WireError(f"{where}: device has {len(device)} entries, at most"
                        f" {DEVICE_MAX_ENTRIES}")
    for key, value in device.items():
        if not (0 < len(key) <= _DEVICE_KEY_MAX and key.isascii()
                and all(c.isdigit() or c.islower() or c == "_" for c in key)):
            raise WireError(f"{where}: device key {key[:40]!r} is not 1-{_DEVICE_KEY_MAX}"
                            " characters of a-z, 0-9 and _")
        if len(value) > DEVICE_MAX_VALUE:
            raise WireError(f"{where}: device {key} is {len(value)} characters, at most"
                            f" {DEVICE_MAX_VALUE}")
    return device


def _source(raw: object, i: int) -> SourceInfo:
    where = f"sources[{i}]"
    if not isinstance(raw, list) or len(raw) not in (5, 6):
        raise WireError(f"{where}: expected [id, protocol, address, labels, accuracy[, device]]")
    sid, proto, addr, labels, acc = raw[:5]
    if not (isinstance(sid, str) and sid and isinstance(proto, str) and isinstance(addr, str)):
        raise WireError(f"{where}: id, protocol and address must be strings")
    device = _device(raw[5], where) if len(raw) == 6 else {}
    return SourceInfo(sid, proto, addr, _labels(labels, where), _opt_float(acc, where), device)


def _metric(raw: object, i: int) -> MetricEntry:
    where = f"metrics[{i}]"
    if not isinstance(raw, list) or len(raw) != 5:
        raise WireError(f"{where}: expected [name, unit, kind, modulus, labels]")
    name, unit, kind, modulus, labels = raw
    if not (isinstance(name, str) and name and isinstance(unit, str)):
        raise WireError(f"{where}: name and unit must be strings")
    if kind not in ("gauge", "counter"):
        raise WireError(f"{where}: kind must be 'gauge' or 'counter'")
    mod = _opt_float(modulus, where)
    if mod is not None and mod <= 0:
        raise WireError(f"{where}: modulus must be positive")
    return MetricEntry(MetricSpec(name, unit, kind, mod), _labels(labels, where))


def _dropped(raw: object, i: int) -> Dropped:
    if (
        not isinstance(raw, list)
        or len(raw) != 5
        or not all(isinstance(x, int) and not isinstance(x, bool) for x in raw)
    ):
        raise WireError(f"dropped[{i}]: expected five integers")
    d = Dropped(*raw)
    if not all(0 <= x < INT64_END for x in raw) or d.last_seq < d.first_seq or (
        d.last_ts_ns < d.first_ts_ns
    ):
        raise WireError(
            f"dropped[{i}]: integers must lie in [0, 2^63), last_seq >= first_seq and"
            " last_ts_ns >= first_ts_ns"
        )
    return d


def _failures(raw: object) -> list[Failure]:
    """The optional `failures` field, bounded: the collector stores every entry."""
    if raw is None:
        return []
    if not isinstance(raw, list) or len(raw) > MAX_FAILURES:
        raise WireError(f"body: failures must be a list of at most {MAX_FAILURES} entries")
    out = []
    for i, f in enumerate(raw):
        if not (
            isinstance(f, list) and len(f) == 3
            and isinstance(f[0], str) and 0 < len(f[0]) <= FAILURE_ID_MAX
            and isinstance(f[1], int) and not isinstance(f[1], bool) and 0 <= f[1] < INT64_END
            and isinstance(f[2], str) and len(f[2]) <= FAILURE_REASON_MAX
        ):
            raise WireError(
                f"failures[{i}]: expected [source id of 1-{FAILURE_ID_MAX} characters, ts_ns in"
                f" [0, 2^63), reason of at most {FAILURE_REASON_MAX} characters]"
            )
        out.append(Failure(f[0], f[1], f[2]))
    return out


# Fields of a body whose values the decoder keeps as their msgpack bytes first: a steady
# agent sends the same tables every tick, so identical bytes need no second check.
_TABLE_FIELDS = ("sources", "metrics")


def _split(body: bytes) -> tuple[dict[str, Any], dict[str, bytes]]:
    """The body's map: (every field but the tables, decoded; the tables' msgpack bytes).

    As msgpack.unpackb: a key given twice keeps its last value, nothing may follow the map,
    and no string, array or map may claim more than the body's length."""
    try:
        unpacker = msgpack.Unpacker(raw=False, strict_map_key=True,
                                    max_buffer_size=max(len(body), 1))
        unpacker.feed(body)
        fields: dict[str, Any] = {}
        tables: dict[str, bytes] = {}
        for _ in range(unpacker.read_map_header()):
            name = unpacker.unpack()
            if not isinstance(name, str | bytes):  # as strict_map_key refuses
                raise ValueError("map key is not a string")
            if name in _TABLE_FIELDS:
                start = unpacker.tell()
                unpacker.skip()
                tables[name] = body[start:unpacker.tell()]
            else:
                fields[name] = unpacker.unpack()  # type: ignore[index]
        if unpacker.tell() != len(body):
            raise msgpack.ExtraData(None, None)
    except Exception as exc:  # msgpack raises several unrelated types
        try:  # the same fault, named as a whole-body decode names it
            whole = msgpack.unpackb(body, raw=False, strict_map_key=True)
        except Exception as whole_exc:
            raise WireError(f"body is not msgpack: {type(whole_exc).__name__}") from None
        if not isinstance(whole, dict):
            raise WireError("body must be a map") from None
        raise WireError(f"body is not msgpack: {type(exc).__name__}") from None
    return fields, tables


def _table(raw: bytes | None, name: str) -> list[Any]:
    """A table field's msgpack bytes, decoded: a list, else WireError."""
    if raw is None:
        raise WireError(f"body: missing {name!r}")
    try:
        value = msgpack.unpackb(raw, raw=False, strict_map_key=True)
    except Exception as exc:
        raise WireError(f"body is not msgpack: {type(exc).__name__}") from None
    if not isinstance(value, list):
        raise WireError(f"body: {name!r} has the wrong type")
    return value


class Decoder:
    """The collector's body decoder: `decode_body` with a memory and vectorised checks.

    It keeps each agent's last source and metric tables, decoded and checked, with their
    exact msgpack bytes: a batch whose table bytes are identical (every tick of a steady
    agent) reuses them instead of checking 1,000 sources again. Identical bytes decode to
    identical values, so nothing a fresh decode would refuse is let through (equal decoded
    lists would not do: True == 1 == 1.0 in Python). The per-sample checks (index ranges,
    finite values) run in numpy: the collector loads it anyway; the agent, which decodes
    only its own batches now and then, does not (plain `decode_body` needs no numpy).
    `max_agents`: agents remembered; past it the oldest is forgotten.
    """

    def __init__(self, max_agents: int = 4096) -> None:
        """An empty memory for up to `max_agents` agents."""
        import numpy  # only the collector decodes at this rate; the agent stays without it

        self._np = numpy
        self._max_agents = max_agents
        self._tables: dict[str, tuple[bytes, list[SourceInfo], bytes, list[MetricEntry]]] = {}

    def __call__(self, body: bytes) -> Batch:
        """Parse and check a batch body as `decode_body` does; raise WireError."""
        return decode_body(body, self)

    def recall(self, agent: str, src_raw: bytes | None, met_raw: bytes | None
               ) -> tuple[list[SourceInfo] | None, list[MetricEntry] | None]:
        """The agent's remembered tables whose bytes are these (a copy each), else None."""
        known = self._tables.get(agent)
        if known is None:
            return None, None
        return (list(known[1]) if known[0] == src_raw else None,
                list(known[3]) if known[2] == met_raw else None)

    def keep(self, agent: str, src_raw: bytes, sources: list[SourceInfo], met_raw: bytes,
             metrics: list[MetricEntry]) -> None:
        """Remember an agent's checked tables with their bytes."""
        self._tables.pop(agent, None)
        if len(self._tables) >= self._max_agents:
            del self._tables[next(iter(self._tables))]
        self._tables[agent] = (src_raw, list(sources), met_raw, list(metrics))

    def beyond(self, index: array[int], size: int) -> bool:
        """Whether any index is `size` or more."""
        return bool(len(index)) and int(self._np.frombuffer(index, self._np.uint32).max()) >= size

    def all_finite(self, values: array[float]) -> bool:
        """Whether no value is NaN or infinite."""
        return bool(self._np.isfinite(self._np.frombuffer(values, self._np.float64)).all())


def _beyond(index: array[int], size: int) -> bool:
    return bool(index) and max(index) >= size


def _all_finite(values: array[float]) -> bool:
    return all(math.isfinite(v) for v in values)


def decode_body(body: bytes, decoder: Decoder | None = None) -> Batch:
    """Parse and check a batch body; raise WireError naming the first fault found.

    `decoder`: the collector's (Decoder), reusing an agent's unchanged tables."""
    m, tables = _split(body)
    if isinstance(m.get("v"), bool) or m.get("v") != VERSION:  # msgpack true == 1 in Python
        raise WireError(f"body: unsupported version {m.get('v')!r}, expected {VERSION}")
    agent = _need(m, "agent", str)
    seq = _need(m, "seq", int)
    prev = _need(m, "prev", bytes)
    sealed_ns = _need(m, "sealed_ns", int)
    clock = _need(m, "clock", dict)
    if not agent or not 1 <= seq <= MAX_SEQ or len(prev) != 32 or not 0 <= sealed_ns < INT64_END:
        raise WireError(
            "body: agent empty, seq outside [1, 2^63 - 2], prev not 32 bytes or sealed_ns"
            " outside [0, 2^63)"
        )
    synced = clock.get("synced")
    if synced is not None and not isinstance(synced, bool):
        raise WireError("clock.synced must be a bool or nil")
    src_raw, met_raw = tables.get("sources"), tables.get("metrics")
    sources, metrics = decoder.recall(agent, src_raw, met_raw) if decoder else (None, None)
    if sources is None:
        sources = [_source(s, i) for i, s in enumerate(_table(src_raw, "sources"))]
    if metrics is None:
        metrics = [_metric(x, i) for i, x in enumerate(_table(met_raw, "metrics"))]
    ts = _from_bytes("q", m.get("ts"), "ts")
    src = _from_bytes("I", m.get("src"), "src")
    met = _from_bytes("I", m.get("met"), "met")
    val = _from_bytes("d", m.get("val"), "val")
    if not len(ts) == len(src) == len(met) == len(val):
        raise WireError("ts, src, met and val must have the same length")
    beyond = decoder.beyond if decoder else _beyond
    if beyond(src, len(sources)):
        raise WireError("src: index beyond the source table")
    if beyond(met, len(metrics)):
        raise WireError("met: index beyond the metric table")
    if not (decoder.all_finite if decoder else _all_finite)(val):
        raise WireError("val: NaN or infinite value")
    dropped = [_dropped(d, i) for i, d in enumerate(_need(m, "dropped", list))]
    next_key = m.get("next_key")
    if next_key is not None and (not isinstance(next_key, bytes) or len(next_key) != 32):
        raise WireError("body: next_key must be 32 bytes (an Ed25519 public key)")
    batch = Batch(
        agent,
        seq,
        prev,
        sealed_ns,
        ClockStatus(
            synced,
            _opt_float(clock.get("max_error_s"), "clock"),
            _opt_float(clock.get("stepped_s"), "clock.stepped_s"),
        ),
        sources,
        metrics,
        ts,
        src,
        met,
        val,
        dropped,
        next_key,
        _failures(m.get("failures")),
    )
    if decoder is not None:
        assert src_raw is not None and met_raw is not None  # else _table refused the body
        decoder.keep(agent, src_raw, sources, met_raw, metrics)
    return batch


# The peek reads the body this many bytes at a time: `agent` and `seq` come first.
_PEEK_READ = 4096


def peek(body: bytes) -> tuple[str, int]:
    """The (agent, seq) a body names, read without decoding the rest: the collector finds
    the key and checks the signature before it spends time on a body; raise WireError."""
    found: dict[str, Any] = {}
    try:
        unpacker = msgpack.Unpacker(io.BytesIO(body), raw=False, strict_map_key=True,
                                    read_size=_PEEK_READ)
        for _ in range(unpacker.read_map_header()):
            name = unpacker.unpack()
            if name in ("agent", "seq") and name not in found:
                found[name] = unpacker.unpack()
                if len(found) == 2:
                    break
            else:
                unpacker.skip()
    except Exception as exc:  # msgpack raises several unrelated types
        raise WireError(f"body is not a msgpack map: {type(exc).__name__}") from None
    agent, seq = found.get("agent"), found.get("seq")
    if not isinstance(agent, str) or not agent:
        raise WireError("body: 'agent' missing or not a non-empty string")
    if isinstance(seq, bool) or not isinstance(seq, int) or not 1 <= seq <= MAX_SEQ:
        raise WireError("body: 'seq' missing or not an integer in [1, 2^63 - 2]")
    return agent, seq


def pack_arrays(
    ts: Sequence[int], src: Sequence[int], met: Sequence[int], val: Sequence[float]
) -> tuple[array[int], array[int], array[int], array[float]]:
    """Turn parallel sequences into the typed arrays a Batch holds."""
    return array("q", ts), array("I", src), array("I", met), array("d", val)
