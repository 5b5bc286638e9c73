"""How the calibration certificate writes its numbers (pure: no I/O).

GUM (JCGM 100:2008) 7.2.6: the expanded uncertainty U is stated to at most two significant
digits, and the estimates it qualifies (the means, the error, the MPE at the point) to the
same decimal place as U. Relative figures are percentages, the relative error to the decimal
place of the relative U. Budget components are intermediate figures and keep three
significant digits, so that rounding them does not show as a different u_c.
"""

from __future__ import annotations

import math
from typing import Any


def finite(v: Any) -> bool:
    """Whether `v` is a finite number (not a bool)."""
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def decimals_of_u(u: Any, sig: int = 2) -> int | None:
    """The decimal place (digits after the point; negative: tens, hundreds…) at which `u`
    has `sig` significant digits once rounded; None when `u` is missing, zero or not finite.

    Rounding may carry into a new digit (9.96 to 2 digits is 10, not 9.96 → 10.0): the place
    is then one to the left.
    """
    if not finite(u) or u == 0:
        return None
    d = sig - 1 - math.floor(math.log10(abs(u)))
    if abs(round(u, d)) >= 10 ** (sig - d):
        d -= 1
    return d


def fixed(v: Any, decimals: int) -> str:
    """`v` rounded to `decimals` (negative: to tens, hundreds…), thousands grouped; '—' when
    not a finite number."""
    if not finite(v):
        return "—"
    rounded = round(float(v), decimals)
    text = f"{rounded:,.{max(decimals, 0)}f}"
    # A negative figure that rounds to nothing is written without its sign ('0.00').
    return text[1:] if text.startswith("-") and text.strip("-0.,") == "" else text


def significant(v: Any, sig: int) -> str:
    """`v` to `sig` significant digits in plain decimals (integer digits beyond `sig`
    rounded to zeros: 208.06 to 2 digits is 210), '—' when not a finite number."""
    if not finite(v):
        return "—"
    if v == 0:
        return "0"
    d = decimals_of_u(v, sig)
    assert d is not None
    return fixed(v, d)


def with_u(v: Any, u: Any, fallback_sig: int = 5) -> str:
    """An estimate `v` written to the decimal place of its uncertainty `u` (GUM 7.2.6), or to
    `fallback_sig` significant digits when there is no usable `u`."""
    d = decimals_of_u(u)
    if d is None:
        return significant(v, fallback_sig)
    return fixed(v, d)


def percent_with_u(v: Any, u: Any, fallback_decimals: int = 2) -> str:
    """A fraction `v` as a percentage to the decimal place of the fraction `u` in percent
    ('4.3 %' beside a relative U of '1.2 %')."""
    if not finite(v):
        return "—"
    d = decimals_of_u(u * 100) if finite(u) else None
    return f"{fixed(v * 100, fallback_decimals if d is None else d)} %"


def percent_sig(v: Any, sig: int = 2) -> str:
    """A fraction `v` as a percentage to `sig` significant digits ('1.2 %')."""
    return "—" if not finite(v) else f"{significant(v * 100, sig)} %"


def divisor(v: Any) -> str:
    """A budget row's divisor: '√3' for √3 (and √n for any whole n not a square), else the
    number to 3 significant digits."""
    if not finite(v) or v <= 0:
        return "—"
    square = v * v
    n = round(square)
    if abs(square - n) < 1e-9 * max(1.0, square) and math.isqrt(n) ** 2 != n:
        return f"√{n}"
    return significant(v, 3)


def dof(v: Any) -> str:
    """Degrees of freedom: '∞' for None (no type A component), else the whole number below
    (Welch–Satterthwaite's ν_eff is truncated, GUM G.4.1 note 1)."""
    if v is None:
        return "∞"
    if not finite(v):
        return "∞" if isinstance(v, float) and math.isinf(v) else "—"
    return f"{math.floor(v):,d}"
