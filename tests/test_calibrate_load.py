"""The operator's and the command driver (dcmeter/cli/calibrate_load.py): the load is set,
then the dwell is held, and a command that fails stops the calibration with one line."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from dcmeter.cli.calibrate_drivers import DriverError
from dcmeter.cli.calibrate_load import LoadDriver
from dcmeter.collectors.evaluation.calibration_plan import Plan


class Clock:
    """A clock that sleeps by moving itself on: the dwell's edges are then exact."""

    def __init__(self) -> None:
        self.t = 1_000.0
        self.slept: list[float] = []

    def sleep(self, s: float) -> None:
        self.slept.append(s)
        self.t += s

    def now(self) -> float:
        return self.t


def _plan(driver: dict[str, Any], points: list[dict[str, Any]]) -> Plan:
    return Plan.model_validate({
        "calibration": {"quantity": "power", "dwell_s": 30, "settle_s": 5, "repetitions": 2},
        "instrument": {"source": "server-0001", "metric": "power_w"},
        "reference": {"kind": "series", "source": "analyser-001", "metric": "power_w"},
        "driver": driver, "points": points,
    })


def test_the_command_sets_the_load_then_settle_and_dwell(tmp_path: Path) -> None:
    load = tmp_path / "load"
    plan = _plan({"kind": "command"}, [
        {"label": "50 %", "command": ["sh", "-c", f"echo 0.5 > {load}"]}])
    clock = Clock()
    driver = LoadDriver(plan, sleep=clock.sleep, now=clock.now)
    m = driver.measure(plan.points[0], 1)
    assert load.read_text() == "0.5\n"
    # settle 5 s from t = 1000, then the dwell: [1005, 1035]
    assert (m.start, m.end) == (1005.0, 1035.0)
    assert clock.slept == [5, 30]
    assert m.reference is None and m.indicated is None


def test_a_failing_command_is_one_line_naming_it() -> None:
    plan = _plan({"kind": "command"}, [
        {"label": "full", "command": [sys.executable, "-c", "import sys; sys.exit('no load')"]}])
    clock = Clock()
    with pytest.raises(DriverError) as info:
        LoadDriver(plan, sleep=clock.sleep, now=clock.now).measure(plan.points[0], 1)
    assert str(info.value).startswith("point 'full': ")
    assert "exited 1: no load" in str(info.value)
    assert clock.slept == []  # nothing measured


def test_a_missing_program_is_one_line() -> None:
    plan = _plan({"kind": "command"}, [{"label": "x", "command": ["/no/such/loader"]}])
    with pytest.raises(DriverError, match=r"point 'x': /no/such/loader: "):
        LoadDriver(plan, sleep=lambda s: None).measure(plan.points[0], 1)


def test_the_operator_is_asked_once_per_point() -> None:
    plan = _plan({"kind": "none"}, [{"label": "idle"}, {"label": "full"}])
    asked: list[str] = []
    clock = Clock()
    driver = LoadDriver(plan, sleep=clock.sleep, now=clock.now,
                        ask=lambda q: asked.append(q) or "")
    for point in plan.points:
        for rep in (1, 2):
            driver.measure(point, rep)
    assert asked == ["set the load to point 'idle', then press Enter: ",
                     "set the load to point 'full', then press Enter: "]
