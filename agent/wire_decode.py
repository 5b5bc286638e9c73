"""A batch body read and checked: every fault it can have refused with WireError.

Part of the wire format (agent/wire.py re-exports it): `decode_body` (the agent's, in plain
Python), `Decoder` (the collector's: each agent's checked tables remembered, the per-sample
checks in numpy), `peek` (agent and seq before the signature is checked).
"""

from __future__ import annotations

import io
import math
import sys
from array import array
from collections.abc import Mapping
from typing import Any

import msgpack

from dcmeter.agent.samples import DEVICE_MAX_ENTRIES, DEVICE_MAX_VALUE, MetricSpec, SourceInfo
from dcmeter.agent.wire_types import (
    FAILURE_ID_MAX,
    FAILURE_REASON_MAX,
    INT64_END,
    MAX_FAILURES,
    MAX_SEQ,
    VERSION,
    Batch,
    ClockStatus,
    Dropped,
    Failure,
    MetricEntry,
    WireError,
)

_LITTLE = sys.byteorder == "little"


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

