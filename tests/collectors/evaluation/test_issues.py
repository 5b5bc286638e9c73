"""The issue catalogue (collectors/evaluation/issues.py): templates agree across languages,
every code is raised somewhere, and a result's `issues` and `issue_details` stay aligned."""

from __future__ import annotations

import json
import re
import string
import tomllib
from pathlib import Path
from typing import Any

import pytest

from dcmeter.collectors.evaluation.evaluate import evaluate
from dcmeter.collectors.evaluation.issue_texts import CATALOGUE
from dcmeter.collectors.evaluation.issues import (
    TEXT,
    Issue,
    add_issue,
    attach_details,
    issue,
    render_issue,
)
from dcmeter.collectors.evaluation.jsonl import parse_rfc3339, read_jsonl, series_from_records
from dcmeter.collectors.evaluation.site import load_site

ROOT = Path(__file__).resolve().parents[3]
GOLDEN = ROOT / "tests" / "golden"


def fields(template: str) -> set[str]:
    return {f for _, f, _, _ in string.Formatter().parse(template) if f}


@pytest.mark.parametrize("code", sorted(CATALOGUE))
def test_both_languages_take_the_same_params(code: str) -> None:
    en, zh = CATALOGUE[code]["en"], CATALOGUE[code]["zh"]
    assert fields(en) == fields(zh), code
    words = re.sub(r"\{[^}]*\}", "", en)
    if re.search(r"[a-z]{2,}", words):  # a template with English words has Chinese ones
        assert re.search(r"[\u3000-\u303f\u4e00-\u9fff\uff00-\uffef]", zh), code


def test_every_code_is_raised_somewhere() -> None:
    source = "\n".join(p.read_text() for p in (ROOT / "collectors").rglob("*.py")
                       if p.name != "issue_texts.py")
    unused = [c for c in CATALOGUE if f'"{c}"' not in source]
    assert not unused, f"codes no code raises: {unused}"


def test_an_issue_is_its_english_text_with_a_code() -> None:
    made = issue("clock_unsynced", agent="agent-1", unsynced=3, n=10)
    assert made == "agent agent-1: clock not synchronised (NTP) in 3 of 10 batches; sample times may be off"
    assert isinstance(made, str) and made.code == "clock_unsynced"
    zh = render_issue({"code": made.code, "params": made.params}, "zh")
    assert zh == "采集代理 agent-1：10 个批次中有 3 个时钟未同步（NTP）；样本时间可能有偏差"
    nested = issue("ctx.role", role="it", inner=issue("few_samples"))
    assert nested == "it: fewer than 2 samples around the window"
    assert render_issue(nested, "zh") == "IT：窗口前后样本少于 2 个"
    quality: dict[str, Any] = {"issues": ["an old plain text"]}
    add_issue(quality, "no_runs")
    attach_details(quality)
    assert quality["issue_details"] == [
        {"code": TEXT, "params": {"text": "an old plain text"}},
        {"code": "no_runs", "params": {}},
    ]
    # a plain text (an old frozen result) is shown as written in every language
    assert render_issue(quality["issue_details"][0], "zh") == "an old plain text"
    with pytest.raises(KeyError):
        issue("no-such-code")


CASES = ["ai-five-runs-one-failed", "ai-two-phases-too-few-repetitions", "general-method1",
         "general-unknown-line-rate", "general-32bit-wrap", "ai-zero-work-runs"]


@pytest.mark.parametrize("name", CASES)
def test_issues_and_details_stay_aligned(name: str) -> None:
    case_dir = GOLDEN / name
    case = tomllib.loads((case_dir / "case.toml").read_text())
    site = load_site(case_dir / "site.toml")
    series = series_from_records(read_jsonl(case_dir / "samples.jsonl"))
    runs = json.loads((case_dir / case["runs"]).read_text()) if "runs" in case else []
    result = evaluate(case.get("kind", name.split("-")[0]), site, series,
                      parse_rfc3339(case["start"]), parse_rfc3339(case["end"]), runs)
    result = json.loads(json.dumps(result))  # what the API and a frozen result hold
    holders = [result["quality"], *(result.get("runs") or [])]
    assert result["quality"]["issues"], f"{name}: no issues to check"
    for h in holders:
        issues, found = h["issues"], h["issue_details"]
        assert len(issues) == len(found)
        for text, d in zip(issues, found, strict=True):
            assert d["code"] != TEXT, f"{name}: issue without a code: {text!r}"
            assert render_issue(d, "en") == text
            assert not re.search(r"\b(?:the|is|not|no)\b", render_issue(d, "zh")), d
    for b in result["verdict"]["basis"]:
        assert render_issue(b["detail"], "en") == b["text"]
    assert not isinstance(result["quality"]["issues"][0], Issue)  # plain JSON again
