"""The evaluation report: plot series from a real store, HTML in two languages, and the page
printed by real headless Chromium (PNG screenshot, PDF) and read back with poppler's tools."""

from __future__ import annotations

import json
import math
import shutil
import struct
import subprocess
import tomllib
import zlib
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from conftest import StoreLocations
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from dcmeter.agent import wire
from dcmeter.agent.pubkey import fingerprint
from dcmeter.agent.samples import MetricSpec, SourceInfo
from dcmeter.agent.wire import GENESIS, Batch, ClockStatus, MetricEntry
from dcmeter.collectors.evaluation.evaluate import evaluate
from dcmeter.collectors.evaluation.jsonl import parse_rfc3339, read_jsonl, series_from_records
from dcmeter.collectors.evaluation.site import Site, load_site
from dcmeter.collectors.reporting.report import (
    ReportError,
    ReportSeries,
    render_html,
    render_pdf,
    render_png,
    report_series,
    series_from,
)
from dcmeter.collectors.reporting.report_format import fmt
from dcmeter.collectors.reporting.report_html import LABELS
from dcmeter.collectors.results.windows import window_result
from dcmeter.collectors.storage.store import Store

T0 = parse_rfc3339("2026-11-22T00:00:00Z")
HOUR = 3600.0
GOLDEN_AI = Path(__file__).resolve().parents[2] / "golden" / "ai-five-runs-one-failed"
KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
FINGERPRINT = fingerprint(KEY.public_key())

METER = {"kind": "meter"}
SOURCES = [
    SourceInfo("meter-total", "modbus", "127.0.0.1:502/1", {"point": "total", **METER}, 0.005),
    SourceInfo("meter-it", "modbus", "127.0.0.1:502/2", {"point": "it_input", **METER}, 0.005),
    SourceInfo("host-a", "host", "localhost", {"kind": "compute"}),
    SourceInfo("stor-1", "snmp", "127.0.0.1:161", {"kind": "storage"}),
]
METRICS = [MetricEntry(MetricSpec("energy_import_kwh", "kWh", "counter")),
           MetricEntry(MetricSpec("cpu_util_pct", "%", "gauge"))]
SITE = Site.model_validate({
    "site": {"name": "report test hall", "region": "east-2023"},
    "energy": {"total": ["meter-total"], "it": ["meter-it"]},
    "general": {"method": 1, "groups": [
        {"name": "server-a", "kind": "compute", "count": 100, "rating": 20000,
         "rating_source": "test", "sources": ["host-a"]},
        {"name": "array-1", "kind": "storage", "count": 4, "rating": 50000,
         "rating_source": "test", "sources": ["stor-1"]},
    ]},
})  # fmt: skip


def it_kw(minute: float) -> float:
    """The IT load of the fixture: 100 kW with a slow swing of ±20 kW over 12 h."""
    return 100.0 + 20.0 * math.sin(2 * math.pi * minute / 720.0)


def fill(store: Store, hours: float, every_min: int,
         sources: list[SourceInfo] | None = None) -> None:
    """Signed batches, one per `every_min` minutes from T0 - 15 min to T0 + hours + 15 min.

    Total power = 1.4 x IT power (PUE 1.4); host CPU follows the IT swing; storage 30 %.
    """
    prev = GENESIS
    e_total = e_it = 0.0
    minutes = range(-15, int(hours * 60) + 16, every_min)
    for seq, minute in enumerate(minutes, start=1):
        ts_ns = int((T0 + 60 * minute) * 1e9)
        e_it += it_kw(minute) * every_min / 60.0
        e_total += 1.4 * it_kw(minute) * every_min / 60.0
        cpu = 40.0 + 40.0 * (it_kw(minute) - 100.0) / 20.0
        arrays = wire.pack_arrays([ts_ns] * 4, [0, 1, 2, 3], [0, 0, 1, 1],
                                  [e_total, e_it, cpu, 30.0])
        batch = Batch("agent-1", seq, prev, ts_ns, ClockStatus(synced=True, max_error_s=0.01),
                      sources or SOURCES, METRICS, *arrays)
        body = wire.encode_body(batch)
        prev = wire.batch_hash(body)
        store.insert_batch(batch, prev, body, ts_ns)


def stored_window(locations: StoreLocations, tmp_path: Path, kind: str, hours: float,
                  every_min: int, site: Site = SITE, sources: list[SourceInfo] | None = None
                  ) -> tuple[dict[str, Any], ReportSeries]:
    """The result and plot series of a closed window over a store filled by `fill` (on the
    `--store` backend; a PostgreSQL database is dropped once read)."""
    location = locations.new(tmp_path / f"{kind}.db")
    store = Store(location)
    try:
        fill(store, hours, every_min, sources)
        w = store.open_window(kind, int(T0 * 1e9), f"{kind} test window", int(T0 * 1e9))
        store.close_window(w.id, int((T0 + hours * HOUR) * 1e9))
        closed = store.window(w.id)
        assert closed is not None
        now = int((T0 + (hours + 1) * HOUR) * 1e9)
        return window_result(store, site, closed, now), report_series(store, site, closed, now)
    finally:
        store.close()
        locations.drop(location)


def ai_window() -> tuple[dict[str, Any], ReportSeries]:
    """The golden AI case (five runs, run 3 failed) evaluated offline, with its plot series."""
    case = tomllib.loads((GOLDEN_AI / "case.toml").read_text())
    site = load_site(GOLDEN_AI / "site.toml")
    series = series_from_records(read_jsonl(GOLDEN_AI / "samples.jsonl"))
    start, end = parse_rfc3339(case["start"]), parse_rfc3339(case["end"])
    runs = json.loads((GOLDEN_AI / case["runs"]).read_text())
    result = evaluate("ai", site, series, start, end, runs)
    return result, series_from("ai", site, series, start, end)


class Outline(HTMLParser):
    """Headings, SVG count, scripts and external references, and the page's text."""

    def __init__(self) -> None:
        super().__init__()
        self.headings: list[str] = []
        self.svgs = 0
        self.bars = 0
        self.polylines = 0
        self.external: list[str] = []
        self.scripts = 0
        self.text: list[str] = []
        self._in: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag in ("h1", "h2", "h3"):
            self._in = tag
            self.headings.append("")
        self.svgs += tag == "svg"
        self.polylines += tag == "polyline"
        self.bars += tag == "rect" and a.get("class") == "bar"
        self.scripts += tag == "script"
        for key in ("src", "href"):
            if a.get(key):
                self.external.append(str(a[key]))

    def handle_endtag(self, tag: str) -> None:
        if tag == self._in:
            self._in = None

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if self._in:
            self.headings[-1] += data


def outline(html: str) -> Outline:
    o = Outline()
    o.feed(html)
    return o


SECTIONS = ("site", "window", "indicators", "uncertainty", "quality", "plots", "evidence")


@pytest.fixture(scope="module")
def infra(
    tmp_path_factory: pytest.TempPathFactory, store_locations: StoreLocations
) -> tuple[dict[str, Any], ReportSeries]:
    return stored_window(store_locations, tmp_path_factory.mktemp("infra"), "infrastructure",
                         2.0, 1)


@pytest.fixture(scope="module")
def general(
    tmp_path_factory: pytest.TempPathFactory, store_locations: StoreLocations
) -> tuple[dict[str, Any], ReportSeries]:
    return stored_window(store_locations, tmp_path_factory.mktemp("general"), "general",
                         12.0, 15)


def test_labels_cover_the_same_keys_in_both_languages() -> None:
    assert set(LABELS["en"]) == set(LABELS["zh"])
    assert all(v.strip() for lang in LABELS.values() for v in lang.values())


def test_series_follow_the_store(infra: tuple[dict[str, Any], ReportSeries]) -> None:
    result, s = infra
    assert len(s.total_kw) == len(s.it_kw) == len(s.pue) == 48  # 2 h / 48 = 150 s >= 60 s
    assert s.step_s == pytest.approx(150.0)
    assert s.total_kw[0][0] == pytest.approx(T0 + 75.0)  # middle of the first sub-interval
    for (t, it), (_, pue) in zip(s.it_kw, s.pue, strict=True):
        minute = (t - T0) / 60.0
        assert it == pytest.approx(it_kw(minute), rel=0.01)
        assert pue == pytest.approx(1.4, rel=1e-6)
    # the mean of the sub-interval powers is the window's energy over its duration
    mean_kw = sum(v for _, v in s.total_kw if v is not None) / len(s.total_kw)
    assert mean_kw == pytest.approx(result["energy_kwh"]["total"] / 2.0, rel=1e-6)
    assert s.load == {}


def test_step_is_at_least_the_sampling_interval(
        general: tuple[dict[str, Any], ReportSeries]) -> None:
    _, s = general
    assert s.step_s == pytest.approx(900.0)  # 12 h / 48 = 900 s = the 15-min sampling
    assert set(s.load) == {"compute", "storage", "network"}
    compute = [v for _, v in s.load["compute"]]
    assert max(v for v in compute if v is not None) > 0.7  # the swing is visible
    assert min(v for v in compute if v is not None) < 0.1
    assert all(v == pytest.approx(0.3) for _, v in s.load["storage"])
    assert all(v is None for _, v in s.load["network"])  # no network group configured


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_infrastructure_html(infra: tuple[dict[str, Any], ReportSeries], lang: str) -> None:
    result, s = infra
    html = render_html(result, s, lang, {"agent-1": FINGERPRINT})  # type: ignore[arg-type]
    o = outline(html)
    L = LABELS[lang]
    for key in SECTIONS:
        assert L[key] in o.headings, f"section {key!r} missing in {lang}: {o.headings}"
    assert o.svgs == 2 and o.polylines == 3  # power (total, IT), PUE
    assert o.scripts == 0 and o.external == []
    text = "".join(o.text)
    assert result["pue_level"] == 3  # PUE 1.4: above level 2's 1.30, within level 3's 1.50
    assert fmt(result["pue"], "pue") == "1.400"  # 4 significant digits
    assert "1.400" in text and L["level_n"].format(n=3) in text
    total = result["energy_kwh"]["total"]
    assert fmt(total, "energy_kwh") == f"{total:,.2f}"  # 5 significant digits of 306.94
    assert fmt(total, "energy_kwh") in text
    assert FINGERPRINT in text and L["chain_ok"] in text
    assert L["q_valid"] in text


def test_general_html(general: tuple[dict[str, Any], ReportSeries]) -> None:
    result, s = general
    o = outline(render_html(result, s, "en"))
    assert o.svgs == 3 and o.polylines == 5  # power x2, PUE, load (compute, storage)
    text = "".join(o.text)
    assert fmt(result["cee"], "cee") in text
    assert f"{result['load']['compute'] * 100:.1f} %" in text
    assert "advanced ≥ 50" in text
    assert "unknown" in text  # no fingerprint given for agent-1


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_ai_html(lang: str) -> None:
    result, s = ai_window()
    html = render_html(result, s, lang)  # type: ignore[arg-type]
    o = outline(html)
    L = LABELS[lang]
    assert L["runs"] in o.headings and L["tasks"] in o.headings
    # every run's start and end marked on the power and the PUE plot
    assert html.count('class="mark"') == 2 * 2 * len(result["runs"]) > 0
    assert o.svgs == 4 and o.bars == 10  # power, PUE, mean power per run, AEE per run
    text = "".join(o.text)
    for run in result["runs"]:
        assert fmt(run["aee_gflops_per_wh"], "aee") in text
    assert "98.49" in text  # the mean over the four valid runs
    assert ("failed run: exit status 1" if lang == "en" else "运行失败：退出状态 1") in text
    assert L["q_invalid"] in text and L["not_checked"] in text


def test_unknown_language_is_refused(infra: tuple[dict[str, Any], ReportSeries]) -> None:
    with pytest.raises(ReportError, match="use 'en' or 'zh'"):
        render_html(infra[0], infra[1], "fr")  # type: ignore[arg-type]


# -- printed by the real tools ---------------------------------------------------------------

def need(tool: str) -> str:
    """A Debian tool the tests require (installed by .ci/run): fail, never skip, without it."""
    found = shutil.which(tool)
    if found is None:
        pytest.fail(f"{tool} is not installed: the report tests need it (apt-get install"
                    " chromium poppler-utils fonts-noto-cjk; .ci/run does)")
    return found


def png_pixels(path: Path) -> tuple[int, int, set[bytes]]:
    """Width, height and the distinct RGB colours of an 8-bit RGB/RGBA PNG (stdlib only)."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width = 8, b"", 0
    height = depth = ctype = 0
    while pos < len(data):
        (length,), kind = struct.unpack(">I", data[pos:pos + 4]), data[pos + 4:pos + 8]
        chunk = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, ctype = struct.unpack(">IIBB", chunk[:10])
        elif kind == b"IDAT":
            idat += chunk
        pos += 12 + length
    assert depth == 8 and ctype in (2, 6), f"unexpected PNG format {depth=} {ctype=}"
    bpp = 3 if ctype == 2 else 4
    raw = zlib.decompress(idat)
    stride = width * bpp
    colours: set[bytes] = set()
    prev = bytearray(stride)
    for y in range(height):
        f, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b, c = prev[i], prev[i - bpp] if i >= bpp else 0
            if f == 1:
                line[i] = (line[i] + a) & 255
            elif f == 2:
                line[i] = (line[i] + b) & 255
            elif f == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        if y % 7 == 0:  # a sample of rows is enough to tell a drawn page from a blank one
            colours.update(bytes(line[i:i + 3]) for i in range(0, stride, bpp * 3))
        prev = line
    return width, height, colours


@pytest.mark.parametrize("kind,lang", [("general", "zh"), ("ai", "en")])
def test_chromium_prints_the_report(
    kind: str, lang: str, general: tuple[dict[str, Any], ReportSeries], tmp_path: Path
) -> None:
    if shutil.which("chromium-browser") is None:
        need("chromium")
    pdftoppm, pdftotext = need("pdftoppm"), need("pdftotext")
    result, s = general if kind == "general" else ai_window()
    html = render_html(result, s, lang, {"agent-1": FINGERPRINT})  # type: ignore[arg-type]
    png = tmp_path / f"report-{kind}-{lang}.png"
    render_png(html, png)
    width, height, colours = png_pixels(png)
    assert (width, height) == (1200, 3000)
    assert png.stat().st_size > 50_000, "the screenshot is nearly empty"
    assert len(colours) > 20, f"the screenshot has only {len(colours)} colours"
    assert bytes((0x1F, 0x5F, 0xA8)) in colours  # the plots' / headings' blue is drawn

    pdf = tmp_path / f"report-{kind}-{lang}.pdf"
    render_pdf(html, pdf)
    assert pdf.read_bytes()[:5] == b"%PDF-"
    subprocess.run([pdftoppm, "-png", "-r", "50", str(pdf), str(tmp_path / "page")],
                   check=True, timeout=60)
    pages = sorted(tmp_path.glob("page-*.png"))
    assert len(pages) >= 2 and all(p.stat().st_size > 2_000 for p in pages)
    text = subprocess.run([pdftotext, "-layout", str(pdf), "-"], check=True, timeout=60,
                          capture_output=True, text=True).stdout
    for key in SECTIONS:
        assert LABELS[lang][key] in text, f"{LABELS[lang][key]!r} not in the PDF's text"
    if kind == "ai":
        assert "98.49" in text and "failed run: exit status 1" in text


def test_a_missing_chromium_is_a_clear_error(monkeypatch: pytest.MonkeyPatch,
                                             tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty PATH: no chromium to find
    with pytest.raises(ReportError, match="install the Debian package 'chromium'"):
        render_pdf("<html></html>", tmp_path / "x.pdf")
