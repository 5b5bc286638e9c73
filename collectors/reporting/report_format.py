"""How the report writes numbers, times and durations (pure: no I/O).

Numbers are plain decimals (never `2.747e-05` or `6.588e+04`) with the significant digits
`DIGITS` gives their quantity (docs/report.md, "Numbers"); times are local to the site's time
zone (`[site] timezone`), to the second; durations are h:mm:ss.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dcmeter.collectors.evaluation.jsonl import parse_rfc3339

DEFAULT_TIMEZONE = "Asia/Shanghai"

# Significant digits per quantity, and whether trailing zeros are dropped ("as given":
# ratings and thresholds read as the site file states them, 4.2 not 4.20). Integer digits are
# never dropped: 65,880 kWh stays 65,880 whatever the digits.
DIGITS: dict[str, tuple[int, bool]] = {
    "energy_kwh": (5, False),   # E_total, E_IT, E_green: 12.346 kWh, 65,880 kWh
    "energy_wh": (4, False),    # a run's energy: 812.3 Wh
    "power_kw": (4, False),     # plot axes and power figures
    "pue": (4, False),          # 1.342
    "cue": (3, False),          # kg CO2/kWh: 0.738
    "carbon_kg": (4, False),    # 4,523 kg, 9.014 kg
    "grid": (4, True),          # kg CO2/kWh: 0.55 as published, 0.5306
    "cee": (4, False),          # standard points/Wh
    "ccue": (3, False),         # kg CO2/standard point: 0.0000275
    "computing": (4, False),    # C, standard points
    "rating": (6, True),        # P of a group (NEE 4.2, BenchSEE 21500): as given
    "threshold": (6, True),     # level bounds: 1.2, 224
    "aee": (4, False),          # GFLOPs/Wh
    "gflops": (4, False),
    "ace": (3, False),          # kg CO2/FLOP
    "seconds": (3, True),       # gaps, intervals: 5, 12.5, 900
    "count": (12, True),        # whole numbers: samples, batches
    "value": (4, True),         # anything else (plausibility values and limits)
}


def plain(v: Any, sig: int, strip: bool = False) -> str:
    """`v` in plain decimal notation to `sig` significant digits (integer digits all kept,
    thousands grouped), '—' when not a finite number; `strip` drops trailing zeros."""
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        return "—"
    if v == 0:
        return "0"
    decimals = max(0, sig - 1 - math.floor(math.log10(abs(v))))
    text = f"{v:,.{decimals}f}"
    if strip and "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def fmt(v: Any, quantity: str) -> str:
    """`v` written as `quantity` is (`DIGITS`)."""
    sig, strip = DIGITS[quantity]
    return plain(v, sig, strip)


def percent(v: Any, decimals: int = 1) -> str:
    """A fraction (0.123) as a percentage ('12.3 %'), '—' when missing."""
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        return "—"
    return f"{v * 100:.{decimals}f} %"


def hms(seconds: Any) -> str:
    """A duration in s as h:mm:ss (hours unbounded: 26:03:07), '—' when missing."""
    if isinstance(seconds, bool) or not isinstance(seconds, int | float):
        return "—"
    if not math.isfinite(seconds):
        return "—"
    sign, s = ("-" if seconds < 0 else ""), round(abs(seconds))
    return f"{sign}{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def zone(name: str | None) -> ZoneInfo:
    """The time zone `name` (IANA), the default one when None or unknown (a stored result
    predating the key)."""
    try:
        return ZoneInfo(name or DEFAULT_TIMEZONE)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo(DEFAULT_TIMEZONE)


def epoch(v: Any) -> float | None:
    """An RFC 3339 text or epoch s as epoch s, None when it is neither."""
    if isinstance(v, int | float) and not isinstance(v, bool):
        return float(v)
    if isinstance(v, str) and v:
        try:
            return parse_rfc3339(v)
        except ValueError:
            return None
    return None


def local_time(v: Any, tz: ZoneInfo) -> str:
    """A time (RFC 3339 text or epoch s) as local 'YYYY-MM-DD HH:MM:SS' in `tz`, to the
    second; the text unchanged when it is not a time, '—' when missing."""
    t = epoch(v)
    if t is None:
        return "—" if v is None or v == "" else str(v)
    return datetime.fromtimestamp(t, UTC).astimezone(tz).strftime("%Y-%m-%d %H:%M:%S")


def utc_offset(tz: ZoneInfo, at: float | None = None) -> str:
    """`tz`'s name with its UTC offset at `at` (epoch s; default now):
    'Asia/Shanghai (UTC+08:00)'."""
    when = datetime.fromtimestamp(at if at is not None else datetime.now(UTC).timestamp(), UTC)
    off = when.astimezone(tz).utcoffset() or timedelta(0)
    minutes = int(off.total_seconds() // 60)
    sign = "+" if minutes >= 0 else "-"
    return f"{tz.key} (UTC{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d})"
