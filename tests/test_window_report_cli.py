"""`dcmeter window report` against a real collector: HTML, JSON and PDF of a closed window."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import Collector
from test_window_cli import END, START, cli, env, feed

__all__ = ["env"]  # the fixture, imported for use here


def test_report_in_three_formats(
    env: Collector, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    feed(env)
    code, out, _ = cli(capsys, "window", "start", "--kind", "infrastructure", "--start", START,
                       "--json")
    wid = json.loads(out)["id"]
    assert cli(capsys, "window", "stop", str(wid), "--end", END)[0] == 0

    html = tmp_path / "r.html"
    code, _, err = cli(capsys, "window", "report", str(wid), "-o", str(html), "--lang", "zh")
    assert code == 0 and f"window {wid}: html report written to {html}" in err
    page = html.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and "<script" not in page
    assert "能效评价报告" in page and page.count("<svg") >= 2
    assert "1.500" in page  # PUE 150 kW / 100 kW over the hour

    data = tmp_path / "r.json"
    assert cli(capsys, "window", "report", str(wid), "--format", "json", "-o", str(data))[0] == 0
    body = json.loads(data.read_text())
    assert body["result"]["pue"] == pytest.approx(1.5)
    assert body["result"]["window"]["id"] == wid
    totals = [kw for _, kw in body["series"]["total_kw"] if kw is not None]
    assert totals and all(kw == pytest.approx(150.0) for kw in totals)

    pdf = tmp_path / "r.pdf"
    assert cli(capsys, "window", "report", str(wid), "--format", "pdf", "-o", str(pdf))[0] == 0
    assert pdf.read_bytes().startswith(b"%PDF")
    assert shutil.which("pdftotext"), "pdftotext missing: apt-get install poppler-utils"
    text = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True,
                          check=True).stdout
    assert "Energy-efficiency evaluation report" in text and "Data quality" in text


def test_report_of_an_unknown_window_is_one_line(
    env: Collector, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    out = tmp_path / "x.html"
    code, _, err = cli(capsys, "window", "report", "999", "-o", str(out))
    assert code == 1 and err == "dcmeter: no window 999 (404)\n"
    assert not out.exists()
