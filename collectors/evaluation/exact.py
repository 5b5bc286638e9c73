"""Exact comparisons against the standard's limits: readings as decimals, grading precision.

A level or a rule is decided on the figure the readings give in exact arithmetic, not on
binary floating-point noise (docs/evaluation.md, "Exact grading"):

- Devices report decimal readings (1005.2 kWh); a reading travels as the nearest float64,
  whose shortest repr is the decimal the device reported. Counter differences, where
  cancellation would magnify the float's representation error (1005.2 − 1000.0 =
  5.2000000000000455 in float), are taken exactly on those decimals (`reading`) and rounded
  once to a float.
- Every graded figure (PUE, CEE, AEE) and every figure held against a limit (the sampling
  density, an MPE) is rounded half-even to GRADE_DIGITS significant digits before the
  comparison, with the limit taken as the decimal it was written as. What float arithmetic
  adds after the exact differences (a few units of 1e-16 relative) disappears; any reading's
  last digit moves a figure by far more than 5e-13 relative, so a figure a hair beyond a
  limit stays beyond it.
- Times (A.5's interval and window rules) are compared in whole microseconds: timestamps
  are float epoch seconds, within 0.12 µs of the reported time at this epoch, so a
  difference of two is within 0.24 µs of the exact one; RFC 3339 times carry at most µs.
"""

from __future__ import annotations

import math
from decimal import ROUND_HALF_EVEN, Context, Decimal
from fractions import Fraction

GRADE_DIGITS = 12  # significant digits a figure is graded at
_GRADE = Context(prec=GRADE_DIGITS, rounding=ROUND_HALF_EVEN)
_US = Decimal("0.000001")


def reading(value: float) -> Fraction:
    """Return a reported reading as the exact decimal it was written as (its shortest repr)."""
    return Fraction(repr(float(value)))


def graded(value: float) -> Decimal:
    """Return a finite figure rounded half-even to GRADE_DIGITS significant digits."""
    return _GRADE.plus(Decimal(repr(float(value))))


def _limit(limit: float) -> Decimal:
    return Decimal(repr(float(limit)))


def at_most(value: float | None, limit: float) -> bool:
    """Tell whether a figure is at most `limit` at the grading precision (False if unknown)."""
    if value is None or not math.isfinite(value):
        return False
    return graded(value) <= _limit(limit)


def at_least(value: float | None, limit: float) -> bool:
    """Tell whether a figure is at least `limit` at the grading precision (False if unknown)."""
    if value is None or not math.isfinite(value):
        return False
    return graded(value) >= _limit(limit)


def below(value: float, limit: float) -> bool:
    """Tell whether a finite figure is below `limit` at the grading precision."""
    return graded(value) < _limit(limit)


def _us(seconds: float) -> Decimal:
    return Decimal(repr(float(seconds))).quantize(_US, rounding=ROUND_HALF_EVEN)


def seconds_at_most(seconds: float, limit_s: float) -> bool:
    """Tell whether a duration (s) is at most `limit_s`, both in whole microseconds."""
    return math.isfinite(seconds) and _us(seconds) <= _us(limit_s)


def seconds_below(seconds: float, limit_s: float) -> bool:
    """Tell whether a duration (s) is below `limit_s`, both in whole microseconds."""
    return math.isfinite(seconds) and _us(seconds) < _us(limit_s)
