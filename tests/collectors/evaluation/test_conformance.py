"""Fixed rules of the standard: undeclared changes refused, declared ones marked on results."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import serve

from dcmeter.cli.main import main
from dcmeter.collectors.evaluation.evaluate import evaluate
from dcmeter.collectors.evaluation.site import Site, load_site
from dcmeter.collectors.intake.ingest import Ingest
from dcmeter.collectors.reporting.report_html import page
from dcmeter.collectors.storage.store import Store
from dcmeter.collectors.web.api import create_app
from dcmeter.collectors.web.auth import create_token

HEAD = """[site]
name = "t"
grid_factor_kg_per_kwh = 0.5

[energy]
total = ["meter-total"]
it = ["bmc"]
"""
AI = '\n[ai]\nservers = ["bmc"]\n'
GENERAL = """
[general]
{line}
[[general.groups]]
name = "g"
kind = "compute"
count = 1
rating = 1.0
rating_source = "test"
sources = ["h"]
"""
# (key, site-file text setting it, the value shown, the standard's value in words)
CHANGES = [
    ("ai.min_repetitions", AI + "min_repetitions = 1\n", "1", ">= 5"),
    ("ai.min_sampling_density", AI + "min_sampling_density = 0\n", "0.0", ">= 0.1"),
    ("ai.advanced_gflops_per_wh", AI + "advanced_gflops_per_wh = 1\n", "1.0", "224"),
    ("ai.precision_factors.fp16", AI + "[ai.precision_factors]\nfp16 = 10\n", "10.0", "1"),
    ("general.lambda", GENERAL.format(line="lambda = 0.9"), "0.9", "0.85"),
    ("general.beta", GENERAL.format(line="beta = 0.2"), "0.2", "0.1"),
    ("general.gamma", GENERAL.format(line="gamma = 0"), "0.0", "0.05"),
]


def evaluate_cli(tmp_path: Path, text: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    site = tmp_path / "site.toml"
    site.write_text(text)
    (tmp_path / "s.jsonl").write_text("")
    code = main(["evaluate", "--json", "--kind", "infrastructure", "--site", str(site),
                 "--samples", str(tmp_path / "s.jsonl"), "--start", "2026-03-01T00:00:00Z",
                 "--end", "2026-03-01T01:00:00Z"])
    return code, capsys.readouterr().err


@pytest.mark.parametrize(("key", "text", "shown", "standard"), CHANGES)
def test_an_undeclared_change_of_a_fixed_rule_is_a_config_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], key: str, text: str, shown: str,
    standard: str,
) -> None:
    code, err = evaluate_cli(tmp_path, HEAD + text, capsys)
    assert code == 2 and "Traceback" not in err
    (line,) = err.strip().splitlines()
    assert f"{tmp_path / 'site.toml'}: key {key}: bad value {shown}:" in line
    assert f"the standard's value is {standard} (T/CECA-G 0355—2025" in line
    assert f'[deviations] "{key}" = "<why>"' in line and "conforming: false" in line
    # Declared, the same file loads and its results carry the deviation.
    site = tmp_path / "site.toml"
    site.write_text(HEAD + f'\n[deviations]\n"{key}" = "agreed with the evaluator"\n' + text)
    loaded = load_site(site)
    kind = "ai" if key.startswith("ai.") else "general"
    result = evaluate(kind, loaded, [], 0.0, 3600.0)
    assert result["conforming"] is False
    (dev,) = result["deviations"]
    assert (dev["key"], dev["reason"], str(dev["used"])) == (key, "agreed with the evaluator", shown)


def test_stricter_minimums_conform_without_a_declaration(tmp_path: Path) -> None:
    site = tmp_path / "site.toml"
    site.write_text(HEAD + AI + "min_repetitions = 6\nmin_sampling_density = 0.2\n")
    result = evaluate("ai", load_site(site), [], 0.0, 3600.0)
    assert (result["conforming"], result["deviations"]) == (True, [])


@pytest.mark.parametrize(
    ("deviations", "why"),
    [
        ('"ai.min_repetitions" = "x"', 'key deviations."ai.min_repetitions": declared, but the'
         " site file keeps the standard's rule"),
        ('"ai.max_gap_s" = "x"', "not a fixed rule of the standard: ai.max_gap_s"),
        ('"ai.min_repetitions" = " "', "give the reason for each deviation"),
    ],
)
def test_bad_declarations_are_config_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], deviations: str, why: str
) -> None:
    code, err = evaluate_cli(tmp_path, HEAD + AI + f"\n[deviations]\n{deviations}\n", capsys)
    assert code == 2 and why in err and "Traceback" not in err


def test_only_rules_of_the_results_kind_count() -> None:
    site = Site.model_validate({
        "site": {"name": "t", "grid_factor_kg_per_kwh": 0.5},
        "energy": {"total": ["meter-total"], "it": ["bmc"]},
        "ai": {"servers": ["bmc"], "min_repetitions": 2},
        "deviations": {"ai.min_repetitions": "pilot"},
    })
    assert evaluate("infrastructure", site, [], 0.0, 3600.0)["conforming"] is True
    ai = evaluate("ai", site, [], 0.0, 3600.0)
    assert ai["conforming"] is False and ai["deviations"][0]["standard"] == 5


def test_a_site_built_in_code_is_marked_even_undeclared() -> None:
    site = Site.model_validate({
        "site": {"name": "t", "grid_factor_kg_per_kwh": 0.5},
        "energy": {"total": ["meter-total"], "it": ["bmc"]},
        "ai": {"servers": ["bmc"], "advanced_gflops_per_wh": 1.0},
    })
    result = evaluate("ai", site, [], 0.0, 3600.0)
    assert result["conforming"] is False
    assert result["deviations"] == [{
        "rule": "AEE advanced level: >= 224 GFLOPs/Wh", "clause": "T/CECA-G 0355—2025 4.3 Table 2",
        "standard": 224.0, "used": 1.0, "key": "ai.advanced_gflops_per_wh", "reason": None}]


def result_with(conforming: bool) -> dict[str, Any]:
    deviations = [] if conforming else [{
        "rule": "AEE advanced level: >= 224 GFLOPs/Wh", "clause": "T/CECA-G 0355—2025 4.3 Table 2",
        "standard": 224.0, "used": 150.0, "key": "ai.advanced_gflops_per_wh", "reason": "goal"}]
    return {"kind": "ai", "site": "s", "window": {"id": 1}, "pue_level": 2,
            "aee_level": "advanced", "aee_gflops_per_wh": 180.0, "conforming": conforming,
            "deviations": deviations}


@pytest.mark.parametrize(
    ("lang", "banner", "marked"),
    [("en", "NOT conforming", "advanced (not conforming: deviations declared)"),
     ("zh", "不符合", "先进（不符合标准：已声明偏离）")],
)
def test_report_says_not_conforming_first_and_marks_every_level(
    lang: str, banner: str, marked: str
) -> None:
    html = page(result_with(False), [], lang, {}, 0.0, "test")
    at = html.index(banner)
    assert at < html.index('id="site"') and at < html.index('id="indicators"')
    assert "goal" in html and "224.0" in html and "150.0" in html
    assert marked in html
    level2 = "level 2" if lang == "en" else "2 级"
    assert f"{level2} (not conforming" in html or f"{level2}（不符合标准" in html
    clean = page(result_with(True), [], lang, {}, 0.0, "test")
    assert banner not in clean and "deviations declared" not in clean and "已声明偏离" not in clean


@pytest.fixture
def ai_collector(
    tmp_path: Path, store_location: Callable[[str], Path | str]
) -> Iterator[tuple[str, dict[str, str]]]:
    """A collector whose site file declares ai.min_repetitions = 3."""
    site = tmp_path / "site.toml"
    site.write_text(HEAD + '\n[deviations]\n"ai.min_repetitions" = "pilot"\n' + AI
                    + "min_repetitions = 3\n")
    store = Store(store_location("collector"))
    app = create_app(store, Ingest(store, {}, max_bytes=1 << 20), load_site(site))
    token = create_token(store, "engineer")[1]
    try:
        with serve(app) as url:
            yield url, {"Authorization": f"Bearer {token}"}
    finally:
        store.close()


def test_collector_keeps_a_zero_work_run_not_valid_and_marks_the_deviation(
    ai_collector: tuple[str, dict[str, str]],
) -> None:
    url, auth = ai_collector
    base = f"{url}/api/v1/windows"
    run = {"start": "2026-06-01T00:10:00Z", "end": "2026-06-01T00:20:00Z", "phase": "infer",
           "model": "resnet-50", "repetition": 1, "flops": 0, "quality": 0.761}
    with httpx.Client(headers=auth) as http:
        wid = http.post(base, json={"kind": "ai", "start": "2026-06-01T00:00:00Z"}).json()["id"]
        assert http.post(f"{base}/{wid}/runs", json={**run, "flops": -1}).status_code == 422
        assert http.post(f"{base}/{wid}/runs", json=run).status_code == 201
        http.post(f"{base}/{wid}/stop", json={"end": "2026-06-01T01:00:00Z"})
        result = http.get(f"{base}/{wid}").json()
    (recorded,) = result["runs"]
    assert recorded["valid"] is False
    assert any(i.startswith("no work: flops = 0") for i in recorded["issues"])
    assert result["conforming"] is False
    assert [(d["key"], d["standard"], d["used"]) for d in result["deviations"]] == [
        ("ai.min_repetitions", 5, 3)]


def test_terminal_output_says_not_conforming_first_and_marks_levels() -> None:
    from dcmeter.cli.render import print_result, result_console

    base = {"window": {"id": 1, "start": "a", "end": "b", "hours": 1.0}, "pue": 1.2,
            "energy_kwh": {"total": 1.2, "it": 1.0, "green": 0.0}, "carbon_kg": 0.1,
            "cue": 0.1, "quality": {"valid": True, "issues": []}}
    console = result_console(record=True, width=200)
    print_result({**result_with(False), **base}, console=console)
    text = console.export_text()
    assert text.startswith("NOT conforming to T/CECA-G 0355—2025")
    assert "standard 224.0, used 150.0; reason: goal" in text
    assert "PUE level (GB 40879): 2 (not conforming: deviations declared)" in text
    assert "level advanced (not conforming" in text
    console = result_console(record=True, width=200)
    print_result({**result_with(True), **base}, console=console)
    assert "conforming" not in console.export_text()
