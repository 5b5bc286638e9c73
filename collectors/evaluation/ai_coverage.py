"""Whether a run's energy was measured: readings that bound the run and their density.

T/CECA-G 0355—2025 6.3.3.2: the energy of a run is read from the server directly ("the total
energy during the task"), or is the mean of power sampled periodically during the run ×
its duration, the samples spread over the whole run, with a sampling density of at least
10 %; 6.3.3.3 step 3a records the energy sampling during the run. dcmeter reads both forms
by one principle (docs/evaluation.md, "Runs that count"):

- **Bounds.** The reading nearest each edge of the run lies within EDGE_SHARE (5 %) of the
  run's duration T of that edge. Linear interpolation at an edge errs by at most the distance
  to the nearest reading × the change of power there, so the two edges together leave at most
  10 % of T whose energy is not read: the share 6.3.3.2's 10 % density leaves unsampled.
  A counter read every 900 s cannot bound a 300 s run: its energy would be an interpolated
  share of the interval between readings, not a measurement.
- **Density.** A power sample stands for τ seconds (its averaging period in force then):
  density = Σ τ_i / T over the samples inside the run (n · τ / T with one τ). A counter
  reading stands for all the energy since the previous one, so a counter measures the run
  except the edge distances: density = 1 − (d_start + d_end) / T, at least 0. Both must
  reach ai.min_sampling_density.

A run whose readings fail either rule is not valid: "energy not measured: …".
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass

from dcmeter.collectors.evaluation.ai_calibration import sampling_density
from dcmeter.collectors.evaluation.energy import _clean, _secs
from dcmeter.collectors.evaluation.exact import below, seconds_at_most
from dcmeter.collectors.evaluation.issues import issue
from dcmeter.collectors.evaluation.roles import RoleEnergy
from dcmeter.collectors.evaluation.series import Series

EDGE_SHARE = 0.05  # each edge's nearest reading within 5 % of the run: 10 % of it in all


@dataclass(frozen=True, slots=True)
class Coverage:
    """How closely the servers' readings bound one run, and whether its energy was measured."""

    density: float | None  # the smallest over the series, 0..1
    start_s: float | None  # the largest distance (s) from the run's start to a nearest reading
    end_s: float | None  # likewise from its end
    limit_s: float  # EDGE_SHARE × the run's duration
    measured: bool
    issues: tuple[str, ...]

    def edges_json(self) -> dict[str, float | None]:
        """Return the edge distances and their limit in seconds, for the run's result."""
        return {"start": self.start_s, "end": self.end_s, "max": self.limit_s}


def _nearest(ts: Sequence[float], t: float) -> float | None:
    """Return the distance (s) from t to the nearest of the sorted times ts, None if none."""
    if not ts:
        return None
    i = bisect.bisect_left(ts, t)
    near = [abs(ts[j] - t) for j in (i - 1, i) if 0 <= j < len(ts)]
    return min(near)


def _one(
    s: Series, counter: bool, start: float, end: float, period_s: float,
    periods: Sequence[Series],
) -> tuple[float | None, float | None, float]:
    """Return (d_start, d_end, density) of one series over the run [start, end]."""
    ts = _clean(s)[0]
    d0, d1 = _nearest(ts, start), _nearest(ts, end)
    if d0 is None or d1 is None:
        return None, None, 0.0
    if counter:
        return d0, d1, max(0.0, 1.0 - (d0 + d1) / (end - start))
    return d0, d1, sampling_density([s], start, end, period_s, periods)


def run_coverage(
    role: RoleEnergy,
    series: Sequence[Series],
    start: float,
    end: float,
    min_density: float,
    period_s: float,
) -> Coverage:
    """Hold the series behind a role's energy over the run [start, end] to both rules.

    Every series summed into the role's figures (counter or power, per source) is checked; the
    worst edge distance and the smallest density stand for the role. A power sample's τ is its
    source's averaging period in force then where `series` holds it as a metric
    (ai_calibration.PERIOD_OF: DCMI's power_avg_period_s), else `period_s`
    (ai.power_sample_period_s).
    """
    duration = end - start
    limit = EDGE_SHARE * duration
    worst0: float | None = None
    worst1: float | None = None
    density: float | None = None
    issues: list[str] = []
    for figure in role.figures:
        counter = figure.method == "counter"
        chosen = [s for s in series if s.source == figure.sources[0] and s.metric == figure.metric]
        for s in chosen:
            d0, d1, share = _one(s, counter, start, end, period_s, series)
            density = share if density is None else min(density, share)
            if d0 is None or d1 is None:
                continue
            worst0 = d0 if worst0 is None else max(worst0, d0)
            worst1 = d1 if worst1 is None else max(worst1, d1)
            if not (seconds_at_most(d0, limit) and seconds_at_most(d1, limit)):
                what = "counter" if counter else "power"
                issues.append(issue(
                    "edge_far", source=s.source, metric=s.metric, what=what, d0=_secs(d0),
                    d1=_secs(d1), limit=_secs(limit), share=EDGE_SHARE,
                    duration=_secs(duration), every=_secs(2 * limit),
                ))
    if density is not None and below(density, min_density):  # graded exactly (exact.py)
        issues.append(issue("density_low", density=density, minimum=min_density))
    measured = bool(role.figures) and density is not None and not issues
    return Coverage(density, worst0, worst1, limit, measured, tuple(issues))
