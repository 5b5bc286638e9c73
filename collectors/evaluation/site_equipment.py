"""[[equipment]] of the site file: the clause 5 register of T/CECA-G 0355—2025.

Clause 4.1 makes an infrastructure front-runner ("advanced" at GB 40879 level 1, "energy-saving"
at level 2) conditional on clause 5, 主要配套设备要求: the main supporting equipment meets the
energy-efficiency grade of its own national standard. Each register entry names one kind of
equipment, the standard and grade the clause asks of it, the grade the site declares and the
evidence an evaluator checked (clause 5's 合规性验证方式).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

Category = Literal["cooling", "server", "distribution"]
Obligation = Literal["shall", "should"]
# The evidence a clause accepts: 5.1 and 5.3 verify "by checking the filing on the China Energy
# Label website" (查验中国能效标识官网的备案信息); 5.2 "by the proof the data center provides or a
# third-party certificate" (查验数据中心提供的相关证明材料或第三方认证证书).
LABEL = "label_filing"
CERTIFICATE = "certificate"


@dataclass(frozen=True)
class Clause:
    """One subclause of clause 5: what it covers, its lead-in's force and how it is verified."""

    number: str
    category: Category
    title: str
    lead_in: str
    obligation: Obligation
    verification: str
    evidence: tuple[str, ...]
    title_zh: str = ""  # the standard's own words, for the Chinese report
    verification_zh: str = ""

    def title_in(self, lang: str) -> str:
        """What the subclause covers, in `lang` ("en" or "zh")."""
        return self.title_zh if lang == "zh" and self.title_zh else self.title

    def verification_in(self, lang: str) -> str:
        """How the subclause is verified (合规性验证方式), in `lang`."""
        return self.verification_zh if lang == "zh" and self.verification_zh else self.verification


CLAUSES: Mapping[str, Clause] = {
    "5.1": Clause("5.1", "cooling", "cooling system", "制冷机组的能效宜符合以下要求",
                  "should", "China Energy Label filing", (LABEL,), "冷却系统",
                  "查验中国能效标识官网的备案信息"),
    # The lead-in reads "应宜" (a drafting slip between shall and should); the item itself says
    # 应符合 and 5.1 and 5.3 chose a plain 宜, so dcmeter reads 5.2 as shall, the stricter one.
    "5.2": Clause("5.2", "server", "electronic information equipment",
                  "塔式和机架式服务器的能效应宜符合以下要求", "shall",
                  "the site's proof or a third-party certificate", (CERTIFICATE, LABEL),
                  "电子信息设备", "查验数据中心提供的相关证明材料或第三方认证证书"),
    "5.3": Clause("5.3", "distribution", "power distribution equipment",
                  "变压器、电机、泵、风机、压缩机等配电设备的能效宜符合以下要求", "should",
                  "China Energy Label filing", (LABEL,), "配电设备",
                  "查验中国能效标识官网的备案信息"),
}
CLAUSE_OF: Mapping[Category, Clause] = {c.category: c for c in CLAUSES.values()}
NOTE_5_2 = ("5.2's lead-in reads both shall and should; read as shall: its item says shall"
            " while 5.1 and 5.3 chose a plain should")
NOTE_5_2_ZH = "5.2 的引导语为“应宜”；按“应”理解：其条文为“应符合”，而 5.1 与 5.3 用的是“宜”"


@dataclass(frozen=True)
class Requirement:
    """One item of clause 5: the product, its standard and the worst grade that meets it."""

    standard: str
    clause: str
    product: str
    grade: int  # grade 1 is the best; "grade 2 or better" is 2
    edition: str | None = None  # a dated reference (clause 2): only that edition applies
    product_zh: str = ""

    @property
    def wording(self) -> str:
        """The grade the clause asks for, as the text says it."""
        return grade_wording(self.grade, "en")

    def product_in(self, lang: str) -> str:
        """The product's name in `lang` ("en" or "zh")."""
        return self.product_zh if lang == "zh" and self.product_zh else self.product


def grade_wording(grade: int, lang: str) -> str:
    """An energy-efficiency grade as a requirement: "grade 2 or better", "能效 2 级及以上"."""
    if lang == "zh":
        return f"能效 {grade} 级" + ("及以上" if grade > 1 else "")
    return f"grade {grade}" + (" or better" if grade > 1 else "")


def _req(standard: str, clause: str, product: str, grade: int = 1,
         edition: str | None = None) -> tuple[str, Requirement]:
    """`product` is "english (中文)": each language gets its own part."""
    en, _, zh = product.partition(" (")
    return standard, Requirement(standard, clause, en, grade, edition, zh.removesuffix(")"))


REQUIREMENTS: Mapping[str, Requirement] = dict((
    _req("GB 19577", "5.1", "water chillers (冷水机组)"),
    _req("GB 19576", "5.1", "unitary air conditioners (单元式空气调节机)"),
    _req("GB 29540", "5.1", "LiBr absorption chillers (溴化锂吸收式冷水机组)"),
    _req("GB 30721", "5.1", "water/ground-source heat pumps (水(地)源热泵机组)"),
    _req("GB 37479", "5.1", "ducted air conditioners (风管送风式空调机组)"),
    _req("GB 37480", "5.1", "low-ambient air-source heat pumps, chilled water"
         " (低环境温度空气源热泵（冷水）机组)"),
    _req("GB 43630", "5.2", "tower and rack servers (塔式和机架式服务器)", edition="2023"),
    _req("GB 20052", "5.3", "power transformers (电力变压器)"),
    _req("GB 18613", "5.3", "motors (电动机)"),
    _req("GB 19153", "5.3", "positive-displacement air compressors (容积式空气压缩机)"),
    _req("GB 19761", "5.3", "fans (通风机)", grade=2),
    _req("GB 32030", "5.3", "submersible pumps (潜水电泵)"),
))
_STANDARD = re.compile(r"GB\s*(\d+)(?:\s*[-—–]\s*(\d{4}))?")


def _valid_for(category: str | None) -> str:
    clause = next((c for c in CLAUSES.values() if c.category == category), None)
    ours = [r for r in REQUIREMENTS.values() if clause is None or r.clause == clause.number]
    return ", ".join(f"{r.standard} ({r.product}, {r.product_zh})" for r in ours)


class Equipment(BaseModel):
    """[[equipment]]: `count` units of one model, the standard they must meet, and the proof."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    category: Category
    model: str = Field(min_length=1)
    count: int = Field(ge=1)
    standard: str
    required_grade: int | None = None
    declared_grade: int | None = Field(default=None, ge=1, le=5)
    label_filing: str | None = Field(default=None, min_length=1)
    certificate: str | None = Field(default=None, min_length=1)
    checked_by: str | None = Field(default=None, min_length=1)
    checked_on: date | None = None
    note: str | None = None

    @field_validator("standard")
    @classmethod
    def _standard(cls, value: str, info: ValidationInfo) -> str:
        category = info.data.get("category")
        match = _STANDARD.fullmatch(value.strip())
        req = REQUIREMENTS.get(f"GB {match.group(1)}") if match else None
        if match is None or req is None:
            raise ValueError(f"not a standard clause 5 names; valid: {_valid_for(category)}")
        if category is not None and req.clause != CLAUSE_OF[category].number:
            raise ValueError(
                f"{req.standard} is a clause {req.clause} standard, not for category"
                f" {category!r}; valid for {category!r}: {_valid_for(category)}"
            )
        year = match.group(2)
        if year is not None and req.edition is not None and year != req.edition:
            raise ValueError(
                f"clause 2 cites {req.standard}—{req.edition} (a dated reference: only that"
                f" edition applies); write {req.standard!r} or '{req.standard}-{req.edition}'"
            )
        return req.standard if year is None else f"{req.standard}-{year}"

    @field_validator("required_grade")
    @classmethod
    def _required(cls, value: int | None, info: ValidationInfo) -> int | None:
        standard = info.data.get("standard")
        if value is None or standard is None:
            return value
        req = requirement(standard)
        if value != req.grade:
            raise ValueError(
                f"clause {req.clause} asks {req.standard} {req.wording}: required_grade must be"
                f" {req.grade} (or left out), not {value}"
            )
        return value


def requirement(standard: str) -> Requirement:
    """Return clause 5's requirement for a standard as the site model keeps it ("GB 19577[-y]")."""
    return REQUIREMENTS[standard.split("-")[0]]
