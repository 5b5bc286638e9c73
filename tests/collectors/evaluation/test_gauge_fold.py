"""A folded utilisation gauge answers as the raw evaluation does on the same samples."""

from __future__ import annotations

import json
import math
from itertools import pairwise
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dcmeter.collectors.evaluation.gauge_fold import GaugeFold, hist_median_s
from dcmeter.collectors.evaluation.loads import GaugeMean, mean_utilisation
from dcmeter.collectors.evaluation.quality import series_quality
from dcmeter.collectors.evaluation.series import Series

MAX_INTERVAL = 900.0
T0 = 1_790_000_000.0

steps_s = st.one_of(
    st.floats(0.001, 120.0), st.sampled_from([60.0, 60.0, 59.5, 1000.0]), st.floats(900.0, 5000.0)
)
values = st.one_of(
    st.floats(0.0, 100.0), st.floats(-50.0, 250.0), st.sampled_from([math.inf, 100.0, 0.0])
)


@st.composite
def cases(draw: Any) -> tuple[list[float], list[float], float, float]:
    """A random gauge series and a window with its edges anywhere around it."""
    n = draw(st.integers(0, 40))
    ts, t = [], T0
    for _ in range(n):
        t += draw(steps_s)
        ts.append(t)
    vs = [draw(values) for _ in range(n)]
    span = (ts[-1] - ts[0]) if n > 1 else 600.0
    start = T0 + draw(st.floats(-0.3, 1.3)) * span
    if n and draw(st.booleans()):
        start = draw(st.sampled_from(ts))  # an edge on a sample
    end = start + draw(st.floats(0.001, 1.5)) * span + draw(st.sampled_from([0.0, 30.0]))
    if n and draw(st.booleans()) and max(ts) > start:
        end = draw(st.sampled_from([x for x in ts if x > start]))
    return ts, vs, start, end


def _series(ts: list[float], vs: list[float]) -> Series:
    return Series("host-1", "cpu_util_pct", "%", "gauge", ts, vs, labels={"kind": "compute"})


def _fold(ts: list[float], vs: list[float], start: float, end: float | None) -> GaugeFold:
    f = GaugeFold(start, end, 0.01, MAX_INTERVAL, 900.0)
    for t, v in zip(ts, vs, strict=True):
        f.add(t, v)
    # through its persisted states, as the collector keeps it: the packed form the store
    # writes (every field as it was, NaN and inf included) and the JSON of older rows
    packed = GaugeFold.from_packed(f.to_packed())
    via_json = GaugeFold.from_state(json.loads(json.dumps(f.to_state())))
    assert json.dumps(packed.to_state()) == json.dumps(via_json.to_state()) == json.dumps(
        f.to_state())
    return packed


def _same_mean(got: GaugeMean | None, want: GaugeMean) -> None:
    assert got is not None
    assert (got.source, got.samples, got.valid) == (want.source, want.samples, want.valid)
    assert got.issues == want.issues
    for name in ("mean", "covered_s", "coverage"):
        a, b = getattr(got, name), getattr(want, name)
        assert (a is None) == (b is None), name
        if a is not None:
            assert a == pytest.approx(b, rel=1e-9, abs=1e-12), name


def _same_quality(got: dict[str, Any] | None, want: dict[str, Any]) -> None:
    assert got is not None
    assert got.keys() == want.keys()
    for key, b in want.items():
        a = got[key]
        if key == "median_interval_s":
            assert (a is None) == (b is None)
            if a is not None:
                assert abs(a - b) <= 0.001
        elif isinstance(b, float):
            assert a == pytest.approx(b, rel=1e-9, abs=1e-9), key
        else:
            assert a == b, key


def _edge_tolerance_clear(ts: list[float], vs: list[float], start: float, end: float) -> bool:
    """False where the 1 ms median could flip mean_utilisation's edge verdict."""
    good = [t for t, v in zip(ts, vs, strict=True) if math.isfinite(v)]
    diffs = sorted(b - a for a, b in pairwise(good))
    if not diffs:
        return True
    tol = 2.0 * (diffs[len(diffs) // 2] if len(diffs) % 2 else
                 (diffs[len(diffs) // 2 - 1] + diffs[len(diffs) // 2]) / 2)
    inside = [(max(a, start), min(b, end)) for a, b in pairwise(good)
              if min(b, end) > max(a, start)]
    if not inside:
        return True
    shorts = (inside[0][0] - start, end - inside[-1][1])
    return all(abs(s - tol) > 0.002 for s in shorts)


@settings(max_examples=600, deadline=None)
@given(cases())
def test_closed_fold_equals_raw(case: tuple[list[float], list[float], float, float]) -> None:
    ts, vs, start, end = case
    raw = _series(ts, vs)
    fold = _fold(ts, vs, start, end)
    stub = _series([], [])
    if _edge_tolerance_clear(ts, vs, start, end):
        _same_mean(fold.mean_utilisation(stub, start, end), mean_utilisation(raw, start, end))
    _same_quality(fold.series_quality(stub, start, end, MAX_INTERVAL),
                  series_quality(raw, start, end, MAX_INTERVAL))


@settings(max_examples=400, deadline=None)
@given(cases(), st.floats(0.0, 2000.0))
def test_open_fold_equals_raw_at_now(
    case: tuple[list[float], list[float], float, float], after_last: float
) -> None:
    ts, vs, start, _ = case
    now = (ts[-1] if ts else start) + after_last
    if not now > start:
        return
    raw = _series(ts, vs)
    fold = _fold(ts, vs, start, None)
    stub = _series([], [])
    if _edge_tolerance_clear(ts, vs, start, now):
        _same_mean(fold.mean_utilisation(stub, start, now), mean_utilisation(raw, start, now))
    _same_quality(fold.series_quality(stub, start, now, MAX_INTERVAL),
                  series_quality(raw, start, now, MAX_INTERVAL))
    # closed later at that time, it still answers the same
    fold.close(now)
    _same_quality(fold.series_quality(stub, start, now, MAX_INTERVAL),
                  series_quality(raw, start, now, MAX_INTERVAL))


def test_open_fold_refuses_an_end_before_its_last_sample() -> None:
    fold = _fold([T0, T0 + 60, T0 + 120], [10.0, 20.0, 30.0], T0, None)
    stub = _series([], [])
    assert fold.mean_utilisation(stub, T0, T0 + 90) is None
    assert fold.series_quality(stub, T0, T0 + 90, MAX_INTERVAL) is None
    assert fold.mean_utilisation(stub, T0, T0 + 120) is not None


def test_out_of_order_sample_makes_it_dirty() -> None:
    fold = GaugeFold(T0, None, 0.01, MAX_INTERVAL, 900.0)
    fold.add(T0 + 60, 10.0)
    fold.add(T0 + 60, 10.0)
    assert fold.dirty
    assert fold.mean_utilisation(_series([], []), T0, T0 + 600) is None


def test_closing_before_a_folded_sample_makes_it_dirty() -> None:
    fold = _fold([T0, T0 + 60, T0 + 120], [10.0, 20.0, 30.0], T0, None)
    fold.close(T0 + 90)
    assert fold.dirty


def test_other_unit_or_settings_are_refused() -> None:
    fold = _fold([T0, T0 + 60], [10.0, 20.0], T0, None)
    ratio = Series("host-1", "cpu_util_pct", "1", "gauge", [], [])
    assert fold.mean_utilisation(ratio, T0, T0 + 60) is None
    assert fold.series_quality(_series([], []), T0, T0 + 60, 600.0) is None
    assert not fold.usable(T0, T0 + 60, MAX_INTERVAL, 300.0)


def test_histogram_median_to_the_millisecond() -> None:
    assert hist_median_s({}) is None
    assert hist_median_s({60000: 3, 1000: 1}) == 60.0
    assert hist_median_s({1000: 1, 3000: 1}) == 2.0
    assert hist_median_s({1000: 2, 5000: 2}) == 3.0
