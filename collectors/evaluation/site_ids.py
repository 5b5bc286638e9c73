"""The one check every list of source ids in the site file gets."""

from __future__ import annotations


def check_ids(value: list[str]) -> list[str]:
    """Refuse empty ids and ids listed twice; return the list unchanged."""
    if any(not s for s in value):
        raise ValueError("source ids must be non-empty strings")
    doubled = sorted({s for s in value if value.count(s) > 1})
    if doubled:
        raise ValueError(f"source ids listed twice: {', '.join(doubled)}")
    return value
