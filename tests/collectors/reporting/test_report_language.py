"""The report's language: the Chinese report is Chinese throughout, the English one has no
Chinese; read back from the PDF headless Chromium prints (pdftotext), over a real store's
general window and the golden AI case, both with issues (collectors/reporting/report_i18n.py)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from test_report import FINGERPRINT, ai_window, need, stored_window

from dcmeter.collectors.reporting.report import ReportSeries, render_html, render_pdf

# Words of Latin letters the Chinese report may show, each for a reason:
ALLOWED = {
    # standards and their bodies, as they are cited: T/CECA-G 0355—2025, GB 40879, GUM
    "T", "CECA", "G", "GB", "GUM",
    # the standard's indicator names and symbols (T/CECA-G 0355 4, 6; GB 40879): PUE, CUE,
    # CEE, CCUE, AEE, ACE, NEE, the energies E_total/E_IT/E_green, load U, computing power C,
    # maximum permissible error MPE
    "PUE", "CUE", "CEE", "CCUE", "AEE", "ACE", "NEE", "MPE", "E", "U", "C", "IT", "AI",
    "total", "green", "CE", "GPU", "CPU", "FP",
    # units: kWh, W, Wh, kW, kg, CO₂ (CO), h, s, bit, GFLOP(s), Gbit
    "kWh", "Wh", "kW", "W", "kg", "CO", "h", "s", "bit", "GFLOPS", "GFLOP", "GFLOPs", "Gbit",
    "bps", "min", "FLOP",
    # time and protocols: UTC, NTP, the protocols a source speaks (an instrument's name)
    "UTC", "Z", "NTP", "DCMI", "IPMI", "SNMP", "NVML", "Modbus", "PDU", "SHA", "Ed",
    # the standard's annex letters (A.4, A.5; 附录 C, D, E in the basis), and the symbol a of
    # a source's accuracy in the uncertainty method (GUM's notation)
    "A", "B", "D", "a",
}
# The test data's own names, stripped by exact value before the check: source ids, agent,
# group names, models, metrics and the site's name (ids, not words of the report).
NAMES = ("meter-total", "meter-it", "host-a", "stor-1", "agent-1", "server-a", "array-1",
         "report test hall", "energy_import_kwh", "cpu_util_pct")


@pytest.fixture(scope="module")
def general(tmp_path_factory: pytest.TempPathFactory,
            store_locations: Any) -> tuple[dict[str, Any], ReportSeries]:
    return stored_window(store_locations, tmp_path_factory.mktemp("lang"), "general", 12.0, 15)


def pdf_text(result: dict[str, Any], s: ReportSeries, lang: str, tmp_path: Path) -> str:
    """The report of `result` in `lang`, printed by Chromium and read back with pdftotext."""
    if shutil.which("chromium-browser") is None:
        need("chromium")
    pdftotext = need("pdftotext")
    html = render_html(result, s, lang, {"agent-1": FINGERPRINT})  # type: ignore[arg-type]
    pdf = tmp_path / f"report-{lang}.pdf"
    render_pdf(html, pdf)
    return subprocess.run([pdftotext, str(pdf), "-"], check=True, timeout=60,
                          capture_output=True, text=True).stdout


def english_words(text: str, names: tuple[str, ...]) -> set[str]:
    """Words of Latin letters in `text` outside ALLOWED, after the test data's names and
    fingerprints (SHA256:… base64) are taken out."""
    for name in sorted(names, key=len, reverse=True):  # pdftotext may drop a name's hyphen
        text = text.replace(name, " ").replace(name.replace("-", ""), " ")
    for part in {p for name in names for p in name.split("-") if len(p) >= 4}:
        text = re.sub(rf"\b{re.escape(part)}\b", " ", text)  # a name broken across lines
    text = re.sub(r"SHA256:[A-Za-z0-9+/=]+", " ", text)
    text = re.sub(r"\b[0-9a-f]{16,}\b", " ", text)  # hex digests (the site file's sha256)
    return {w for w in re.findall(r"[A-Za-z]+", text) if w not in ALLOWED}


def ai_names(result: dict[str, Any]) -> tuple[str, ...]:
    q = result["quality"]
    names = {s["source"] for s in q.get("sources") or []}
    names |= {s["metric"] for s in q.get("sources") or []}
    names |= {r["model"] for r in result.get("runs") or []}
    # The instrument list's addresses and agents: where a device answers, and who read it.
    names |= {str(i[k]) for i in result.get("instruments") or [] for k in ("address", "agent")
              if i.get(k)}
    note = (result.get("window") or {}).get("note")  # the window's note: the tester's words
    # The site's time zone is an IANA id (Asia/Shanghai), shown once with its UTC offset.
    zone = (result.get("site_info") or {}).get("timezone") or "Asia/Shanghai"
    return (*NAMES, *sorted(names), str(result.get("site")), zone, *([note] if note else []))


@pytest.mark.parametrize("kind", ["general", "ai"])
def test_the_chinese_report_is_chinese(
    kind: str, general: tuple[dict[str, Any], ReportSeries], tmp_path: Path
) -> None:
    result, s = general if kind == "general" else ai_window()
    q = result["quality"]
    assert q["issues"], "the window must have issues to translate"
    assert [d["code"] for d in q["issue_details"]].count("text") == 0
    assert len(q["issue_details"]) == len(q["issues"])
    text = pdf_text(result, s, "zh", tmp_path)
    assert "问题" in text
    left = english_words(text, ai_names(result))
    assert not left, f"English words in the Chinese {kind} report: {sorted(left)}"


@pytest.mark.parametrize("kind", ["general", "ai"])
def test_the_english_report_has_no_chinese(
    kind: str, general: tuple[dict[str, Any], ReportSeries], tmp_path: Path
) -> None:
    result, s = general if kind == "general" else ai_window()
    text = pdf_text(result, s, "en", tmp_path)
    assert "Issues" in text
    cjk = sorted(set(re.findall(r"[\u3000-\u303f\u4e00-\u9fff\uff00-\uffef]", text)))
    assert not cjk, f"Chinese characters in the English {kind} report: {cjk}"


def test_a_result_without_issue_details_shows_its_english_issues() -> None:
    """A result frozen before issue codes existed has no `issue_details`: its English texts."""
    result, s = ai_window()
    zh = render_html(result, s, "zh")  # type: ignore[arg-type]
    assert "运行失败：退出状态 1" in zh and "failed run: exit status 1" not in zh
    for holder in [result["quality"], *result["runs"]]:
        del holder["issue_details"]
    old = render_html(result, s, "zh")  # type: ignore[arg-type]
    assert "failed run: exit status 1" in old
    assert "runs[2]: failed run: exit status 1" in old
