"""The report's language: the Chinese report is Chinese throughout, the English one has no
Chinese, and neither shows a code identifier; read back from the PDF headless Chromium prints
(pdftotext), over a real store's general and infrastructure windows and the golden AI case,
all with issues (collectors/reporting/report_i18n.py). The infrastructure window's site file
declares a clause 5 register item in every status and an overdue instrument."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from test_report import FINGERPRINT, SOURCES, ai_window, need, stored_window

from dcmeter.agent.samples import SourceInfo
from dcmeter.collectors.evaluation.site import Site
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


CHECKED = {"checked_by": "Li Wei", "checked_on": "2026-11-20"}
SERVER = {"category": "server", "count": 10, "standard": "GB 43630", "declared_grade": 1,
          "certificate": "2025-0001", **CHECKED}
# One register item in every status and for every reason (clause5.py). Models and evidence are
# numbers: a narrow table cell breaks a lettered id where the name stripping cannot follow.
EQUIPMENT = [
    {**SERVER, "model": "9101"},
    {**SERVER, "model": "9102", "declared_grade": 2},
    {**SERVER, "model": "9103", "declared_grade": None},
    {**SERVER, "model": "9104", "certificate": None},
    {**SERVER, "model": "9105", "checked_by": None},
    {**SERVER, "model": "9106", "checked_on": None},
    {**SERVER, "model": "9107", "checked_by": None, "checked_on": None},
    {"category": "cooling", "model": "9108", "count": 2, "standard": "GB 19577",
     "declared_grade": 1, **CHECKED},
    {"category": "distribution", "model": "9109", "count": 8, "standard": "GB 19761",
     "declared_grade": 3, "label_filing": "2024-0009", **CHECKED},
]  # fmt: skip
INFRA_SITE = Site.model_validate({
    "site": {"name": "report test hall", "region": "east-2023"},
    "energy": {"total": ["meter-total"], "it": ["meter-it"]},
    "equipment": [{k: v for k, v in e.items() if v is not None} for e in EQUIPMENT],
    "instruments": [  # the total meter's calibration ran out before the window (2026-11-22)
        {"source": "meter-total", "calibrated": "2025-10-01", "calibration_due": "2026-10-01",
         "certificate": "JJG-1", "accuracy": 0.002, "accuracy_basis": "class 0.2S"},
        {"source": "meter-it", "calibrated": "2026-06-01", "calibration_due": "2027-06-01"},
    ],
})  # fmt: skip
# The meters say what they are (SourceInfo.device, read by the agent from the device).
DEVICE = {"make": "Acme", "model": "PM5560", "serial": "SN0001", "device_id": "7"}
INFRA_SOURCES = [SourceInfo(s.id, s.protocol, s.address, s.labels, s.accuracy, DEVICE)
                 if s.protocol == "modbus" else s for s in SOURCES]


@pytest.fixture(scope="module")
def infrastructure(tmp_path_factory: pytest.TempPathFactory,
                   store_locations: Any) -> tuple[dict[str, Any], ReportSeries]:
    return stored_window(store_locations, tmp_path_factory.mktemp("infra-lang"),
                         "infrastructure", 2.0, 1, INFRA_SITE, INFRA_SOURCES)


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
    text = re.sub(r"\[\[[a-z]+\]\]", " ", text)  # a site file's table ([[instruments]]): an id
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
    names |= {str(v) for i in result.get("instruments") or [] for v in (i.get("device") or {}).values()}
    names |= {str(i[k]) for i in result.get("instruments") or []
              for k in ("certificate", "accuracy_basis") if i.get(k)}
    # The register's models, certificates, filing numbers and checkers: the site file's data.
    register = ((result.get("verdict") or {}).get("clause5") or {})
    for item in [*(register.get("shall") or {}).get("items", []),
                 *(register.get("should") or {}).get("items", [])]:
        names.add(str(item["model"]))
        names |= {str(item["evidence"][k]) for k in ("label_filing", "certificate", "checked_by")
                  if item["evidence"][k]}
    note = (result.get("window") or {}).get("note")  # the window's note: the tester's words
    # The site's time zone is an IANA id (Asia/Shanghai), shown once with its UTC offset.
    zone = (result.get("site_info") or {}).get("timezone") or "Asia/Shanghai"
    return (*NAMES, *sorted(names), str(result.get("site")), zone, *([note] if note else []))


KINDS = ["general", "infrastructure", "ai"]
Window = tuple[dict[str, Any], ReportSeries]


@pytest.fixture(scope="module")
def printed(general: Window, infrastructure: Window,
            tmp_path_factory: pytest.TempPathFactory) -> Any:
    """`printed(kind, lang)`: the window of `kind` and its PDF's text in `lang`, printed once."""
    texts: dict[tuple[str, str], tuple[Window, str]] = {}
    windows = {"general": lambda: general, "infrastructure": lambda: infrastructure,
               "ai": ai_window}

    def get(kind: str, lang: str) -> tuple[Window, str]:
        if (kind, lang) not in texts:
            window = windows[kind]()
            texts[kind, lang] = window, pdf_text(*window, lang, tmp_path_factory.mktemp(kind))
        return texts[kind, lang]
    return get


@pytest.mark.parametrize("kind", KINDS)
def test_the_chinese_report_is_chinese(kind: str, printed: Any) -> None:
    (result, _), text = printed(kind, "zh")
    q = result["quality"]
    assert q["issues"], "the window must have issues to translate"
    assert [d["code"] for d in q["issue_details"]].count("text") == 0
    assert len(q["issue_details"]) == len(q["issues"])
    assert "问题" in text
    left = english_words(text, ai_names(result))
    assert not left, f"English words in the Chinese {kind} report: {sorted(left)}"


@pytest.mark.parametrize("kind", KINDS)
def test_the_english_report_has_no_chinese(kind: str, printed: Any) -> None:
    _, text = printed(kind, "en")
    assert "Issues" in text
    cjk = sorted(set(re.findall(r"[\u3000-\u303f\u4e00-\u9fff\uff00-\uffef]", text)))
    assert not cjk, f"Chinese characters in the English {kind} report: {cjk}"


def test_the_infrastructure_window_has_every_register_status(infrastructure: Window) -> None:
    """The fixture is what the language tests need: every status, every reason, an overdue
    instrument and devices that say what they are."""
    result, _ = infrastructure
    c5 = result["verdict"]["clause5"]
    items = [*c5["shall"]["items"], *c5["should"]["items"]]
    assert {i["status"] for i in items} == {"met", "not met", "unproven"}
    codes = {i["reason_detail"]["code"] for i in items}
    assert codes == {"c5.met", "c5.declared", "c5.no_grade", "c5.no_certificate", "c5.no_label",
                     "c5.unchecked_by", "c5.unchecked_on", "c5.unchecked"}
    assert "instrument_overdue" in [d["code"] for d in result["quality"]["issue_details"]]
    assert [i["device"]["model"] for i in result["instruments"] if i["device"]] == ["PM5560"] * 2


# A code identifier: a snake_case word (`energy_total`, `label_filing`) or a dotted code key
# (`energy.total`, `ai.gpus`). The test data's own ids (metric names) may show as they are.
IDENTIFIER = re.compile(r"\b[a-z]+_[a-z0-9_]+\b|\b[a-z]+\.[a-z][a-z_]*\b")
DATA_IDS = {"energy_import_kwh", "cpu_util_pct"}


@pytest.mark.parametrize("lang", ["en", "zh"])
@pytest.mark.parametrize("kind", KINDS)
def test_no_code_identifier_in_the_report(kind: str, lang: str, printed: Any) -> None:
    (result, _), text = printed(kind, lang)
    metrics = {s["metric"] for s in result["quality"].get("sources") or []}
    found = set(IDENTIFIER.findall(text)) - DATA_IDS - metrics
    assert not found, f"code identifiers in the {lang} {kind} report: {sorted(found)}"


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
