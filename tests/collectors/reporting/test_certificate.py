"""The calibration certificate (collectors/reporting/certificate.py) of a hand-made power
calibration record (calibration_record.json: 3 points × 3 repetitions against a reference
analyser, guarded rule, the 18 kW point a conditional pass), in English and Chinese, as HTML
and as the PDF real headless Chromium prints, read back with pdftotext."""

from __future__ import annotations

import copy
import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_report import need

from dcmeter.collectors.evaluation.issues import attach_details, issue
from dcmeter.collectors.reporting.certificate import certificate_number, render_certificate
from dcmeter.collectors.reporting.certificate_format import (
    decimals_of_u,
    divisor,
    dof,
    percent_with_u,
    significant,
    with_u,
)
from dcmeter.collectors.reporting.report_print import render_pdf

RECORD_FILE = Path(__file__).with_name("calibration_record.json")
SERIAL = "EP3K-2291-0457"

# The figures each page must show, worked by hand from the record (GUM 7.2.6: U to two
# significant digits, the means, E and the MPE to U's decimal place):
#   2 kW:  R̄ = (2000.4 + 2001.1 + 1999.8)/3 = 2000.433, X̄ = 2019.0, E = 18.57;
#          u: ref 0.01·2000.433/√3 = 11.550, s = 1.3503 → s/√3 = 0.7796, resolutions
#          0.5/√3 = 0.2887 and 0.05/√3 = 0.02887, sync (0.5/30)·14 /√3 = 0.1347;
#          u_c = √(11.550² + 0.7796² + 0.2887² + 0.02887² + 0.1347²) = 11.580, U = 23.16 → 23 W;
#          R̄ → 2,000, X̄ → 2,019, E → 19, MPE 0.05·2000.433 = 100.02 → 100, U/R̄ = 1.158 % → 1.2 %
#   10 kW: u_c = 57.84, U = 115.69 → 120 W (tens): R̄ 10,003.27 → 10,000, X̄ → 10,180,
#          E 179.07 → 180, MPE 500.16 → 500
#   18 kW: u_c = 104.03, U = 208.06 → 210 W: R̄ 18,000.33 → 18,000, X̄ 18,781.33 → 18,780,
#          E = 781.0 → 780, MPE 900.02 → 900, E/R̄ = 4.339 % → 4.3 %;
#          guarded: MPE − U = 691.96 < |E| = 781 ≤ MPE = 900.02 → conditional pass
#   E/R̄ to the relative U's place (0.1 %): 18.567/2000.433 = 0.928 % → 0.9 %,
#   179.07/10003.27 = 1.790 % → 1.8 %, 4.339 % → 4.3 %;
#   s (two digits) of the errors: 2 kW 18.6, 19.9, 17.2: Σd² = 3.6467, s = √(3.6467/2) = 1.35
#   → 1.4; 10 kW 177.8, 174.3, 185.1: Σd² = 60.727, s = 5.51 → 5.5; 18 kW 781.4, 788.7,
#   772.9: Σd² = 125.06, s = 7.91 → 7.9
POINTS = {  # label: (R̄, X̄, E, U, MPE, relative U, E/R̄, s)
    "2 kW": ("2,000", "2,019", "19", "23", "100", "1.2 %", "0.9 %", "1.4"),
    "10 kW": ("10,000", "10,180", "180", "120", "500", "1.2 %", "1.8 %", "5.5"),
    "18 kW": ("18,000", "18,780", "780", "210", "900", "1.2 %", "4.3 %", "7.9"),
}
CONDITIONAL = {"en": "Conditional pass", "zh": "有条件合格"}
PROVISIONAL = {"en": "PROVISIONAL — calibration not closed", "zh": "临时 — 校准尚未结束"}


def record() -> dict[str, Any]:
    return json.loads(RECORD_FILE.read_text(encoding="utf-8"))  # type: ignore[no-any-return]


def strings(v: Any) -> Iterator[str]:
    """Every text of a record (its keys excepted): the record's own data, not the page's."""
    if isinstance(v, str):
        yield v
    elif isinstance(v, dict):
        for x in v.values():
            yield from strings(x)
    elif isinstance(v, list):
        for x in v:
            yield from strings(x)


def cells(html: str) -> list[str]:
    """The rows of every table in `html` as 'th|td|…' texts (tags stripped)."""
    rows = re.findall(r"<tr>(.*?)</tr>", html)
    return ["|".join(re.sub(r"<[^>]+>", "", c) for c in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", r))
            for r in rows]


def test_the_rounding_follows_gum_7_2_6() -> None:
    assert decimals_of_u(208.055) == -1 and significant(208.055, 2) == "210"
    assert decimals_of_u(23.16) == 0 and significant(0.0234, 2) == "0.023"
    # 9.96 to two digits carries into a new digit: 10, and the values go to units.
    assert significant(9.96, 2) == "10" and with_u(1234.56, 9.96) == "1,235"
    assert with_u(18000.333, 208.06) == "18,000" and with_u(781.0, 208.06) == "780"
    assert with_u(2.5, None) == "2.5000"  # no U: five significant digits
    assert percent_with_u(0.043388, 0.011558) == "4.3 %"
    assert divisor(3 ** 0.5) == "√3" and divisor(2.0) == "2.00" and divisor(1.0) == "1.00"
    assert dof(None) == "∞" and dof(539124.54) == "539,124" and dof(2) == "2"


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_the_points_table_shows_the_hand_worked_figures(lang: str) -> None:
    html = render_certificate(record(), lang)  # type: ignore[arg-type]
    rows = cells(html)
    for label, (r, x, e, u, mpe, rel_u, rel_e, s) in POINTS.items():
        row = next(c for c in rows if c.startswith(f"{label}|") and c.count("|") == 9)
        assert row.split("|")[1:9] == [r, x, e, rel_e, s, u, rel_u, mpe], row
    assert "DCM-CAL-7" in html and SERIAL in html
    assert CONDITIONAL[lang] in html
    # Self-contained: nothing to fetch, no script.
    assert not re.search(r"(src|href)\s*=|<script|url\(", html, re.IGNORECASE)
    assert PROVISIONAL[lang] not in html  # the record is closed


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_an_open_record_is_marked_provisional(lang: str) -> None:
    r = record()
    r["state"] = "open"
    html = render_certificate(r, lang)  # type: ignore[arg-type]
    assert html.count(PROVISIONAL[lang]) == 2  # the banner and the watermark of each page


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_a_missing_device_shows_dashes(lang: str) -> None:
    r = record()
    r["instrument"]["device"] = None
    r["instrument"]["description"] = None
    html = render_certificate(r, lang)  # type: ignore[arg-type]
    names = {"en": ["Make", "Model", "Serial number", "Firmware"],
             "zh": ["制造商", "型号", "出厂编号", "固件版本"]}[lang]
    instrument = html.split("</table>", 2)[1]  # the table after the title block
    for name in names:
        assert f"<th>{name}</th><td>—</td>" in instrument, name
    assert SERIAL not in html


@pytest.mark.parametrize(("result", "en", "zh", "reason"), [
    ("pass", "Pass", "合格", "|E| = 780 W ≤ MPE − U = 690 W"),
    ("conditional_fail", "Conditional fail", "有条件不合格",
     "MPE = 900 W &lt; |E| = 780 W ≤ MPE + U = 1,110 W"),
    ("fail", "Fail", "不合格", "|E| = 780 W &gt; MPE + U = 1,110 W"),
])
def test_each_statement_word_is_translated(result: str, en: str, zh: str, reason: str) -> None:
    r = record()
    r["points"][2]["statement"]["result"] = r["statement"]["result"] = result
    for lang, word in (("en", en), ("zh", zh)):
        html = render_certificate(r, lang)  # type: ignore[arg-type]
        assert f"{word}</span>" in html and reason in html
        # Never a code word (conditional_fail) on the page: the record's keys and values
        # are not the page's words.
        text = re.sub(r"<[^>]+>", "", html)
        for code in ("conditional_pass", "conditional_fail", "not_stated", "reference_mpe",
                     "resolution_indicated", "synchronisation"):
            assert code not in text, (lang, code)


def test_an_unknown_language_is_refused() -> None:
    with pytest.raises(ValueError, match="'en' or 'zh'"):
        render_certificate(record(), "fr")  # type: ignore[arg-type]


# Latin words the Chinese certificate may show, each for a reason:
ALLOWED = {
    "W", "kW",                          # units (the quantity's unit symbol, point labels)
    "DCM", "CAL",                       # the certificate number DCM-CAL-{id}
    "ILAC", "G", "GUM", "dcmeter",      # cited documents, the software's name
    "E", "X", "R", "U", "MPE", "k", "u", "c", "eff", "a", "w",  # the model's symbols
    "A", "B",                           # type A / type B evaluation (GUM 4.2, 4.3)
    "AI",                               # AI computing (seed 004's own term)
    "Asia", "Shanghai", "UTC",          # the time zone's IANA name and offset
}


@pytest.fixture(scope="module")
def printed(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str], str]:
    """The PDF text of the closed and the open record in each language."""
    need("chromium")
    pdftotext = need("pdftotext")
    texts = {}
    for state in ("closed", "open"):
        r = record()
        r["state"] = state
        for lang in ("en", "zh"):
            pdf = tmp_path_factory.mktemp("cert") / f"cert-{lang}.pdf"
            render_pdf(render_certificate(r, lang), pdf)  # type: ignore[arg-type]
            texts[state, lang] = subprocess.run(
                [pdftotext, str(pdf), "-"], check=True, timeout=60, capture_output=True,
                text=True).stdout
    return texts


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_the_pdf_carries_the_certificate(lang: str, printed: dict[tuple[str, str], str]) -> None:
    text = printed["closed", lang]
    flat = re.sub(r"\s+", " ", text)
    want = ["DCM-CAL-7", SERIAL, CONDITIONAL[lang], *POINTS,
            *(f"{p[3]} W ({p[5]})" for p in POINTS.values())]
    missing = [w for w in want if w not in flat]
    assert not missing, f"not in the {lang} PDF: {missing}"
    pages = {"en": r"Page 1 of (\d+)", "zh": r"第 1 页，共 (\d+) 页"}[lang]
    m = re.search(pages, text)
    assert m and int(m.group(1)) >= 2
    assert PROVISIONAL[lang] not in flat
    assert PROVISIONAL[lang] in re.sub(r"\s+", " ", printed["open", lang])


def test_the_chinese_certificate_is_chinese(printed: dict[tuple[str, str], str]) -> None:
    text = printed["closed", "zh"]
    data = sorted(set(strings(record())), key=len, reverse=True)
    for flat in (False, True):  # as printed, then again where pdftotext broke a line
        if flat:
            text = re.sub(r"\s+", " ", text)
        for s in data:  # the record's own data (names, serials, notes), whole texts
            text = re.sub(rf"(?<!\w){re.escape(s)}(?!\w)", " ", text)
    for word in {w for s in data for w in re.findall(r"[A-Za-z]+", s)}:
        text = re.sub(rf"\b{word}\b", " ", text)  # a record text broken inside a cell
    left = {w for w in re.findall(r"[A-Za-z]+", text) if w not in ALLOWED}
    assert not left, f"English words in the Chinese certificate: {sorted(left)}"
    assert "校准证书" in text and "扩展不确定度" in text


def test_the_english_certificate_has_no_chinese(printed: dict[tuple[str, str], str]) -> None:
    cjk = sorted(set(re.findall(r"[\u3000-\u303f\u4e00-\u9fff\uff00-\uffef]",
                                printed["closed", "en"])))
    assert not cjk, f"Chinese characters in the English certificate: {cjk}"


def test_the_certificate_number_carries_a_revision() -> None:
    r = copy.deepcopy(record())
    assert certificate_number(r) == "DCM-CAL-7"
    r["revision"] = 2
    assert certificate_number(r) == "DCM-CAL-7-R2"
    assert "DCM-CAL-7-R2" in render_certificate(r, "en")


def test_issues_and_a_point_without_a_statement_print() -> None:
    """A point with no valid repetition: no figures, no budget, 'not stated' with its reason in
    the page's language; the record's issues (which name every point's) listed once each, a
    plain text as the collector wrote it."""
    r = record()
    r["issues"] = ["point 18 kW: not stated"]
    p = r["points"][2]
    p.update({"n": 0, "reference_mean": None, "indicated_mean": None, "error": None,
              "relative_error": None, "repeatability": None, "budget": [], "combined_u": None,
              "dof_eff": None, "expanded_u": None, "relative_expanded_u": None, "mpe": None,
              "statement": {"rule": "guarded", "result": "not_stated", "reason": "no valid"},
              "issues": ["no valid repetition"]})
    for lang, word, why in (("en", "Not stated", "no valid repetition, or a relative MPE"),
                            ("zh", "不作判定", "无有效读数")):
        html = render_certificate(r, lang)  # type: ignore[arg-type]
        row = next(c for c in cells(html) if c.startswith("18 kW|") and c.count("|") == 9)
        assert row == f"18 kW|—|—|—|—|—|—|—|—|{word}", row
        assert any(c.startswith(f"18 kW|{word}|{why}") for c in cells(html))
        assert "<li>point 18 kW: not stated</li>" in html
        assert "no valid repetition</li>" not in html  # the point's own: in the record's


def test_coded_issues_print_in_the_pages_language() -> None:
    """The collector's issues carry codes (issue_details): the certificate writes them in its
    language, each once, nested context included."""
    r = record()
    r["issues"] = [issue("ctx.cal_point", point="2 kW", inner=issue("cal.one_repetition")),
                   issue("ctx.cal_series", side="instrument", source="server-0001",
                         metric="power_w", labels="", point="'2 kW'", repetition=2,
                         inner=issue("cal.no_indication",
                                     inner=issue("cal.no_sample_after")))]
    attach_details(r)
    en, zh = (render_certificate(r, lang) for lang in ("en", "zh"))  # type: ignore[arg-type]
    assert en.count("<li>") == 2 and zh.count("<li>") == 2
    assert "<li>point 2 kW: one valid repetition: no type A evaluation of repeatability</li>" in en
    assert ("<li>instrument server-0001 power_w, point &#x27;2 kW&#x27; repetition 2: no"
            " indication over the dwell (no sample after the dwell&#x27;s end (yet))</li>") in en
    assert "<li>校准点 2 kW：仅一次有效重复测量：无重复性的 A 类评定</li>" in zh
    assert ("<li>被校仪器 server-0001 power_w，校准点 &#x27;2 kW&#x27; 第 2 次重复：测量时段内"
            "无示值（测量时段结束之后（尚）没有样本）</li>") in zh


def test_record_data_is_text_not_markup() -> None:
    r = record()
    r["note"] = "<script>alert(1)</script>"
    r["id"] = 'x"</style><i id="x">'
    html = render_certificate(r, "en")
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert html.count("</style>") == 1 and '<i id="x">' not in html
