"""Sample records in the `dcmeter agent once --json` shape, turned into evaluation Series."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dcmeter.collectors.evaluation.series import Series


def parse_rfc3339(text: str) -> float:
    """Return seconds since the Unix epoch for an RFC 3339 time with "Z" or a UTC offset."""
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        raise ValueError(f"timestamp {text!r} has no UTC offset; write it as ...Z or ...+08:00")
    return parsed.timestamp()


def rfc3339(ts: float) -> str:
    """Format epoch seconds as RFC 3339 UTC with "Z"; fractional seconds only when present."""
    when = datetime.fromtimestamp(ts, tz=UTC)
    text = when.isoformat(timespec="microseconds" if when.microsecond else "seconds")
    return text.replace("+00:00", "Z")


def read_jsonl(path: Path | str) -> list[dict[str, Any]]:
    """Read one JSON object per line (blank lines skipped); raise ValueError naming the line."""
    records: list[dict[str, Any]] = []
    with Path(path).open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}: line {lineno}: not valid JSON: {exc}") from None
            if not isinstance(record, dict):
                raise ValueError(f"{path}: line {lineno}: expected a JSON object")
            records.append(record)
    return records


@dataclass
class _Group:
    unit: str
    kind: str
    labels: dict[str, str]
    modulus: float | None = None
    accuracy: float | None = None
    samples: list[tuple[float, float]] = field(default_factory=list)


def _number(record: Mapping[str, Any], key: str, where: str) -> float | None:
    value = record.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{where}: {key} must be a number, got {value!r}")
    return float(value)


def _text(record: Mapping[str, Any], key: str, where: str) -> str:
    value = record.get(key)
    if not isinstance(value, str) or not value:
        raise ValueError(f"{where}: {key} must be a non-empty string, got {value!r}")
    return value


def series_from_records(records: Iterable[Mapping[str, Any]]) -> list[Series]:
    """Group sample records by (source, metric, labels) into time-sorted Series (epoch s)."""
    groups: dict[tuple[str, str, tuple[tuple[str, str], ...]], _Group] = {}
    for index, record in enumerate(records, start=1):
        where = f"record {index}"
        source = _text(record, "source", where)
        metric = _text(record, "metric", where)
        unit = record.get("unit", "")
        kind = _text(record, "kind", where)
        if not isinstance(unit, str):
            raise ValueError(f"{where}: unit must be a string, got {unit!r}")
        raw_labels = record.get("labels") or {}
        if not isinstance(raw_labels, Mapping):
            raise ValueError(f"{where}: labels must be an object, got {raw_labels!r}")
        labels = {str(k): str(v) for k, v in raw_labels.items()}
        try:
            ts = parse_rfc3339(_text(record, "ts", where))
        except ValueError as exc:
            raise ValueError(f"{where}: bad ts: {exc}") from None
        value = _number(record, "value", where)
        if value is None or not math.isfinite(value):
            raise ValueError(f"{where}: value must be a finite number, got {record.get('value')!r}")
        key = (source, metric, tuple(sorted(labels.items())))
        group = groups.setdefault(key, _Group(unit=unit, kind=kind, labels=labels))
        if (group.unit, group.kind) != (unit, kind):
            raise ValueError(
                f"{where}: {source} {metric} changes unit/kind from"
                f" {group.unit}/{group.kind} to {unit}/{kind}"
            )
        # A record without the optional fields keeps what earlier records of the series declared.
        group.modulus = _number(record, "modulus", where) or group.modulus
        group.accuracy = _number(record, "accuracy", where) or group.accuracy
        group.samples.append((ts, value))
    result: list[Series] = []
    for (source, metric, _), group in sorted(groups.items(), key=lambda item: item[0]):
        samples = sorted(group.samples, key=lambda s: s[0])
        result.append(
            Series(
                source=source,
                metric=metric,
                unit=group.unit,
                kind=group.kind,
                ts=tuple(t for t, _ in samples),
                values=tuple(v for _, v in samples),
                modulus=group.modulus,
                labels=group.labels,
                accuracy=group.accuracy,
            )
        )
    return result
