"""Levels only where they hold: a result that is not valid carries no bare level.

T/CECA-G 0355—2025 4.1 to 4.3 grade a measured figure; a figure from a window that is not
valid (quality.valid false: too short, gaps, too few repetitions, ...) cannot be graded. Its
level field is then null and `<field>_indicative` carries the level the figure would reach,
for the engineer to see what is at stake; on a valid result `<field>_indicative` is null.
"""

from __future__ import annotations

from typing import Any

# Every level field a result may carry: GB 40879 (PUE), Table 1 (CEE), Table 2 (AEE).
LEVEL_FIELDS = ("pue_level", "cee_level", "aee_level")


def withhold_levels(result: dict[str, Any]) -> dict[str, Any]:
    """Null the level fields of a result that is not valid, keeping them as `_indicative`."""
    valid = bool(result.get("quality", {}).get("valid"))
    for name in LEVEL_FIELDS:
        if name not in result:
            continue
        # Idempotent: the collector calls it again once its own checks may have invalidated.
        level = result[name] if result[name] is not None else result.get(f"{name}_indicative")
        result[name], result[f"{name}_indicative"] = (level, None) if valid else (None, level)
    return result
