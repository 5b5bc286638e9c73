"""The console's words in English and Chinese, and the reader's choice of language.

The choice is the `dcmeter_lang` cookie (set by /lang?to=…, a year), else the browser's
Accept-Language (zh first → Chinese), else English. Figures and identifiers are not
translated; the result's reasons (quality.issues) are the evaluation's English text.
"""

from __future__ import annotations

from typing import Literal

Lang = Literal["en", "zh"]
LANGS: tuple[Lang, ...] = ("en", "zh")
COOKIE = "dcmeter_lang"

EN: dict[str, str] = {
    "title": "dcmeter console",
    "sign_in": "Sign in",
    "token": "Token",
    "token_hint": "a token from `dcmeter collector token create`",
    "bad_token": "Unknown or revoked token.",
    "sign_out": "Sign out",
    "signed_in_as": "Signed in as",
    "windows": "Windows",
    "kind": "Kind",
    "state": "State",
    "start": "Start",
    "end": "End",
    "note": "Note",
    "scope": "Scope (source ids, comma-separated; empty: whole site)",
    "any": "any",
    "open": "open",
    "closed": "closed",
    "filter": "Filter",
    "start_window": "Start a window",
    "start_submit": "Start",
    "stop_submit": "Stop the window",
    "no_windows": "No windows.",
    "window": "Window",
    "elapsed": "Elapsed",
    "energy_total": "Total energy (kWh)",
    "energy_it": "IT energy (kWh)",
    "validity": "Validity",
    "valid": "valid",
    "not_valid": "not valid",
    "reasons": "Reasons",
    "runs": "Runs",
    "no_runs": "No runs recorded.",
    "chart": "Power and PUE",
    "agents": "Agents",
    "agent": "Agent",
    "last_batch": "Last batch",
    "s_ago": "s ago",
    "never": "never",
    "chain": "Chain",
    "sources": "Sources",
    "source": "Source",
    "status": "Status",
    "last_value": "Last value",
    "coverage": "Coverage",
    "last_failure": "Last failure reason",
    "downloads": "Downloads",
    "report_html": "Report (HTML)",
    "report_pdf": "Report (PDF)",
    "result_json": "Result (JSON)",
    "updated": "Updated",
    "back": "All windows",
    "forbidden": "Refused",
    "not_found": "Not found",
    "ok": "ok",
    "stale": "stale",
    "no_data": "no data",
    "failing": "failing",
    "since": "since",
    "times": "times",
    "recovered": "recovered",
    "language": "Language",
}

ZH: dict[str, str] = {
    "title": "dcmeter 控制台",
    "sign_in": "登录",
    "token": "令牌",
    "token_hint": "由 `dcmeter collector token create` 生成的令牌",
    "bad_token": "令牌无效或已被吊销。",
    "sign_out": "退出",
    "signed_in_as": "当前用户",
    "windows": "测量窗口",
    "kind": "类型",
    "state": "状态",
    "start": "开始",
    "end": "结束",
    "note": "备注",
    "scope": "范围（数据源编号，逗号分隔；留空：全站）",
    "any": "全部",
    "open": "进行中",
    "closed": "已结束",
    "filter": "筛选",
    "start_window": "开始测量窗口",
    "start_submit": "开始",
    "stop_submit": "结束该窗口",
    "no_windows": "没有测量窗口。",
    "window": "测量窗口",
    "elapsed": "已用时间",
    "energy_total": "总耗电量（kWh）",
    "energy_it": "IT 耗电量（kWh）",
    "validity": "有效性",
    "valid": "有效",
    "not_valid": "无效",
    "reasons": "原因",
    "runs": "运行记录",
    "no_runs": "尚无运行记录。",
    "chart": "功率与 PUE",
    "agents": "采集代理",
    "agent": "代理",
    "last_batch": "最近一批",
    "s_ago": "秒前",
    "never": "从未",
    "chain": "哈希链",
    "sources": "数据源",
    "source": "数据源",
    "status": "状态",
    "last_value": "最新值",
    "coverage": "覆盖率",
    "last_failure": "最近故障原因",
    "downloads": "下载",
    "report_html": "报告（HTML）",
    "report_pdf": "报告（PDF）",
    "result_json": "结果（JSON）",
    "updated": "更新于",
    "back": "全部窗口",
    "forbidden": "拒绝",
    "not_found": "未找到",
    "ok": "正常",
    "stale": "超时",
    "no_data": "无数据",
    "failing": "故障",
    "since": "始于",
    "times": "次",
    "recovered": "已恢复于",
    "language": "语言",
}

WORDS: dict[Lang, dict[str, str]] = {"en": EN, "zh": ZH}


def choose(cookie: str | None, accept_language: str | None) -> Lang:
    """The page's language: the cookie's, else zh when Accept-Language puts zh first, else en."""
    if cookie == "zh":
        return "zh"
    if cookie == "en":
        return "en"
    first = (accept_language or "").split(",")[0].strip().lower()
    return "zh" if first.startswith("zh") else "en"
