"""The clause 4 verdict and the clause 5 register: site-file errors, item statuses, indicative."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from dcmeter.base.configfile import ConfigError
from dcmeter.cli.render import verdict_line
from dcmeter.collectors.evaluation.clause5 import clause5, item_status
from dcmeter.collectors.evaluation.issues import render_issue
from dcmeter.collectors.evaluation.site import load_site
from dcmeter.collectors.evaluation.site_equipment import REQUIREMENTS, Equipment
from dcmeter.collectors.evaluation.verdict import verdict
from dcmeter.collectors.reporting.report_verdict import VERDICT_LABELS, verdict_html

ROOT = Path(__file__).resolve().parents[3]
HEAD = """[site]
name = "t"
region = "east-2023"
[energy]
total = ["m-total"]
it = ["m-it"]
"""
CHECKED: dict[str, Any] = {"checked_by": "W. Zhang", "checked_on": date(2026, 10, 20)}


def _site(tmp_path: Path, equipment: str) -> Path:
    path = tmp_path / "site.toml"
    path.write_text(HEAD + equipment)
    return path


def _server(**kw: Any) -> Equipment:
    base: dict[str, Any] = {"category": "server", "model": "R-1", "count": 4,
                            "standard": "GB 43630", "declared_grade": 1, "certificate": "C-1"}
    return Equipment(**{**base, **CHECKED, **kw})


def _infra(level: int | None, *, valid: bool = True, **extra: Any) -> dict[str, Any]:
    return {"kind": "infrastructure", "pue": 1.1, "pue_level": level,
            "pue_thresholds": {"level1": 1.2, "level2": 1.3, "configured": False},
            "quality": {"valid": valid}, **extra}


def test_every_standard_of_clause_5_is_known_with_its_grade() -> None:
    # 5.1: six cooling standards, 5.2: GB 43630, 5.3: five; GB 19761 "二级及以上", others 一级.
    by_clause = {c: sorted(s for s, r in REQUIREMENTS.items() if r.clause == c)
                 for c in ("5.1", "5.2", "5.3")}
    assert by_clause == {
        "5.1": ["GB 19576", "GB 19577", "GB 29540", "GB 30721", "GB 37479", "GB 37480"],
        "5.2": ["GB 43630"],
        "5.3": ["GB 18613", "GB 19153", "GB 19761", "GB 20052", "GB 32030"],
    }
    assert {s: r.grade for s, r in REQUIREMENTS.items() if r.grade != 1} == {"GB 19761": 2}


@pytest.mark.parametrize(("entry", "key", "shown", "needle"), [
    ('category = "cooling"\nmodel = "x"\ncount = 1\nstandard = "GB 99999"', "equipment[0].standard",
     "'GB 99999'", "valid: GB 19577 (water chillers"),
    ('category = "cooling"\nmodel = "x"\ncount = 1\nstandard = "GB 43630"', "equipment[0].standard",
     "'GB 43630'", "not for category 'cooling'"),
    ('category = "pump"\nmodel = "x"\ncount = 1\nstandard = "GB 32030"', "equipment[0].category",
     "'pump'", "'cooling', 'server' or 'distribution'"),
    ('category = "distribution"\nmodel = "x"\ncount = 1\nstandard = "GB 19761"\n'
     "required_grade = 1", "equipment[0].required_grade", "1",
     "GB 19761 grade 2 or better: required_grade must be 2"),
    ('category = "server"\nmodel = "x"\ncount = 1\nstandard = "GB 43630-2019"',
     "equipment[0].standard", "'GB 43630-2019'", "only that edition applies"),
])
def test_a_register_entry_the_clause_does_not_allow_is_a_config_error(
    tmp_path: Path, entry: str, key: str, shown: str, needle: str
) -> None:
    path = _site(tmp_path, "[[equipment]]\n" + entry + "\n")
    with pytest.raises(ConfigError) as err:
        load_site(path)
    text = str(err.value)
    assert f"{path}: key {key}: bad value {shown}" in text
    assert needle in text


def test_the_commented_example_of_config_site_toml_loads(tmp_path: Path) -> None:
    text = (ROOT / "config" / "site.toml").read_text()
    block = text[text.index("# [[equipment]]\n# category"):]
    example = "\n".join(re.sub(r"^# ?", "", line) for line in block.splitlines())
    site = load_site(_site(tmp_path, example))
    assert [e.standard for e in site.equipment] == ["GB 43630-2023", "GB 19577"]
    assert clause5(site.equipment)["status"] == "met"


@pytest.mark.parametrize(("kw", "status", "needle"), [
    ({}, "met", "declared grade 1, checked"),
    ({"declared_grade": 2}, "not met", "declared grade 2; clause 5.2 asks GB 43630 grade 1"),
    ({"declared_grade": None}, "unproven", "no declared grade"),
    ({"certificate": None}, "unproven", "no evidence"),
    ({"certificate": None, "label_filing": "CEL-1"}, "met", "checked"),
    ({"checked_on": None}, "unproven", "give the date it was checked"),
    ({"checked_by": None, "checked_on": None}, "unproven", "give who checked it and when"),
])
def test_a_server_item_is_met_not_met_or_unproven(
    kw: dict[str, Any], status: str, needle: str
) -> None:
    got, reason = item_status(_server(**kw))
    assert got == status and needle in reason


@pytest.mark.parametrize(("kw", "zh"), [
    ({}, "申报能效 1 级，已核查；第 5.2 条要求 GB 43630 能效 1 级"),
    ({"declared_grade": 2}, "申报能效 2 级；第 5.2 条要求 GB 43630 能效 1 级"),
    ({"declared_grade": None}, "未申报能效等级；第 5.2 条要求 GB 43630 能效 1 级"),
    ({"certificate": None}, "无证明：第 5.2 条的验证方式为查验数据中心提供的相关证明材料或第三方"
                            "认证证书；请给出证书或证明材料，或能效标识备案号"),
    ({"checked_by": None}, "证明未记录核查：请给出核查人"),
])
def test_an_item_reason_has_its_chinese_text(kw: dict[str, Any], zh: str) -> None:
    """The reason keeps its English text and carries the detail the Chinese report writes."""
    item = clause5([_server(**kw)])["shall"]["items"][0]
    assert render_issue(item["reason_detail"], "en") == item["reason"]
    assert render_issue(item["reason_detail"], "zh") == zh


def test_cooling_and_distribution_are_proven_by_the_label_filing_only() -> None:
    chiller = Equipment(category="cooling", model="CH", count=1, standard="GB 19577",
                        declared_grade=1, certificate="a certificate", **CHECKED)
    assert item_status(chiller)[0] == "unproven"
    assert "China Energy Label" in item_status(chiller)[1]
    fan = Equipment(category="distribution", model="F", count=1, standard="GB 19761",
                    declared_grade=3, label_filing="CEL-9", **CHECKED)
    assert item_status(fan) == ("not met", "declared grade 3; clause 5.3 asks GB 19761 grade 2"
                                " or better")
    assert item_status(fan.model_copy(update={"declared_grade": 2}))[0] == "met"


def test_a_should_item_not_met_does_not_block_clause_5() -> None:
    chiller = Equipment(category="cooling", model="CH", count=1, standard="GB 19577",
                        declared_grade=3, label_filing="CEL-1", **CHECKED)
    c5 = clause5([_server(), chiller])
    assert (c5["status"], c5["should"]["status"]) == ("met", "not met")
    assert verdict("infrastructure", _infra(1), [_server(), chiller])["category"] == "advanced"


def test_no_server_in_the_register_leaves_clause_5_unproven() -> None:
    v = verdict("infrastructure", _infra(1), [])
    assert (v["category"], v["clause5"]["status"]) == ("none", "unproven")
    assert any("5.2: nothing declared" in r for r in v["clause5"]["shall"]["reasons"])
    c5 = next(b for b in v["basis"] if b["clause"] == "5")
    assert render_issue(c5["detail"], "zh") == (
        "第 5 章未经证实（无证据不作结论）：5.2：[[equipment]] 中未登记设备（GB 43630）")


@pytest.mark.parametrize(("result", "category", "indicative"), [
    (_infra(1), "advanced", False),
    (_infra(2), "energy-saving", False),
    (_infra(3), "none", False),
    (_infra(1, valid=False), "advanced", True),
    # The contract of helper "exact": a not-valid result's level is null, the would-be level
    # is in pue_level_indicative; the verdict reads it and stays indicative.
    (_infra(None, valid=False, pue_level_indicative=1), "advanced", True),
    (_infra(1, conforming=False, deviations=[{"rule": "min_repetitions"}]), "advanced", True),
])
def test_the_verdict_is_indicative_unless_valid_and_conforming(
    result: dict[str, Any], category: str, indicative: bool
) -> None:
    v = verdict("infrastructure", result, [_server()])
    assert (v["category"], v["indicative"]) == (category, indicative)
    texts = [b["text"] for b in v["basis"]]
    assert any(t.startswith("indicative") for t in texts) == indicative
    if result.get("conforming") is False:
        assert any("min_repetitions" in t for t in texts)


def test_general_and_ai_grade_by_table_1_and_table_2() -> None:
    def gen(level: str | None) -> dict[str, Any]:
        return {"cee": 30.0, "cee_level": level, "quality": {"valid": True}}
    assert verdict("general", gen("energy_saving"))["category"] == "energy-saving"
    assert verdict("general", gen("advanced"))["category"] == "advanced"
    assert verdict("general", gen(None))["category"] == "none"
    assert verdict("general", gen("advanced"))["clause5"] is None
    ai = {"aee_gflops_per_wh": 300.0, "aee_level": "advanced", "quality": {"valid": True},
          "aee_thresholds": {"advanced": 1.0}}
    v = verdict("ai", ai)
    assert v["category"] == "advanced" and v["clause5"] is None
    assert "differs from Table 2's 224" in v["basis"][0]["text"]


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_an_indicative_verdict_is_never_shown_bare(lang: str) -> None:
    result = _infra(1, valid=False)
    result["verdict"] = verdict("infrastructure", result, [_server()])
    line = verdict_line(result)
    assert line is not None and "INDICATIVE ONLY" in line
    html = verdict_html(result, lang)
    L = VERDICT_LABELS[lang]
    assert L["indicative"] in html
    assert f">{L['advanced']}<" not in html  # the category only inside "would give"
    standing = _infra(1)
    standing["verdict"] = verdict("infrastructure", standing, [_server()])
    assert verdict_line(standing) == "Verdict (T/CECA-G 0355—2025 4.1): advanced"
    assert f">{L['advanced']}<" in verdict_html(standing, lang)


def test_verdict_labels_exist_in_both_languages() -> None:
    assert set(VERDICT_LABELS["en"]) == set(VERDICT_LABELS["zh"])
    assert all(v.strip() for lang in VERDICT_LABELS.values() for v in lang.values())


def test_the_register_is_written_in_the_page_language() -> None:
    """zh: the product, requirement and reason in Chinese; en: no Chinese in the register's
    texts; a result frozen before `reason_detail` shows its English reason."""
    result = _infra(1)
    result["verdict"] = verdict("infrastructure", result, [_server(declared_grade=2)])
    zh, en = verdict_html(result, "zh"), verdict_html(result, "en")
    assert "塔式和机架式服务器" in zh and "GB 43630 能效 1 级" in zh
    assert "申报能效 2 级；第 5.2 条要求 GB 43630 能效 1 级" in zh
    assert "tower and rack servers" in en and "declared grade 2; clause 5.2 asks" in en
    register = en[en.index("<h3>Clause 5"):]
    assert not re.search(r"[\u4e00-\u9fff]", register)
    del result["verdict"]["clause5"]["shall"]["items"][0]["reason_detail"]
    assert "declared grade 2; clause 5.2 asks GB 43630 grade 1" in verdict_html(result, "zh")
