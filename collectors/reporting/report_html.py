"""The report page's layout and its labels in English and Chinese (no I/O, no plotting)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from html import escape
from typing import Any

from dcmeter.collectors.reporting.report_format import fmt, hms, local_time, percent, zone
from dcmeter.collectors.reporting.report_i18n import (
    grid_source,
    issue_texts,
    method_note,
    quantity,
    word,
)
from dcmeter.collectors.reporting.report_reconcile import reconciliation
from dcmeter.collectors.reporting.report_sections import (
    SECTION_LABELS,
    basis,
    instruments,
    signatures,
    title_block,
)
from dcmeter.collectors.reporting.report_verdict import verdict_html

LABELS: dict[str, dict[str, str]] = {
    "en": {
        "title": "Energy-efficiency evaluation report", "site": "Site", "window": "Window",
        "id": "ID", "kind": "Kind", "start": "Start", "end": "End", "hours": "Duration (h)",
        "state": "State", "note": "Note", "opened_by": "Opened by", "closed_by": "Stopped by",
        "indicators": "Indicators", "indicator": "Indicator",
        "value": "Value", "level": "Level", "thresholds": "Thresholds",
        "e_total": "Total energy E_total (kWh)", "e_it": "IT energy E_IT (kWh)",
        "e_green": "Green energy E_green (kWh)", "pue": "PUE", "cue": "CUE (kg CO₂/kWh)",
        "carbon": "Carbon emission CE (kg CO₂)", "grid": "Grid emission factor (kg CO₂/kWh)",
        "it_point": "IT measurement point", "load": "Load U", "load_method": "Load method",
        "compute": "compute", "storage": "storage", "network": "network",
        "c": "Computing power C (standard points)", "cee": "CEE (standard points/Wh)",
        "ccue": "CCUE (kg CO₂/standard point)", "groups": "Device groups", "group": "Group",
        "count": "Count", "rating": "Rating", "term": "Term",
        "runs": "AI runs", "phase": "Phase", "model": "Model", "rep": "Rep.",
        "duration": "Duration (s)", "gflops": "GFLOPs", "energy_wh": "Energy (Wh)",
        "aee": "AEE (GFLOPs/Wh)", "aee_mean": "AEE (weighted mean of valid runs)",
        "aee_train": "AEE train", "aee_infer": "AEE infer", "exit": "Exit status",
        "valid": "Valid", "issues": "Issues", "tasks": "Tasks", "stdev": "Std. dev.",
        "min": "Min", "max": "Max", "valid_runs": "Valid runs",
        "ace": "ACE (kg CO₂/FLOP)", "uncertainty": "Uncertainty",
        "quantity": "Quantity", "relative": "Relative (bound)", "worst": "Worst case",
        "within_mpe": "Within the calibration MPE", "mpe": "MPE", "method": "Method",
        "quality": "Data quality", "q_valid": "Result valid", "q_invalid": "Result NOT valid",
        "no_issues": "No issues.", "coverage_table": "Coverage per source",
        "source": "Source", "metric": "Metric", "samples": "Samples", "coverage": "Coverage",
        "longest_gap": "Longest gap (s)", "median_interval": "Median interval (s)",
        "interval_ok": "Interval OK", "wraps_resets": "Wraps / resets",
        "longest_gaps": "Longest gaps", "plots": "Plots",
        "implausible": "Implausible samples (left out of every figure)", "rule": "Rule",
        "first_at": "First at", "limit": "Limit",
        "p_power": "Total and IT power (kW)", "p_pue": "PUE over time",
        "p_load": "Load U per kind (%)", "p_aee": "AEE per run (GFLOPs/Wh)",
        "total_power": "total", "it_power": "IT", "no_data": "no data",
        "invalid_run": "not valid", "evidence": "Evidence", "agent": "Agent",
        "fingerprint": "Key fingerprint", "batches": "Batches", "seq": "Sequence",
        "chain": "Hash chain", "gaps": "Gaps (batches)", "dropped": "Dropped",
        "clock": "Clock (synced/unsynced)", "chain_ok": "verified, intact",
        "chain_broken": "BROKEN", "not_checked": "not checked",
        "batches_total": "Batches counted", "samples_total": "Samples counted",
        "chains": "Hash chains verified", "unknown_key": "unknown",
        "yes": "yes", "no": "no", "none": "—", "level_n": "level {n}",
        "no_level": "not graded", "advanced": "advanced", "energy_saving": "energy-saving",
        "indicative": "{level} (indicative: result not valid)",
        "pue_thr": "level 1 ≤ {l1}, level 2 ≤ {l2}, level 3 ≤ {l3} (GB 40879-2021)",
        "cee_thr": "advanced ≥ {a}, energy-saving ≥ {e} (Table 1)",
        "aee_thr": "advanced ≥ {a} GFLOPs/Wh (Table 2)",
        "open": "open", "closed": "closed", "generated": "Window result of",
        "infrastructure": "infrastructure", "general": "general computing", "ai": "AI computing",
        "conformance": "Conformance to T/CECA-G 0355—2025",
        "conforming": "Conforming: the site file keeps every fixed rule of the standard.",
        "not_conforming": "NOT conforming: the site file declares deviations from fixed rules"
                          " of the standard. Levels in this report are the site's reading,"
                          " not the standard's.",
        "level_nc": "{level} (not conforming: deviations declared)", "clause": "Clause",
        "std_value": "Standard", "used": "Used", "reason": "Reason",
        "revision": "Result revision", "computed_at": "Computed at",
        "site_sha256": "Site file SHA-256", "software": "Software",
    },
    "zh": {
        "title": "能效评价报告", "site": "站点", "window": "测量窗口",
        "id": "编号", "kind": "类型", "start": "开始", "end": "结束", "hours": "时长（小时）",
        "state": "状态", "note": "备注", "opened_by": "开启人", "closed_by": "停止人",
        "indicators": "指标", "indicator": "指标",
        "value": "数值", "level": "等级", "thresholds": "阈值",
        "e_total": "总耗电量 E_total（kWh）", "e_it": "IT 设备耗电量 E_IT（kWh）",
        "e_green": "绿色电量 E_green（kWh）", "pue": "电能利用效率 PUE",
        "cue": "碳利用效率 CUE（kg CO₂/kWh）", "carbon": "碳排放量 CE（kg CO₂）",
        "grid": "电网排放因子（kg CO₂/kWh）", "it_point": "IT 计量点", "load": "负载率 U",
        "load_method": "负载计算方法", "compute": "计算", "storage": "存储", "network": "网络",
        "c": "算力 C（标准算力点）", "cee": "算力能效 CEE（标准点/Wh）",
        "ccue": "算力碳效 CCUE（kg CO₂/标准点）", "groups": "设备分组", "group": "分组",
        "count": "数量", "rating": "额定值", "term": "分项",
        "runs": "AI 运行", "phase": "阶段", "model": "模型", "rep": "次序",
        "duration": "时长（秒）", "gflops": "GFLOPs", "energy_wh": "耗电量（Wh）",
        "aee": "AEE（GFLOPs/Wh）", "aee_mean": "AEE（有效运行的加权平均）",
        "aee_train": "训练 AEE", "aee_infer": "推理 AEE", "exit": "退出码",
        "valid": "有效", "issues": "问题", "tasks": "任务", "stdev": "标准差",
        "min": "最小", "max": "最大", "valid_runs": "有效运行数",
        "ace": "AI 碳效 ACE（kg CO₂/FLOP）", "uncertainty": "不确定度",
        "quantity": "量", "relative": "相对不确定度（界限）", "worst": "最坏情况",
        "within_mpe": "在校准最大允许误差内", "mpe": "最大允许误差", "method": "方法",
        "quality": "数据质量", "q_valid": "结果有效", "q_invalid": "结果无效",
        "no_issues": "无问题。", "coverage_table": "各数据源覆盖率",
        "source": "数据源", "metric": "测量项", "samples": "样本数", "coverage": "覆盖率",
        "longest_gap": "最长间隔（秒）", "median_interval": "采样间隔中位数（秒）",
        "interval_ok": "间隔合格", "wraps_resets": "回绕 / 复位",
        "longest_gaps": "最长数据间隔", "plots": "曲线图",
        "implausible": "不合理样本（未计入任何指标）", "rule": "规则",
        "first_at": "首次出现", "limit": "限值",
        "p_power": "总功率与 IT 功率（kW）", "p_pue": "PUE 随时间变化",
        "p_load": "各类负载率 U（%）", "p_aee": "每次运行的 AEE（GFLOPs/Wh）",
        "total_power": "总功率", "it_power": "IT 功率", "no_data": "无数据",
        "invalid_run": "无效", "evidence": "证据", "agent": "采集代理",
        "fingerprint": "密钥指纹", "batches": "批次数", "seq": "序号范围",
        "chain": "哈希链", "gaps": "缺失（批次）", "dropped": "丢弃",
        "clock": "时钟（同步/未同步）", "chain_ok": "已验证，完整",
        "chain_broken": "断裂", "not_checked": "未检查",
        "batches_total": "批次总数", "samples_total": "样本总数",
        "chains": "哈希链验证", "unknown_key": "未知",
        "yes": "是", "no": "否", "none": "—", "level_n": "{n} 级",
        "no_level": "未达到等级", "advanced": "先进", "energy_saving": "节能",
        "indicative": "{level}（仅供参考：结果无效）",
        "pue_thr": "1 级 ≤ {l1}，2 级 ≤ {l2}，3 级 ≤ {l3}（GB 40879-2021）",
        "cee_thr": "先进 ≥ {a}，节能 ≥ {e}（表 1）",
        "aee_thr": "先进 ≥ {a} GFLOPs/Wh（表 2）",
        "open": "进行中", "closed": "已结束", "generated": "窗口结果",
        "infrastructure": "基础设施", "general": "通用计算", "ai": "智能计算",
        "conformance": "与 T/CECA-G 0355—2025 的符合性",
        "conforming": "符合：站点文件未改变标准的任何固定规则。",
        "not_conforming": "不符合：站点文件声明了对标准固定规则的偏离。"
                          "本报告中的等级按站点设置得出，并非按标准得出。",
        "level_nc": "{level}（不符合标准：已声明偏离）", "clause": "条款",
        "std_value": "标准值", "used": "采用值", "reason": "理由",
        "revision": "结果版本", "computed_at": "计算时间",
        "site_sha256": "站点文件 SHA-256", "software": "软件版本",
    },
}

for _lang, _labels in SECTION_LABELS.items():  # the document parts' labels (report_sections.py)
    LABELS[_lang].update(_labels)

# The report is self-contained: inline styles and SVG, no script, nothing fetched. The policy
# says so to whatever opens it (a browser, the PDF printer); 'none' also refuses file: URLs.
CSP = ("default-src 'none'; style-src 'unsafe-inline'; img-src data:; font-src data:;"
       " base-uri 'none'; form-action 'none'")
CSP_META = f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'

CSS = """
body{font-family:"Noto Sans CJK SC","Noto Sans SC","Noto Sans",sans-serif;color:#222;
margin:24px auto;max-width:1100px;font-size:13px;line-height:1.45}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;border-bottom:2px solid #1f5fa8;
padding-bottom:2px;margin:22px 0 8px;break-after:avoid}h3{font-size:14px;margin:12px 0 4px}
table{border-collapse:collapse;margin:4px 0 10px;break-inside:auto}
th,td{border:1px solid #ccc;padding:3px 7px;text-align:left;vertical-align:top}
th{background:#eef3fa}td.n{text-align:right;font-variant-numeric:tabular-nums}
tr{break-inside:avoid}.ok{color:#1d7a3a;font-weight:bold}.bad{color:#c0392b;font-weight:bold}
.badge{display:inline-block;padding:3px 10px;border-radius:4px;color:#fff;font-weight:bold}
.badge.ok{background:#1d7a3a;color:#fff}.badge.bad{background:#c0392b;color:#fff}
.muted{color:#666;font-size:12px}
svg.plot{display:block;margin:6px 0 12px;break-inside:avoid;max-width:100%;height:auto}
svg .pt{font-size:13px;font-weight:bold;fill:#222}svg .pa{font-size:11px;fill:#444}
ul.issues li{margin:2px 0}@page{size:A4;margin:14mm}
.subtitle{font-size:15px;margin:0 0 8px}table.kv th{width:13em}
table.small{font-size:11px;width:100%;overflow-wrap:break-word}
table.sign td{width:12em;height:2.4em}p.note{margin:-6px 0 14px}
"""

Fmt = Callable[[Any], str]


def num(v: Any, quantity: str = "value") -> str:
    """A number in plain decimals with its quantity's significant digits (report_format.py),
    '—' when missing."""
    return fmt(v, quantity)


def sci(v: Any) -> str:
    """A number of no fixed quantity, plain decimals, 4 significant digits."""
    return fmt(v, "value")


def pct(v: Any, digits: int = 1) -> str:
    """A fraction as a percentage."""
    return percent(v, digits)


def _e(v: Any) -> str:
    return escape("—" if v is None or v == "" else str(v))


def table(head: Sequence[str], rows: Sequence[Sequence[str]], numeric: Sequence[int] = ()) -> str:
    """An HTML table; cells are already-escaped HTML; `numeric` columns right-aligned."""
    th = "".join(f"<th>{escape(h)}</th>" for h in head)
    body = "".join(
        "<tr>" + "".join(
            f'<td class="n">{c}</td>' if i in numeric else f"<td>{c}</td>"
            for i, c in enumerate(r)) + "</tr>"
        for r in rows)
    return f"<table><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"


class Page:
    """One report page being laid out in language `lang`."""

    def __init__(self, result: Mapping[str, Any], lang: str,
                 fingerprints: Mapping[str, str]) -> None:
        self.r, self.L, self.fp, self.lang = result, LABELS[lang], fingerprints, lang
        # Every time shown is local to the site (`[site] timezone`, kept in the result).
        self.tz = zone((result.get("site_info") or {}).get("timezone"))

    def time(self, v: Any) -> str:
        """A time (RFC 3339 or epoch s) as local time to the second, escaped."""
        return _e(local_time(v, self.tz))

    def t(self, key: str) -> str:
        """The escaped label of `key`."""
        return escape(self.L[key])

    def yn(self, v: Any) -> str:
        """Yes/no (coloured), '—' when unknown."""
        if v is None:
            return "—"
        return f'<span class="{"ok" if v else "bad"}">{self.t("yes" if v else "no")}</span>'

    def level(self, v: Any) -> str:
        """A level: GB 40879 number, or a Table 1/2 grade name; marked when not conforming."""
        return self.t("no_level") if v is None else self.nc(escape(self.level_plain(v)))

    def graded(self, name: str) -> str:
        """A result's level field: the level, or the would-be level marked indicative.

        A result that is not valid carries its level only in `<name>_indicative`
        (collectors/evaluation/levels.py); it is never shown as a bare level.
        """
        value, indicative = self.r.get(name), self.r.get(f"{name}_indicative")
        if value is None and indicative is not None:
            text = self.L["indicative"].format(level=self.level_plain(indicative))
            return self.nc(f'<em class="bad">{escape(text)}</em>')
        return self.level(value)

    def level_plain(self, v: Any) -> str:
        """A level as plain text (not escaped), for composing into a longer phrase."""
        if isinstance(v, int) and not isinstance(v, bool):
            return self.L["level_n"].format(n=v)
        return self.L[v] if isinstance(v, str) and v in self.L else str(v)

    def nc(self, level: str) -> str:
        """Mark an (escaped) level shown on a result that is not conforming."""
        if self.r.get("conforming") is False:
            return f'<span class="bad">{escape(self.L["level_nc"].format(level=level))}</span>'
        return level

    def conformance(self) -> str:
        """At the top: whether the result keeps the standard's fixed rules, and each deviation."""
        if "conforming" not in self.r:  # a result stored before the field existed
            return ""
        if self.r["conforming"]:
            return f'<p><span class="badge ok">{self.t("conforming")}</span></p>'
        L = self.L
        rows = [[_e(d.get("rule")), _e(d.get("clause")), _e(d.get("standard")),
                 _e(d.get("used")), _e(d.get("reason"))]
                for d in self.r.get("deviations") or []]
        return (f'<p><span class="badge bad">{self.t("not_conforming")}</span></p>'
                + table([L["rule"], L["clause"], L["std_value"], L["used"], L["reason"]], rows))

    def h2(self, key: str) -> str:
        """A section heading."""
        return f'<h2 id="{key}">{self.t(key)}</h2>'

    def site_window(self) -> str:
        """The site and window sections."""
        w = self.r.get("window") or {}
        kind, state = self.r.get("kind") or w.get("kind"), w.get("state")
        rows = [(self.t("id"), _e(w.get("id"))),
                (self.t("kind"), self.t(kind) if kind in self.L else _e(kind)),
                (self.t("start"), self.time(w.get("start"))),
                (self.t("end"), self.time(w.get("end"))),
                (self.t("duration_hms"), hms(w["hours"] * 3600.0 if isinstance(
                    w.get("hours"), int | float) else None)),
                (self.t("scope"), _e(w.get("scope"))),
                (self.t("state"), self.t(state) if state in self.L else _e(state)),
                (self.t("note"), _e(w.get("note"))),
                # Token names (collectors/web/auth.py): who opened and who stopped the window.
                (self.t("opened_by"), _e(w.get("opened_by"))),
                (self.t("closed_by"), _e(w.get("closed_by")))]
        # A closed window's stored result (collectors/results/frozen.py): which one, from what.
        if isinstance(rev := self.r.get("revision"), dict):
            rows += [(self.t("revision"), f"{_e(rev.get('number'))} · {_e(rev.get('reason'))}"
                      + (f" · {_e(rev.get('by'))}" if rev.get("by") else "")),
                     (self.t("computed_at"), self.time(rev.get("computed_at"))),
                     (self.t("site_sha256"), f"<code>{_e(rev.get('site_sha256'))}</code>"),
                     (self.t("software"), _e(rev.get("software")))]
        grid = self.r.get("grid_factor") or {}
        site_rows = [(self.t("site"), _e(self.r.get("site"))),
                     (self.t("grid"),
                      f"{num(grid.get('value'), 'grid')} · {_e(grid_source(grid, self.lang))}"),
                     (self.t("it_point"), _e(word(self.r.get("it_point"), self.lang)))]
        return (self.h2("site") + table([self.L["indicator"], self.L["value"]], site_rows)
                + self.h2("window") + table([self.L["indicator"], self.L["value"]], rows))

    def indicators(self) -> str:
        """Every indicator with its level and thresholds."""
        r, L = self.r, self.L
        e = r.get("energy_kwh") or {}
        pt = r.get("pue_thresholds") or {}
        pue_thr = L["pue_thr"].format(l1=num(pt.get("level1"), "threshold"),
                                      l2=num(pt.get("level2"), "threshold"),
                                      l3=num(pt.get("level3"), "threshold"))
        rows = [[self.t("e_total"), num(e.get("total"), "energy_kwh"), "", ""],
                [self.t("e_it"), num(e.get("it"), "energy_kwh"), "", ""],
                [self.t("e_green"), num(e.get("green"), "energy_kwh"), "", ""],
                [self.t("pue"), num(r.get("pue"), "pue"), self.graded("pue_level"),
                 escape(pue_thr)],
                [self.t("carbon"), num(r.get("carbon_kg"), "carbon_kg"), "", ""],
                [self.t("cue"), num(r.get("cue"), "cue"), "", ""]]
        extra = ""
        if r.get("kind") == "general":
            ct = r.get("cee_thresholds") or {}
            load = r.get("load") or {}
            rows += [[f"{self.t('load')} · {self.t(k)}", pct(load.get(k)), "", ""]
                     for k in ("compute", "storage", "network")]
            rows += [[self.t("load_method"), _e(word(r.get("load_method"), self.lang)), "", ""],
                     [self.t("c"), num(r.get("computing_power"), "computing"), "", ""],
                     [self.t("cee"), num(r.get("cee"), "cee"), self.graded("cee_level"),
                      escape(L["cee_thr"].format(
                          a=num(ct.get("advanced"), "threshold"),
                          e=num(ct.get("energy_saving"), "threshold")))],
                     [self.t("ccue"), num(r.get("ccue"), "ccue"), "", ""]]
            extra = self.groups()
        if r.get("kind") == "ai":
            at = r.get("aee_thresholds") or {}
            rows += [[self.t("aee_mean"), num(r.get("aee_gflops_per_wh"), "aee"),
                      self.graded("aee_level"),
                      escape(L["aee_thr"].format(a=num(at.get("advanced"), "threshold")))],
                     [self.t("aee_train"), num(r.get("aee_train"), "aee"), "", ""],
                     [self.t("aee_infer"), num(r.get("aee_infer"), "aee"), "", ""],
                     [self.t("ace"), num(r.get("ace_kg_per_flop"), "ace"), "", ""]]
            extra = self.runs()
        head = [L["indicator"], L["value"], L["level"], L["thresholds"]]
        return self.h2("indicators") + table(head, rows, numeric=(1,)) + extra

    def groups(self) -> str:
        """General windows: the device groups behind U and C."""
        rows = [[_e(g.get("name")), self.t(g["kind"]) if g.get("kind") in self.L
                 else _e(g.get("kind")), num(g.get("count"), "count"),
                 num(g.get("rating"), "rating"),
                 pct(g.get("load")), num(g.get("term"), "computing"), self.yn(g.get("valid"))]
                for g in self.r.get("groups") or []]
        L = self.L
        head = [L["group"], L["kind"], L["count"], L["rating"], L["load"], L["term"], L["valid"]]
        return f"<h3>{self.t('groups')}</h3>" + table(head, rows, (2, 3, 4, 5)) if rows else ""

    def runs(self) -> str:
        """AI windows: the runs with AEE each, and the tasks' means."""
        L = self.L
        rows = []
        for run in self.r.get("runs") or []:
            flops = run.get("flops")
            rows.append([
                _e(word(run.get("phase"), self.lang)), _e(run.get("model")),
                _e(run.get("repetition")),
                self.time(run.get("start")), hms(run.get("duration_s")),
                num(flops / 1e9 if isinstance(flops, int | float) else None, "gflops"),
                num(run.get("energy_wh"), "energy_wh"), num(run.get("aee_gflops_per_wh"), "aee"),
                _e(run.get("exit_status")), self.yn(run.get("valid")),
                "<br>".join(_e(i) for i in issue_texts(run, self.lang))])
        head = [L["phase"], L["model"], L["rep"], L["start"], L["duration"], L["gflops"],
                L["energy_wh"], L["aee"], L["exit"], L["valid"], L["issues"]]
        tasks = [[_e(word(t.get("phase"), self.lang)), _e(t.get("model")),
                  f"{_e(t.get('valid_runs'))} / {_e(t.get('runs'))}",
                  num(t.get("aee_gflops_per_wh"), "aee"), num(t.get("aee_stdev"), "aee"),
                  num(t.get("aee_min"), "aee"), num(t.get("aee_max"), "aee"),
                  self.yn(t.get("valid"))]
                 for t in self.r.get("tasks") or []]
        thead = [L["phase"], L["model"], L["valid_runs"], L["aee"], L["stdev"], L["min"],
                 L["max"], L["valid"]]
        return (f"<h3>{self.t('runs')}</h3>" + table(head, rows, (4, 5, 6, 7))
                + f"<h3>{self.t('tasks')}</h3>" + table(thead, tasks, (3, 4, 5, 6)))

    def uncertainty(self) -> str:
        """Relative uncertainties, worst case, and whether within the calibration MPEs."""
        u = self.r.get("uncertainty") or {}
        worst = u.get("worst_case") or {}
        rows = [[_e(quantity(k, self.lang)), pct(v, 2), pct(worst.get(k), 2)]
                for k, v in u.items() if k.endswith("_rel") and isinstance(v, int | float)]
        L = self.L
        out = self.h2("uncertainty") + table([L["quantity"], L["relative"], L["worst"]],
                                             rows, (1, 2))
        mpe = u.get("mpe") or {}
        within = u.get("within_mpe") or {}
        if within:
            out += f"<h3>{self.t('within_mpe')}</h3>" + table(
                [L["quantity"], L["within_mpe"], L["mpe"]],
                [[_e(quantity(k, self.lang)), self.yn(v), pct(mpe_of(mpe, k), 1)]
                 for k, v in within.items()])
        if u.get("method"):
            note = method_note(u["method"], self.lang)
            out += f'<p class="muted">{self.t("method")}: {_e(note)}</p>'
        return out

    def quality(self) -> str:
        """Validity with its reasons, coverage per source, the longest gaps."""
        q = self.r.get("quality") or {}
        valid = bool(q.get("valid"))
        out = self.h2("quality") + (
            f'<p><span class="badge {"ok" if valid else "bad"}">'
            f'{self.t("q_valid" if valid else "q_invalid")}</span></p>')
        issues = issue_texts(q, self.lang)
        out += (f"<h3>{self.t('issues')}</h3>" + ('<ul class="issues">' + "".join(
            f"<li>{_e(i)}</li>" for i in issues) + "</ul>" if issues
            else f"<p>{self.t('no_issues')}</p>"))
        srcs = q.get("sources") or []
        L = self.L
        rows = [[_e(s.get("source")), _e(s.get("name", s.get("metric"))),
                 num(s.get("samples"), "count"),
                 pct(s.get("coverage")), num(s.get("longest_gap_s"), "seconds"),
                 num(s.get("median_interval_s"), "seconds"), self.yn(s.get("interval_ok")),
                 f"{_e(s.get('wraps'))} / {_e(s.get('resets'))}"] for s in srcs]
        out += f"<h3>{self.t('coverage_table')}</h3>" + table(
            [L["source"], L["metric"], L["samples"], L["coverage"], L["longest_gap"],
             L["median_interval"], L["interval_ok"], L["wraps_resets"]], rows, (2, 3, 4, 5))
        bad = q.get("implausible") or []
        if bad:
            out += f"<h3>{self.t('implausible')}</h3>" + table(
                [L["source"], L["metric"], L["rule"], L["first_at"], L["value"], L["limit"],
                 L["count"]],
                [[_e(e.get("source")), _e(e.get("metric")), _e(word(e.get("rule"), self.lang)),
                  self.time(e.get("ts")), f"{sci(e.get('value'))} {_e(e.get('unit'))}",
                  f"{sci(e.get('limit'))} {_e(e.get('checked_unit'))}",
                  num(e.get("count"), "count")]
                 for e in bad], (4, 5, 6))
        gaps = sorted((s for s in srcs if isinstance(s.get("longest_gap_s"), int | float)),
                      key=lambda s: -float(s["longest_gap_s"]))[:5]
        if gaps:
            out += f"<h3>{self.t('longest_gaps')}</h3><ul>" + "".join(
                f"<li>{_e(s['source'])} {_e(s.get('metric'))}:"
                f" {num(s['longest_gap_s'], 'seconds')} s</li>" for s in gaps) + "</ul>"
        return out

    def evidence(self) -> str:
        """Agents with key fingerprints, batches and samples counted, chains, gaps."""
        q = self.r.get("quality") or {}
        chain, clock = q.get("chain") or {}, q.get("clock") or {}
        L = self.L
        agents = chain.get("agents") or {}
        clocks = clock.get("agents") or {}
        rows = []
        for agent, a in agents.items():
            c = clocks.get(agent) or {}
            intact = not a.get("breaks")
            rows.append([
                _e(agent), f"<code>{_e(self.fp.get(agent, L['unknown_key']))}</code>",
                num(a.get("batches"), "count"), f"{_e(a.get('first_seq'))}–{_e(a.get('last_seq'))}",
                f'<span class="{"ok" if intact else "bad"}">'
                f'{self.t("chain_ok" if intact else "chain_broken")}</span>'
                + ("" if intact else f" ({_e(', '.join(map(str, a['breaks'])))})"),
                _e(", ".join(map(str, a.get("gaps") or [])) or None),
                _e(", ".join(map(str, a.get("dropped") or [])) or None),
                f"{_e(c.get('synced'))} / {_e(c.get('unsynced'))}"])
        samples = sum(int(s.get("samples") or 0) for s in q.get("sources") or [])
        batches = sum(int(a.get("batches") or 0) for a in agents.values())
        if chain.get("checked"):
            chains = (f'<span class="{"ok" if chain.get("ok") else "bad"}">'
                      f'{self.t("chain_ok" if chain.get("ok") else "chain_broken")}</span>'
                      f" ({len(agents)})")
        else:
            chains = f'{self.t("not_checked")}: {_e(word(chain.get("note"), self.lang))}'
        summary = table([L["indicator"], L["value"]], [
            [self.t("batches_total"), num(batches, "count") if chain.get("checked") else "—"],
            [self.t("samples_total"), num(samples, "count")], [self.t("chains"), chains]])
        head = [L["agent"], L["fingerprint"], L["batches"], L["seq"], L["chain"], L["gaps"],
                L["dropped"], L["clock"]]
        return self.h2("evidence") + summary + (table(head, rows, (2,)) if rows else "")


def mpe_of(mpe: Mapping[str, Any], quantity: str) -> Any:
    """The MPE of a `within_mpe` row: its own, else its kind's (`energy_it`, `energy_servers`
    are energies: the result states one `energy` MPE for them all)."""
    return mpe.get(quantity, mpe.get(quantity.split("_")[0]))


def page(result: Mapping[str, Any], plots: Sequence[str], lang: str,
         fingerprints: Mapping[str, str], generated: float, version: str) -> str:
    """The whole HTML document: sections in order, `plots` (SVG and notes, HTML) in their own.

    `generated`: when the page was made (epoch s), `version`: the software's version."""
    p = Page(result, lang, fingerprints)
    w = result.get("window") or {}
    title = f"{p.t('title')} · {_e(result.get('site'))} · {p.t('window')} {_e(w.get('id'))}"
    body = (title_block(result, p.L, p.tz, generated, version) + basis(result, p.L)
            + p.conformance() + verdict_html(result, lang) + p.site_window() + p.indicators()
            + instruments(result, p.L, lang) + p.uncertainty()
            + reconciliation(result, lang) + p.quality()
            + p.h2("plots") + "".join(plots) + p.evidence() + signatures(p.L))
    html_lang = "zh-CN" if lang == "zh" else "en"
    return (f'<!DOCTYPE html><html lang="{html_lang}"><head><meta charset="utf-8">{CSP_META}'
            f"<title>{title}</title><style>{CSS}</style></head><body>{body}</body></html>\n")
