"""The report as a document: numbers, times, the site's time zone, plot buckets sized by counter
resolution, the instrument list, and every part of the page read back from the PDF and PNG
that real headless Chromium prints, in English and Chinese."""

from __future__ import annotations

import math
import subprocess
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from test_report import need, png_pixels

from dcmeter import __version__
from dcmeter.base.configfile import ConfigError
from dcmeter.collectors.evaluation.evaluate import evaluate
from dcmeter.collectors.evaluation.jsonl import parse_rfc3339
from dcmeter.collectors.evaluation.series import Series
from dcmeter.collectors.evaluation.site import Site, load_site
from dcmeter.collectors.reporting.report import render_html, render_pdf, render_png, series_from
from dcmeter.collectors.reporting.report_buckets import (
    Role,
    least_bucket_s,
    mean_power_kw,
    nice_s,
    resolution_kwh,
)
from dcmeter.collectors.reporting.report_format import fmt, hms, local_time, plain, utc_offset
from dcmeter.collectors.reporting.report_html import LABELS

SHANGHAI = ZoneInfo("Asia/Shanghai")


# -- numbers, durations, times ---------------------------------------------------------------

@pytest.mark.parametrize("value,quantity,text", [
    (2.747e-05, "ccue", "0.0000275"),        # never 2.747e-05
    (65880.4, "energy_kwh", "65,880"),       # never 6.588e+04; integer digits all kept
    (306.9432, "energy_kwh", "306.94"),      # 5 significant digits
    (12.3456, "energy_kwh", "12.346"),
    (1.342137, "pue", "1.342"),
    (1.4, "pue", "1.400"),
    (4.2, "rating", "4.2"),                  # NEE 4.2 is 4.2, not 4
    (21500, "rating", "21,500"),
    (1.2, "threshold", "1.2"),
    (224, "threshold", "224"),
    (0.5306, "grid", "0.5306"),
    (0.55, "grid", "0.55"),
    (98.4912, "aee", "98.49"),
    (1.234e-16, "ace", "0.000000000000000123"),
    (900.0, "seconds", "900"),
    (12.5, "seconds", "12.5"),
    (151, "count", "151"),
    (-0.00001234, "value", "-0.00001234"),
    (0.0, "pue", "0"),
    (None, "pue", "—"),
    (math.nan, "pue", "—"),
    (True, "count", "—"),
])
def test_numbers_are_plain_decimals(value: Any, quantity: str, text: str) -> None:
    assert fmt(value, quantity) == text
    assert "e-" not in fmt(value, quantity) and "e+" not in fmt(value, quantity)


@pytest.mark.parametrize("seconds,text", [
    (263.4, "0:04:23"), (3600, "1:00:00"), (0.073 * 3600, "0:04:23"), (93787, "26:03:07"),
    (59.5, "0:01:00"), (None, "—"),
])
def test_durations_are_h_mm_ss(seconds: Any, text: str) -> None:
    assert hms(seconds) == text


def test_times_are_local_to_the_second() -> None:
    # The microsecond UTC time, on a Shanghai site: 18:23:38 UTC is 02:23:38 next day.
    assert local_time("2026-12-03T18:23:38.291858Z", SHANGHAI) == "2026-12-04 02:23:38"
    assert local_time(0.0, ZoneInfo("UTC")) == "1970-01-01 00:00:00"
    assert local_time(None, SHANGHAI) == "—"
    assert utc_offset(SHANGHAI, 0.0) == "Asia/Shanghai (UTC+08:00)"
    assert utc_offset(ZoneInfo("America/St_Johns"), 0.0) == "America/St_Johns (UTC-03:30)"
    assert plain(4.2, 6, strip=True) == "4.2"


def _site_file(tmp_path: Path, extra: str) -> Path:
    path = tmp_path / "site.toml"
    path.write_text(f'[site]\nname = "hall"\nregion = "east-2023"\n{extra}\n'
                    '[energy]\ntotal = ["meter-total"]\nit = ["meter-it"]\n')
    return path


def test_the_site_file_names_the_time_zone(tmp_path: Path) -> None:
    assert load_site(_site_file(tmp_path, "")).site.timezone == "Asia/Shanghai"
    site = load_site(_site_file(tmp_path, 'timezone = "Europe/Berlin"\naddress = "A"\n'
                                          'operator = "B"'))
    assert (site.site.timezone, site.site.address, site.site.operator) == (
        "Europe/Berlin", "A", "B")
    path = _site_file(tmp_path, 'timezone = "Mars/Olympus"')
    with pytest.raises(ConfigError) as e:
        load_site(path)
    text = str(e.value)
    assert str(path) in text and "site.timezone" in text and "Mars/Olympus" in text


# -- plot buckets ----------------------------------------------------------------------------

T0 = parse_rfc3339("2026-12-03T10:00:00Z")
EVERY_S = 5.0


def counter(source: str, kw: float, seconds: float) -> Series:
    """A whole-Wh energy register (read in kWh) at constant `kw`, read every 5 s."""
    n = int(seconds / EVERY_S) + 1
    ts = [T0 - 60 + i * EVERY_S for i in range(n + 24)]
    wh = [math.floor(kw * (t - ts[0]) / 3.6 + 0.5) for t in ts]  # kW·s / 3.6 = Wh
    return Series(source, "energy_import_kwh", "kWh", "counter", ts, [w / 1000 for w in wh],
                  labels={"kind": "meter"}, accuracy=0.005)


BUCKET_SITE = Site.model_validate({
    "site": {"name": "bucket hall", "region": "east-2023", "address": "1 Test Road",
             "operator": "Test Operator Ltd."},
    "energy": {"total": ["meter-total"], "it": ["meter-it"], "it_point": "it_input"},
})


def test_the_bucket_rule_worked_by_hand() -> None:
    total, it = counter("meter-total", 50.0, 600), counter("meter-it", 40.0, 600)
    assert resolution_kwh(total) == pytest.approx(0.001)  # a 1 Wh register
    assert mean_power_kw(total) == pytest.approx(50.0, rel=1e-3)
    assert mean_power_kw(it) == pytest.approx(40.0, rel=1e-3)
    # (0.001 kWh / 50 kW + 0.001 kWh / 40 kW) / 0.005 = 0.009 h = 32.4 s, read as 1:00
    assert least_bucket_s([Role(0.001, 50.0), Role(0.001, 40.0)]) == pytest.approx(32.4)
    assert nice_s(32.4) == 60.0 and nice_s(60.0) == 60.0 and nice_s(12.5) == 15.0
    assert least_bucket_s([Role(0.0, 50.0)]) == 0.0  # a power gauge: no step
    # A 10-minute window: 600 / 48 = 12.5 s and the 5 s sampling lose to 32.4 s -> 60 s.
    s = series_from("infrastructure", BUCKET_SITE, [total, it], T0, T0 + 600)
    assert s.step_s == 60.0 and len(s.pue) == 10
    assert s.rule["least_s"] == pytest.approx(32.4, rel=1e-2)
    assert all(v == pytest.approx(1.25, rel=0.005) for _, v in s.pue)
    # What the rule prevents: 5 s buckets read 55 or 56 Wh of IT energy, a PUE zig-zag.
    fine = series_from("infrastructure", BUCKET_SITE, [total, it], T0, T0 + 600, step_s=5.0)
    pues = [v for _, v in fine.pue if v is not None]
    assert max(pues) - min(pues) > 0.01 * 1.25


# -- the document ------------------------------------------------------------------------------

INSTRUMENTS = [
    {"source": "meter-total", "agent": "agent-1", "protocol": "modbus",
     "address": "10.0.0.5:502/1", "kind": "meter", "point": "total",
     "roles": ["total"], "device": {"make": "Acrel", "model": "DTSD1352", "serial": "SN-4711",
                                    "firmware": "2.01"},
     "accuracy": 0.005, "accuracy_source": "class 0.5S certificate",
     "calibrated": "2026-01-10", "calibration_due": "2027-01-10", "certificate": "CAL-0815",
     "overdue": False, "samples": 145},
    {"source": "meter-it", "agent": "agent-1", "protocol": "modbus", "kind": "meter",
     "roles": ["it"], "device": {}, "calibration_due": "2026-06-01", "overdue": True},
]


def document() -> tuple[dict[str, Any], Any]:
    """An infrastructure result over the whole-Wh counters, completed by hand with what a
    stored window and the instrument list add."""
    series = [counter("meter-total", 50.0, 900), counter("meter-it", 40.0, 900)]
    result = evaluate("infrastructure", BUCKET_SITE, series, T0, T0 + 263.4)
    result["window"].update({"id": 7, "kind": "infrastructure", "state": "closed",
                             "note": "acceptance run", "opened_by": "engineer-wang",
                             "closed_by": "reviewer-li", "scope": None})
    result["revision"] = {"number": 2, "reason": "re-evaluated", "by": "reviewer-li",
                          "computed_at": "2026-12-03T11:00:05Z", "site_sha256": "ab" * 32,
                          "software": __version__}
    result["instruments"] = INSTRUMENTS
    return result, series_from("infrastructure", BUCKET_SITE, series, T0, T0 + 263.4)


def expected(lang: str) -> list[str]:
    """Every element of the title, window, instrument list and signature block, as printed."""
    L = LABELS[lang]
    return [
        L["title"], "bucket hall", L["address"], "1 Test Road", L["operator"],
        "Test Operator Ltd.", "T/CECA-G 0355—2025", "GB 40879-2021", L["basis_h"],
        "2026-12-03 18:00:00", "2026-12-03 18:04:23", "0:04:23",  # local start, end, h:mm:ss
        "Asia/Shanghai (UTC+08:00)", "engineer-wang", "reviewer-li", L["revision"],
        L["version"], __version__, L["generated_at"], "2026-12-03 19:00:05",
        L["indicators"], "1.250", L["instruments"], "Acrel", "DTSD1352", "SN-4711", "CAL-0815",
        "2027-01-10", L["inst_overdue"], L["quality"], L["uncertainty"], L["evidence"],
        L["signatures"], L["engineer"], L["reviewer"], L["sign_date"],
    ]


def test_the_instrument_list_shows_every_field_or_a_dash() -> None:
    result, s = document()
    html = render_html(result, s, "en")
    assert "Acrel DTSD1352" in html and "SN-4711" in html and "± 0.5 %" in html
    assert "OVERDUE" in html
    row = html.split("<b>meter-it</b>")[1].split("</tr>")[0]
    # make, id, firmware, point, address, accuracy and its source, calibrated, certificate,
    # samples: missing, each a dash
    assert row.count("—") == 10
    result.pop("instruments")
    assert LABELS["en"]["no_instruments"] in render_html(result, s, "en")


def test_a_rating_reads_as_given() -> None:
    result, s = document()
    result["kind"] = "general"
    result["groups"] = [{"name": "egress", "kind": "network", "count": 2, "rating": 4.2,
                         "load": 0.1, "term": 0.0714, "valid": True}]
    html = render_html(result, s, "en")
    assert "<td>egress</td><td>network</td><td class=\"n\">2</td><td class=\"n\">4.2</td>" in html


def test_the_mpe_table_gives_the_it_energy_its_mpe() -> None:
    result, s = document()
    result["uncertainty"]["within_mpe"] = {"energy": True, "energy_it": True}
    result["uncertainty"]["mpe"] = {"energy": 0.01}
    html = render_html(result, s, "en")
    table = html.split(LABELS["en"]["within_mpe"] + "</h3>")[1].split("</table>")[0]
    assert table.count("1.0 %") == 2 and "—" not in table


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_the_printed_report_holds_every_part(lang: str, tmp_path: Path) -> None:
    need("chromium")
    pdftotext = need("pdftotext")
    result, s = document()
    html = render_html(result, s, lang)  # type: ignore[arg-type]
    pdf = tmp_path / f"report-{lang}.pdf"
    render_pdf(html, pdf)
    text = subprocess.run([pdftotext, str(pdf), "-"], check=True, timeout=60,
                          capture_output=True, text=True).stdout
    flat = "".join(text.split())  # table cells wrap: compare without white space
    missing = [e for e in expected(lang) if "".join(e.split()) not in flat]
    assert not missing, f"not in the {lang} PDF: {missing}"
    assert "e-0" not in text and "e+0" not in text
    png = tmp_path / f"report-{lang}.png"
    render_png(html, png, height=2000)
    width, height, colours = png_pixels(png)
    assert (width, height) == (1200, 2000) and len(colours) > 20
