"""The calibration plan (collectors/evaluation/calibration_plan.py): what a plan file may say."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from dcmeter.collectors.evaluation.calibration_plan import Plan


def _plan(**over: Any) -> dict[str, Any]:
    plan: dict[str, Any] = {
        "calibration": {"quantity": "network", "repetitions": 2, "dwell_s": 5, "settle_s": 1},
        "instrument": {"kind": "series", "source": "sw-lo", "metric": "if_out_octets",
                       "labels": {"port": "lo"}},
        "reference": {"kind": "iperf3", "name": "iperf3 3.12"},
        "driver": {"kind": "iperf3"},
        "points": [{"label": "0.5 Gbit/s", "rate": "500M"}, {"label": "1 Gbit/s", "rate": "1G"}],
    }
    for key, value in over.items():
        plan[key] = value if not isinstance(value, dict) else {**plan.get(key, {}), **value}
    return plan


def _error(plan: dict[str, Any]) -> str:
    with pytest.raises(ValidationError) as info:
        Plan.model_validate(plan)
    return str(info.value)


def test_a_whole_plan_reads_with_its_defaults() -> None:
    plan = Plan.model_validate(_plan())
    assert plan.calibration.decision_rule == "simple"
    assert plan.calibration.sync_s == 0.5
    assert plan.reference.mpe is None  # the quantity's reference-standard MPE applies
    assert [p.rate for p in plan.points] == ["500M", "1G"]


@pytest.mark.parametrize(("over", "says"), [
    ({"calibration": {"typo_s": 1}}, "typo_s"),
    ({"calibration": {"repetitions": 0}}, "repetitions"),
    ({"calibration": {"dwell_s": 0}}, "dwell_s"),
    ({"calibration": {"decision_rule": "lenient"}}, "decision_rule"),
    ({"calibration": {"sync_s": float("nan")}}, "sync_s"),
    ({"instrument": {"kind": "series", "source": None}}, "needs source and metric"),
    ({"instrument": {"kind": "run", "window": None}}, "needs window"),
    ({"reference": {"kind": "series"}}, "a reference of kind series needs source and metric"),
    ({"reference": {"calibrated": "2026-05-01", "due": "2026-04-30"}}, "before calibrated"),
    ({"reference": {"mpe": {"relative": 1.5}}}, "relative"),
    ({"driver": {"kind": "fio"}}, "driver kind must be iperf3, not fio"),
    ({"points": [{"label": "a", "rate": "1G"}, {"label": "a", "rate": "2G"}]}, "a given twice"),
    ({"points": [{"label": "a"}]}, "point(s) a need a rate"),
    ({"points": []}, "points"),
])
def test_a_plan_that_cannot_be_followed_is_refused(over: dict[str, Any], says: str) -> None:
    plan = _plan()
    for key, value in over.items():
        plan[key] = value if not isinstance(value, dict) else {**plan[key], **value}
    assert says in _error(plan)


def test_a_workload_driver_needs_its_command() -> None:
    plan = _plan(calibration={"quantity": "inference"},
                 instrument={"kind": "run", "window": 3, "source": None, "metric": None},
                 reference={"kind": "workload"}, driver={"kind": "workload"},
                 points=[{"label": "batch 1"}])
    assert "driver workload needs command" in _error(plan)
    plan["driver"]["command"] = ["python3", "w.py"]
    assert Plan.model_validate(plan).driver.command == ["python3", "w.py"]
