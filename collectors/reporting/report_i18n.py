"""The report's words for a result's raw values: issues, methods, quantities, points, sources.

The evaluation writes its result in English and in code words (`energy_total`, `it_pdu`,
`counter`); the report shows them in the page's language. Issues come from
`issue_details` (collectors/evaluation/issues.py): a result without them (a result frozen
before issue codes existed) or with a list out of step with `issues` shows its English
texts. A value this module does not know is shown as it is.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dcmeter.collectors.evaluation.grid_factors import GRID_FACTORS
from dcmeter.collectors.evaluation.issue_texts import VALUES
from dcmeter.collectors.evaluation.issues import render_issue
from dcmeter.collectors.evaluation.quality import NOT_CHECKED_OFFLINE


def issue_texts(holder: Mapping[str, Any], lang: str) -> list[str]:
    """The issues of `holder` (a quality block or an AI run) written in `lang`."""
    issues = list(holder.get("issues") or [])
    found = holder.get("issue_details")
    if lang == "en" or not isinstance(found, list) or len(found) != len(issues):
        return [str(i) for i in issues]
    return [render_issue(d, lang) if isinstance(d, Mapping) else str(i)
            for d, i in zip(found, issues, strict=True)]


# Code words of a result, by language; English shows the readable word, not the code.
WORDS: dict[str, dict[str, str]] = {
    "en": {
        "energy": "energy (E_total)", "energy_total": "total energy (E_total)",
        "energy_it": "IT energy (E_IT)", "energy_green": "green energy (E_green)",
        "energy_servers": "servers' energy", "carbon": "carbon emissions (CE)",
        "pue": "PUE", "cue": "CUE", "cee": "CEE", "ccue": "CCUE", "aee": "AEE",
        "load": "load (U)", "computing_power": "computing power (C)",
        "it_pdu": "IT distribution output (PDU)", "it_input": "IT equipment input",
        "total": "total", "green": "green", "counter": "energy counter",
        "integrated_power": "integrated power", "mixed": "counter and integrated power",
        "1": "method 1", "2": "method 2", "train": "training", "infer": "inference",
        # the instrument list: protocols, where an accuracy came from, the site file's lists
        "modbus": "Modbus", "ipmi": "IPMI", "snmp": "SNMP", "nvml": "NVML", "host": "host",
        "site file": "site file", "agent config": "agent config", "default": "default",
        "energy.total": "E_total", "energy.it": "E_IT", "energy.green": "E_green",
        "ai.servers": "AI servers", "ai.gpus": "AI GPUs", "ai.network": "AI network",
        "ai.storage": "AI storage", "general.groups": "group",
        "reconcile.meter": "reconciliation meter", "reconcile.below": "behind a meter",
    },
    "zh": {
        "energy": "能耗（E_total）", "energy_total": "总能耗（E_total）",
        "energy_it": "IT 设备能耗（E_IT）", "energy_green": "绿电能耗（E_green）",
        "energy_servers": "服务器能耗", "carbon": "碳排放（CE）",
        "pue": "PUE", "cue": "CUE", "cee": "CEE", "ccue": "CCUE", "aee": "AEE",
        "load": "负载率（U）", "computing_power": "算力（C）",
        "it_pdu": "IT 配电输出（PDU）", "it_input": "IT 设备输入",
        "total": "总能耗", "green": "绿电", "counter": "电能计数器",
        "integrated_power": "功率积分", "mixed": "电能计数器与功率积分",
        "1": "方法 1", "2": "方法 2",
        "modbus": "Modbus", "ipmi": "IPMI", "snmp": "SNMP", "nvml": "NVML", "host": "主机",
        "site file": "站点文件", "agent config": "代理配置", "default": "默认值",
        "energy.total": "E_total", "energy.it": "E_IT", "energy.green": "E_green",
        "ai.servers": "AI 服务器", "ai.gpus": "AI GPU", "ai.network": "AI 网络",
        "ai.storage": "AI 存储", "general.groups": "设备组",
        "reconcile.meter": "对账电表", "reconcile.below": "电表下级",
        NOT_CHECKED_OFFLINE: "离线评估（样本文件）不检查：由采集服务器检查",
    },
}


def word(value: Any, lang: str) -> str:
    """A code word of the result (a quantity, point, role, method) in `lang`; else as is."""
    if value is None or value == "":
        return "—"
    text = str(value)
    return WORDS.get(lang, {}).get(text) or VALUES.get(lang, {}).get(text, text)


def role(key: str, lang: str) -> str:
    """A site-file list naming a source (`energy.it`, `general.groups.<name>`) in `lang`."""
    head, _, name = key.partition("general.groups.")
    if not head and name:
        return f"{word('general.groups', lang)} {name}"
    return word(key, lang)


def quantity(key: str, lang: str) -> str:
    """An uncertainty row's name: `energy_total_rel` -> "总能耗（E_total）" in zh."""
    return word(key.removesuffix("_rel"), lang)


# The uncertainty block's method notes (collectors/evaluation/uncertainty.py, general.py,
# ai.py), in Chinese; English shows the evaluation's own text.
METHOD_ZH = (
    "数据源准确度 a 为其相对误差限，按 [-a, a] 均匀分布（GUM 4.3.7）；各数据源相互独立；"
    "求和：各源误差的方和根除以总和；比值（PUE、CUE）：相对误差的方和根；结果为误差限水平"
    "（合成标准不确定度的 √3 倍，多源时约 92 % 包含概率，单源时即误差限本身）；最坏情况为误差限"
    "线性相加；电网排放因子视为准确；功率积分的采样误差未计入"
)


# The same in English words: the evaluation's own note (uncertainty.METHOD) writes formulas
# and result keys (a_i, worst_case), which a report does not show.
METHOD_EN = (
    "The accuracy a of a source is the bound of its relative error, uniform on [-a, a]"
    " (GUM 4.3.7); sources are independent; a sum: the root sum of squares of the sources'"
    " error bounds over the total; a ratio (PUE, CUE): the root sum of squares of the relative"
    " errors; figures are at the level of the bounds (√3 times the combined standard"
    " uncertainty, about 92 % coverage for several sources, the bound itself for one); the"
    " worst case adds the bounds linearly; the grid emission factor is taken as exact; the"
    " sampling error of integrated power is not included"
)


def method_note(text: Any, lang: str) -> str:
    """The uncertainty method note in `lang` (none where the result has none)."""
    if not text:
        return ""
    return METHOD_ZH if lang == "zh" else METHOD_EN


def grid_source(grid: Mapping[str, Any], lang: str) -> str:
    """Where the grid emission factor comes from, in `lang`."""
    source = str(grid.get("source") or "")
    key = grid.get("key")
    factor = GRID_FACTORS.get(str(key))
    if key == "configured":  # the evaluation's text names the site file's key: not shown
        return "站点文件中配置" if lang == "zh" else "configured in the site file"
    if factor is None:
        return source
    if lang == "zh":
        return (f"生态环境部：{factor.year} 年{factor.region_zh}电网排放因子，"
                f"{factor.kg_per_kwh} kg CO₂/kWh")
    # The table's citation names the publisher and region in Chinese too: English only here.
    return (f"Ministry of Ecology and Environment of the People's Republic of China:"
            f" {factor.year} grid emission factor, {factor.region}, {factor.kg_per_kwh} kg CO₂/kWh")


def basis_text(item: Mapping[str, Any], lang: str) -> str:
    """A verdict basis item's text in `lang`: from its `detail`, else its English text."""
    found = item.get("detail")
    if lang != "en" and isinstance(found, Mapping):
        return render_issue(found, lang)
    return str(item.get("text") or "")
