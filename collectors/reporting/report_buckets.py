"""How long the report's plot buckets are: long enough that counter resolution does not show.

An energy counter read at both ends of a bucket of length T is off by up to its resolution r
(its register's step, e.g. 1 Wh), so a bucket's energy P·T, and the power P·T / T drawn from
it, is off by up to r / (P·T) relatively; a bucket's PUE = E_total / E_IT by up to
r_total / (P_total·T) + r_IT / (P_IT·T). The rule: that sum stays below `LIMIT` (0.5 %),

    T ≥ (r_total / P_total + r_IT / P_IT) / LIMIT        (r in kWh, P in kW, T in h)

with r and P read from the data: r is the largest power of ten every counter reading is a
whole multiple of (the register's decimal step), P the counter's mean rate over the window.
Sources of a role add their r and their P. A power gauge integrated over time has no such
step (its r is 0). Pure: no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from dcmeter.collectors.evaluation.series import Series

LIMIT = 0.005  # the most counter resolution may change a bucket's figure, relative
KWH_PER = {"kWh": 1.0, "Wh": 1e-3, "MWh": 1e3, "J": 1 / 3.6e6, "kJ": 1 / 3.6e3}
# Bucket lengths the report rounds up to, s: whole, readable steps.
NICE_S = (1, 2, 5, 10, 15, 20, 30, 60, 120, 180, 300, 600, 900, 1200, 1800, 3600, 7200,
          10800, 14400, 21600, 43200, 86400)


@dataclass(frozen=True, slots=True)
class Role:
    """A role's (total or IT) counters: summed resolution `r_kwh` and mean power `p_kw`."""

    r_kwh: float
    p_kw: float


def resolution_kwh(s: Series) -> float:
    """The decimal step of a counter's readings in kWh: the largest 10^k (k from -9 to 3, in
    the counter's own unit) every reading is a whole multiple of; 0 where none is, or the
    unit is not an energy."""
    factor = KWH_PER.get(s.unit)
    values = np.asarray(s.values, dtype=np.float64)
    if factor is None or values.size < 2:
        return 0.0
    for k in range(3, -10, -1):
        q = 10.0 ** k
        with np.errstate(over="ignore", invalid="ignore"):  # an absurd reading (1e308)
            x = values / q
            # A true multiple is off by float rounding only (~|x|·2e-16); 1e-14·|x| leaves
            # room. A reading that overflows is no multiple of anything: no resolution.
            off = np.abs(x - np.round(x))
        if np.all(np.isfinite(x)) and np.all(off <= 1e-6 + 1e-14 * np.abs(x)):
            return q * factor
    return 0.0


def mean_power_kw(s: Series) -> float:
    """A counter's mean rate over its readings, kW (0 with fewer than 2 or no time between).

    Wraps and resets are not unfolded: this only sizes the plot's buckets."""
    factor = KWH_PER.get(s.unit)
    ts, vs = np.asarray(s.ts), np.asarray(s.values)
    if factor is None or ts.size < 2 or not ts[-1] > ts[0]:
        return 0.0
    rise = float(np.sum(np.clip(np.diff(vs), 0.0, None))) * factor
    return rise / ((float(ts[-1]) - float(ts[0])) / 3600.0)


def role_of(series: Iterable[Series], sources: Sequence[str], counter: str) -> Role:
    """The summed resolution and mean power of `sources`' counters (metric `counter`)."""
    own = [s for s in series if s.source in sources and s.metric == counter]
    return Role(sum(resolution_kwh(s) for s in own), sum(mean_power_kw(s) for s in own))


def least_bucket_s(roles: Iterable[Role], limit: float = LIMIT) -> float:
    """The shortest bucket, s, in which the roles' counter steps change a figure by less
    than `limit`: (Σ r/P) / limit, in s. 0 where no role has a counter step."""
    share_h = sum(r.r_kwh / r.p_kw for r in roles if r.r_kwh > 0 and r.p_kw > 0)
    return share_h / limit * 3600.0


def nice_s(seconds: float) -> float:
    """`seconds` rounded up to a readable bucket length (`NICE_S`, then whole days)."""
    for step in NICE_S:
        if step >= seconds - 1e-9:
            return float(step)
    return float(math.ceil(seconds / 86400.0) * 86400)
