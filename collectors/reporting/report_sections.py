"""The report's document parts: title block, basis, instrument list, signature block.

Each takes the result and the language's labels and returns escaped HTML (no I/O). Their
labels (`SECTION_LABELS`, English and Chinese) join the page's LABELS
(collectors/reporting/report_html.py).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape
from typing import Any
from zoneinfo import ZoneInfo

from dcmeter.collectors.reporting.report_format import local_time, utc_offset
from dcmeter.collectors.reporting.report_i18n import role, word

SECTION_LABELS: dict[str, dict[str, str]] = {
    "en": {
        "address": "Address", "operator": "Operator", "report_of": "Window",
        "generated_at": "Report generated", "version": "Software version",
        "times_in": "Times are local", "duration_hms": "Duration (h:mm:ss)",
        "scope": "Scope", "basis_h": "Basis", "standard": "Standard",
        "clauses": "Clauses applied",
        "std_ceca": "Evaluation of energy-efficiency front-runners of data centers",
        "std_gb": "Maximum allowable values of energy efficiency and energy efficiency grades"
                  " for data centers",
        "cl_infra": "4.1 infrastructure level; 5 main supporting equipment; 6.1 PUE and CUE",
        "cl_general": "4.2 general computing; 6.2 CEE and CCUE; Annexes A and B",
        "cl_ai": "4.3 AI computing; 6.3 AEE and ACE; Annexes C, D and E",
        "cl_gb": "PUE energy-efficiency levels; measurement points",
        "instruments": "Instrument list", "inst_source": "Source", "inst_kind": "Kind",
        "inst_device": "Make / model", "inst_id": "Serial / device id",
        "inst_firmware": "Firmware", "inst_point": "Measurement point",
        "inst_protocol": "Protocol / address", "inst_accuracy": "Accuracy",
        "inst_accuracy_source": "Accuracy from", "inst_calibrated": "Calibrated",
        "inst_due": "Calibration due", "inst_certificate": "Certificate",
        "inst_overdue": "OVERDUE", "inst_samples": "Samples", "inst_roles": "Used for",
        "no_instruments": "The result lists no instruments (computed before the list existed).",
        "signatures": "Signatures", "engineer": "Measurement engineer", "reviewer": "Reviewer",
        "approver": "Approved by", "sign_name": "Name", "sign_sig": "Signature",
        "sign_date": "Date",
        "bucket_note": "Each point is a bucket of {step} (h:mm:ss). Counter resolution"
                       " (total {r_total} kWh, IT {r_it} kWh, at {p_total} kW and {p_it} kW"
                       " mean) changes a bucket's figure by at most {share}; buckets of"
                       " {least} or longer keep it under 0.5 %.",
        "bucket_note_short": "Each point is a bucket of {step} (h:mm:ss). Counter resolution"
                             " would need buckets of {least} to stay under 0.5 %: the window"
                             " is shorter, so the plot shows the window as one bucket.",
        "bucket_note_plain": "Each point is a bucket of {step} (h:mm:ss); the power figures"
                             " come from power readings, no counter step applies.",
        "p_run_power": "Mean power per run (kW)", "run_marks": "dashed lines: run start and"
                       " end",
    },
    "zh": {
        "address": "地址", "operator": "运营单位", "report_of": "测量窗口",
        "generated_at": "报告生成时间", "version": "软件版本",
        "times_in": "时间均为当地时间", "duration_hms": "时长（时:分:秒）",
        "scope": "范围", "basis_h": "评价依据", "standard": "标准",
        "clauses": "适用条款",
        "std_ceca": "数据中心能效“领跑者”评价",
        "std_gb": "数据中心能效限定值及能效等级",
        "cl_infra": "4.1 基础设施层面；5 主要配套设备要求；6.1 PUE 与 CUE",
        "cl_general": "4.2 通用算力；6.2 CEE 与 CCUE；附录 A、附录 B",
        "cl_ai": "4.3 智能算力；6.3 AEE 与 ACE；附录 C、附录 D、附录 E",
        "cl_gb": "PUE 能效等级；测量点",
        "instruments": "测量仪器清单", "inst_source": "数据源", "inst_kind": "类型",
        "inst_device": "厂商 / 型号", "inst_id": "序列号 / 设备标识",
        "inst_firmware": "固件", "inst_point": "计量点",
        "inst_protocol": "协议 / 地址", "inst_accuracy": "准确度",
        "inst_accuracy_source": "准确度来源", "inst_calibrated": "校准日期",
        "inst_due": "校准有效期至", "inst_certificate": "证书",
        "inst_overdue": "已过期", "inst_samples": "样本数", "inst_roles": "用途",
        "no_instruments": "该结果未列出测量仪器（计算时尚无仪器清单）。",
        "signatures": "签字", "engineer": "测量工程师", "reviewer": "审核人",
        "approver": "批准人", "sign_name": "姓名", "sign_sig": "签字",
        "sign_date": "日期",
        "bucket_note": "每个点为 {step}（时:分:秒）的时段。计量器分辨率（总 {r_total} kWh，"
                       "IT {r_it} kWh，平均功率 {p_total} kW 与 {p_it} kW）对时段数值的影响"
                       "不超过 {share}；时段不短于 {least} 时，影响小于 0.5 %。",
        "bucket_note_short": "每个点为 {step}（时:分:秒）的时段。计量器分辨率需要 {least} 的"
                             "时段才能使影响小于 0.5 %：窗口更短，故整个窗口作为一个时段。",
        "bucket_note_plain": "每个点为 {step}（时:分:秒）的时段；功率数值来自功率读数，"
                             "不受计量器分辨率影响。",
        "p_run_power": "每次运行的平均功率（kW）", "run_marks": "虚线：运行开始与结束",
    },
}


def _e(v: Any) -> str:
    return escape("—" if v is None or v == "" else str(v))


def _rows(rows: Sequence[tuple[str, str]]) -> str:
    body = "".join(f"<tr><th>{escape(k)}</th><td>{v}</td></tr>" for k, v in rows)
    return f'<table class="kv"><tbody>{body}</tbody></table>'


def title_block(r: Mapping[str, Any], L: Mapping[str, str], tz: ZoneInfo, generated: float,
                version: str) -> str:
    """The title: the site (name, address, operator), window, revision, software version,
    generation time and the time zone every time is shown in."""
    info = r.get("site_info") or {}
    w = r.get("window") or {}
    kind = r.get("kind") or w.get("kind")
    rev = r.get("revision")
    rev = rev if isinstance(rev, Mapping) else {}
    kind_text = escape(L[kind]) if isinstance(kind, str) and kind in L else _e(kind)
    window = f"{_e(w.get('id'))} · {kind_text}"
    rows = [(L["site"], _e(r.get("site"))), (L["address"], _e(info.get("address"))),
            (L["operator"], _e(info.get("operator"))), (L["report_of"], window),
            (L["start"], _e(local_time(w.get("start"), tz))),
            (L["end"], _e(local_time(w.get("end"), tz))),
            (L["revision"], _e(rev.get("number"))), (L["version"], _e(version)),
            (L["generated_at"], _e(local_time(generated, tz))),
            (L["times_in"], _e(utc_offset(tz, generated)))]
    return (f'<h1>{escape(L["title"])}</h1><p class="subtitle">{_e(r.get("site"))}</p>'
            + _rows(rows))


def basis(r: Mapping[str, Any], L: Mapping[str, str]) -> str:
    """The standards the result applies, with the clauses its window kind uses."""
    kind = r.get("kind") or (r.get("window") or {}).get("kind")
    clause = {"general": "cl_general", "ai": "cl_ai"}.get(str(kind), "cl_infra")
    rows = [[f"T/CECA-G 0355—2025 {escape(L['std_ceca'])}", escape(L[clause])],
            [f"GB 40879-2021 {escape(L['std_gb'])}", escape(L["cl_gb"])]]
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return (f'<h2 id="basis">{escape(L["basis_h"])}</h2><table><thead><tr>'
            f"<th>{escape(L['standard'])}</th><th>{escape(L['clauses'])}</th></tr></thead>"
            f"<tbody>{body}</tbody></table>")


def _accuracy(v: Any) -> str:
    if isinstance(v, int | float) and not isinstance(v, bool):
        return f"± {v * 100:g} %"
    return _e(v)


def instruments(r: Mapping[str, Any], L: Mapping[str, str], lang: str) -> str:
    """Every instrument that contributed (`result["instruments"]`); '—' where a field is
    missing, an overdue calibration marked."""
    items = r.get("instruments")
    head = f'<h2 id="instruments">{escape(L["instruments"])}</h2>'
    if not isinstance(items, list) or not items:
        return head + f'<p class="muted">{escape(L["no_instruments"])}</p>'
    rows = []
    for i in items:
        d = i.get("device") if isinstance(i.get("device"), Mapping) else {}
        make = " ".join(str(d[k]) for k in ("make", "model") if d.get(k)) or None
        ident = " / ".join(str(d[k]) for k in ("serial", "device_id") if d.get(k)) or None
        due = _e(i.get("calibration_due"))
        if i.get("overdue"):
            due = f'<span class="bad">{due} ({escape(L["inst_overdue"])})</span>'
        roles = i.get("roles")
        kind = str(i.get("kind"))
        # Eight columns, related fields stacked, so the table fits an A4 page's width.
        rows.append([
            f"<b>{_e(i.get('source'))}</b><br>"
            + (escape(L[kind]) if kind in L else _e(i.get("kind"))) + "<br>"
            + _e(", ".join(role(str(x), lang) for x in roles) if isinstance(roles, list)
                 else roles),
            _e(make), f"{_e(ident)}<br>{_e(d.get('firmware'))}",
            _e(word(i.get("point"), lang) if i.get("point") else None),
            f"{_e(word(i.get('protocol'), lang) if i.get('protocol') else None)}<br>"
            f"{_e(i.get('address'))}",
            f"{_accuracy(i.get('accuracy'))}<br>"
            f"{_e(word(i.get('accuracy_source'), lang) if i.get('accuracy_source') else None)}",
            f"{_e(i.get('calibrated'))}<br>{due}<br>{_e(i.get('certificate'))}",
            _e(i.get("samples"))])
    heads = [f"{L['inst_source']} / {L['inst_kind']} / {L['inst_roles']}", L["inst_device"],
             f"{L['inst_id']} / {L['inst_firmware']}", L["inst_point"], L["inst_protocol"],
             f"{L['inst_accuracy']} / {L['inst_accuracy_source']}",
             f"{L['inst_calibrated']} / {L['inst_due']} / {L['inst_certificate']}",
             L["inst_samples"]]
    th = "".join(f"<th>{escape(h)}</th>" for h in heads)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return head + f'<table class="small"><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>'


def signatures(L: Mapping[str, str]) -> str:
    """Lines for the engineer, the reviewer and the approver to sign and date by hand."""
    rows = "".join(
        f"<tr><th>{escape(L[who])}</th><td></td><td></td><td></td></tr>"
        for who in ("engineer", "reviewer", "approver"))
    return (f'<h2 id="signatures">{escape(L["signatures"])}</h2><table class="sign"><thead>'
            f"<tr><th></th><th>{escape(L['sign_name'])}</th><th>{escape(L['sign_sig'])}</th>"
            f"<th>{escape(L['sign_date'])}</th></tr></thead><tbody>{rows}</tbody></table>")
