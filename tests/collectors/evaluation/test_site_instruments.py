"""[[instruments]] of the site file and the result's instrument list (pure part)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from dcmeter.base.configfile import ConfigError
from dcmeter.collectors.evaluation.instruments import instrument_list, roles_of
from dcmeter.collectors.evaluation.series import Series
from dcmeter.collectors.evaluation.site import load_site

SITE = """
[site]
name = "dc"
region = "north-2023"

[energy]
total = ["meter-total"]
it = ["meter-it", "meter-total"]
{instruments}
"""
CAL = """
[[instruments]]
source = "meter-total"
calibrated = 2025-12-04
calibration_due = {due}
certificate = "JL-1"
accuracy = 0.002
accuracy_basis = "class 0.2S, IEC 62053-22"
"""
# The window ends 2026-12-04 15:59:59 UTC = 23:59:59 in China (the end day is the 4th).
END = datetime(2026, 12, 4, 15, 59, 59, tzinfo=UTC).timestamp()


def _site(tmp_path: Path, instruments: str) -> Path:
    path = tmp_path / "site.toml"
    path.write_text(SITE.format(instruments=instruments), encoding="utf-8")
    return path


def _stored(source: str, accuracy: float | None) -> dict[str, object]:
    return {"agent": "a1", "source": source, "protocol": "modbus", "address": "h:502/1",
            "labels": {"kind": "meter", "point": "total"}, "accuracy": accuracy,
            "device": {"model": "PM5100"}, "samples": 12}


@pytest.mark.parametrize(("due", "overdue"), [
    ("2026-12-04", False),  # due on the window's end day: still within its period
    ("2026-12-03", True),   # due the day before: overdue
])
def test_overdue_at_the_end_day_boundary(tmp_path: Path, due: str, overdue: bool) -> None:
    site = load_site(_site(tmp_path, CAL.format(due=due)))
    rows, issues = instrument_list(site, [_stored("meter-total", 0.005)], [], END)
    (row,) = rows
    assert row["overdue"] is overdue
    assert issues == ([
        f"instrument meter-total (agent a1): calibration was due {due}, before the window's"
        " end (2026-12-04); recalibrate it or give its current certificate under"
        " [[instruments]]"] if overdue else [])


def test_the_end_day_is_the_sites() -> None:
    # 16:00 UTC on the 4th is already the 5th in China (the default zone, UTC+8), still the
    # 4th in Berlin (UTC+1): a calibration due on the 4th lapsed only for the first.
    from zoneinfo import ZoneInfo

    from dcmeter.collectors.evaluation.instruments import end_day
    shanghai, berlin = ZoneInfo("Asia/Shanghai"), ZoneInfo("Europe/Berlin")
    assert end_day(END, shanghai) == date(2026, 12, 4)
    assert end_day(END + 1, shanghai) == date(2026, 12, 5)
    assert end_day(END + 1, berlin) == date(2026, 12, 4)
    assert end_day(END + 8 * 3600, berlin) == date(2026, 12, 5)


def test_accuracy_from_the_site_file_then_agent_then_default(tmp_path: Path) -> None:
    site = load_site(_site(tmp_path, CAL.format(due="2027-12-04")))
    it_series = Series("meter-it", "energy_import_kwh", "kWh", "counter", [0.0], [1.0],
                       labels={"kind": "meter"})
    rows, _ = instrument_list(
        site, [_stored("meter-total", 0.005), _stored("meter-it", None)], [it_series], END)
    total, it = rows
    assert (total["accuracy"], total["accuracy_source"]) == (0.002, "site file")
    assert total["accuracy_basis"] == "class 0.2S, IEC 62053-22"
    assert (total["calibrated"], total["calibration_due"], total["certificate"]) == (
        "2025-12-04", "2027-12-04", "JL-1")
    assert total["roles"] == ["energy.total", "energy.it"]
    assert total["device"] == {"model": "PM5100"} and total["samples"] == 12
    assert (it["accuracy"], it["accuracy_source"]) == (0.005, "default")  # a meter: class 0.5S
    assert it["calibrated"] is None and it["overdue"] is False
    rows, _ = instrument_list(site, [_stored("meter-it", 0.01)], [it_series], END)
    assert (rows[0]["accuracy"], rows[0]["accuracy_source"]) == (0.01, "agent config")


def test_unknown_and_doubled_sources_are_config_errors(tmp_path: Path) -> None:
    text = CAL.format(due="2027-01-01").replace("meter-total", "meter-x")
    with pytest.raises(ConfigError, match=r"instruments\[0\]\.source.*'meter-x' is not a"
                       r" source the site file names; valid: meter-it, meter-total"):
        load_site(_site(tmp_path, text))
    twice = CAL.format(due="2027-01-01") * 2
    with pytest.raises(ConfigError, match=r"instruments\[1\]\.source.*listed twice"):
        load_site(_site(tmp_path, twice))


def test_due_before_calibration_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="calibration_due 2025-01-01 is before calibrated"):
        load_site(_site(tmp_path, CAL.format(due="2025-01-01")))


def test_roles_name_every_list(tmp_path: Path) -> None:
    site = load_site(_site(tmp_path, ""))
    assert roles_of(site) == {"meter-total": ["energy.total", "energy.it"],
                              "meter-it": ["energy.it"]}
