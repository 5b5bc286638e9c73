"""Calibration figures of an AI window (seed 004, STANDARD.md §4), from the agents' samples.

Network throughput per port in Gbps and storage throughput in Gbit/s over a run, from byte
counters (wraps and resets told apart by the energy module's rule); time-weighted means of
gauges (GPU utilisation); the power of the servers under test at each GPU-utilisation decile;
the sampled time share of a power gauge (6.3.3.2's sampling density).
"""

from __future__ import annotations

import bisect
import contextlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from dcmeter.collectors.evaluation.energy import (
    EDGE_TOLERANCE_INTERVALS,
    _at,
    _bracket,
    _clean,
    _median_rate,
    _step,
)
from dcmeter.collectors.evaluation.series import Series

GBIT = 1e9
DISK_READ, DISK_WRITE = "disk_read_bytes", "disk_write_bytes"
IF_IN, IF_OUT = "if_in_octets", "if_out_octets"


@dataclass(frozen=True, slots=True)
class Delta:
    """The increase of a byte counter over [start, end], with its wraps and resets."""

    value: float | None
    wraps: int
    resets: int
    valid: bool


def counter_delta(series: Series, start: float, end: float) -> Delta:
    """Return a counter's increase over [start, end], interpolated at both edges.

    A decrease is a wrap or a reset by energy._step (a reset counts the value after it and
    invalidates). The edges must lie within 2 median sampling intervals of the samples used,
    as for energy counters; a counter with fewer than 2 samples around [start, end] has None.
    """
    ts, vs, _ = _clean(series)
    span = _bracket(ts, start, end)
    if span is None:
        return Delta(None, 0, 0, False)
    lo, hi = span
    rate = _median_rate(ts, vs)
    cumulative = [0.0]
    wraps = resets = 0
    for j in range(lo + 1, hi + 1):
        d, kind = _step(vs[j - 1], vs[j], ts[j] - ts[j - 1], series.modulus, rate)
        cumulative.append(cumulative[-1] + d)
        wraps += kind == "wrap"
        resets += kind == "reset"
    used = ts[lo : hi + 1]
    steps = sorted(used[i + 1] - used[i] for i in range(len(used) - 1))
    tolerance = EDGE_TOLERANCE_INTERVALS * steps[len(steps) // 2]
    edges_ok = used[0] - start <= tolerance and end - used[-1] <= tolerance
    a, b = max(start, used[0]), min(end, used[-1])
    value = _at(used, cumulative, b) - _at(used, cumulative, a)
    return Delta(value, wraps, resets, edges_ok and resets == 0)


def gauge_mean(series: Series, start: float, end: float) -> float | None:
    """Return the time-weighted mean of a gauge over [start, end] (linear between samples).

    None without 2 samples around the interval; where the samples stop short of an edge, the
    mean is over the part they cover.
    """
    ts, vs, _ = _clean(series)
    span = _bracket(ts, start, end)
    if span is None:
        return None
    used, ys = ts[span[0] : span[1] + 1], vs[span[0] : span[1] + 1]
    a, b = max(start, used[0]), min(end, used[-1])
    if b <= a:
        return None
    area = 0.0
    for j in range(len(used) - 1):
        x1, x2 = max(used[j], a), min(used[j + 1], b)
        if x2 > x1:
            area += (_at(used, ys, x1) + _at(used, ys, x2)) / 2 * (x2 - x1)
    return area / (b - a)


# A power metric -> the metric its source reports its averaging period in (s), per reading:
# DCMI's average power and its statistics period (agent/sources/ipmi.py).
PERIOD_OF = {"power_avg_w": "power_avg_period_s"}


def _taus(
    s: Series, inside: Sequence[float], periods: Sequence[Series], period_s: float
) -> list[float]:
    """τ (s) of each of `s`'s samples at the times `inside`: the period in force then.

    The source's period metric (PERIOD_OF) gives it: its sample at that time, else its latest
    before; a series without one takes an old agent's `period_s` label (samples files written
    before the period became a metric), else `period_s`.
    """
    fallback = period_s
    with contextlib.suppress(ValueError):
        fallback = float(s.labels.get("period_s", period_s))
    name = PERIOD_OF.get(s.metric)
    own = [p for p in periods if name is not None and p.source == s.source and p.metric == name]
    if not own:
        return [fallback] * len(inside)
    pts, pvs, _ = _clean(own[0])
    out = []
    for t in inside:
        i = bisect.bisect_right(pts, t) - 1
        tau = pvs[i] if i >= 0 else math.nan
        out.append(tau if math.isfinite(tau) and tau > 0 else fallback)
    return out


def sampling_density(
    series: Sequence[Series], start: float, end: float, period_s: float,
    periods: Sequence[Series] = (),
) -> float:
    """Return the sampled time share of power gauges over [start, end], 0..1.

    Σ τ_i / T per series, capped at 1, and the smallest over the series: the sum over the
    samples inside [start, end], τ_i the time sample i stands for, T the run's duration. τ_i
    is the averaging period in force at sample i where the source reports one as a metric
    among `periods` (DCMI's power_avg_w: power_avg_period_s at the same time, else the latest
    before it; _taus), else `period_s`, the source's own averaging time
    (ai.power_sample_period_s). With one τ throughout this is n · τ / T.
    """
    shares = []
    for s in series:
        ts, _, _ = _clean(s)
        inside = [t for t in ts if start <= t <= end]
        taus = _taus(s, inside, periods, period_s)
        shares.append(min(1.0, math.fsum(taus) / (end - start)))
    return min(shares, default=0.0)


def _port(s: Series) -> tuple[str, str, str]:
    return s.source, s.labels.get("if_index", ""), s.labels.get("if_name", "")


def _rate(series: Series | None, start: float, end: float) -> tuple[float | None, bool]:
    """Return a byte counter's mean rate over [start, end] in Gbit/s, and its validity."""
    if series is None:
        return None, False
    d = counter_delta(series, start, end)
    if d.value is None:
        return None, False
    return d.value * 8 / (end - start) / GBIT, d.valid


def port_throughput(
    series: Sequence[Series], sources: Sequence[str], start: float, end: float
) -> list[dict[str, Any]]:
    """Return each switch port's throughput over [start, end] in Gbps (seed 004: 0-800 Gbps).

    One entry per (source, if_index, if_name) with if_in_octets or if_out_octets samples:
    in_gbps, out_gbps and gbps = in + out, from the counters' increase × 8 / duration.
    """
    ports: dict[tuple[str, str, str], dict[str, Series]] = {}
    for s in series:
        if s.source in sources and s.metric in (IF_IN, IF_OUT):
            ports.setdefault(_port(s), {})[s.metric] = s
    out = []
    for (source, index, name), pair in sorted(ports.items()):
        rx, rx_ok = _rate(pair.get(IF_IN), start, end)
        tx, tx_ok = _rate(pair.get(IF_OUT), start, end)
        out.append({
            "source": source,
            "if_index": index or None,
            "if_name": name or None,
            "in_gbps": rx,
            "out_gbps": tx,
            "gbps": None if rx is None or tx is None else rx + tx,
            "valid": rx_ok and tx_ok,
        })
    return out


def storage_throughput(
    series: Sequence[Series], sources: Sequence[str], start: float, end: float
) -> dict[str, Any] | None:
    """Return the storage throughput over [start, end] in Gbit/s (seed 004: 0-24 Gbit/s).

    Per source: the hosts' disk counters (disk_read_bytes, disk_write_bytes) where it has
    them, else its ports' byte counters seen from the storage system (out = read from it,
    in = written to it). Summed over the sources; None when no source has either.
    """
    read = write = 0.0
    valid, methods, found = True, set(), False
    for source in sources:
        own = [s for s in series if s.source == source]
        disks = [s for s in own if s.metric in (DISK_READ, DISK_WRITE)]
        chosen = disks or [s for s in own if s.metric in (IF_IN, IF_OUT)]
        if not chosen:
            continue
        methods.add("disk_counters" if disks else "port_counters")
        for s in chosen:
            rate, ok = _rate(s, start, end)
            valid = valid and ok
            if rate is None:
                continue
            found = True
            if s.metric in (DISK_READ, IF_OUT):
                read += rate
            else:
                write += rate
    if not found:
        return None
    return {
        "gbit_s": read + write,
        "read_gbit_s": read,
        "write_gbit_s": write,
        "method": "+".join(sorted(methods)),
        "valid": valid,
    }


def power_by_gpu_util(
    powers: Sequence[Series], utils: Sequence[Series], start: float, end: float
) -> list[dict[str, Any]]:
    """Bucket the servers' summed power (W) by the GPUs' mean utilisation, in deciles.

    At each power sample time inside [start, end] where every power series and at least one
    utilisation series (%) has samples on both sides, the summed power is filed under the
    decile of the mean utilisation (100 % into 90-100 %). Returns the non-empty deciles with
    the number of points, mean, min and max power.
    """
    clean_p = [_clean(s)[:2] for s in powers]
    clean_u = [_clean(s)[:2] for s in utils]
    if not clean_p or not clean_u:
        return []
    grid = sorted({t for ts, _ in clean_p for t in ts if start <= t <= end})
    buckets: dict[int, list[float]] = {}
    for t in grid:
        if not all(ts and ts[0] <= t <= ts[-1] for ts, _ in clean_p):
            continue
        loads = [_at(ts, us, t) for ts, us in clean_u if len(ts) > 1 and ts[0] <= t <= ts[-1]]
        if not loads:
            continue
        power = math.fsum(_at(ts, ps, t) if len(ts) > 1 else ps[0] for ts, ps in clean_p)
        decile = min(max(int(sum(loads) / len(loads) // 10), 0), 9)
        buckets.setdefault(decile, []).append(power)
    return [
        {
            "gpu_util_from": d / 10,
            "gpu_util_to": (d + 1) / 10,
            "points": len(ps),
            "mean_power_w": math.fsum(ps) / len(ps),
            "min_power_w": min(ps),
            "max_power_w": max(ps),
        }
        for d, ps in sorted(buckets.items())
    ]
