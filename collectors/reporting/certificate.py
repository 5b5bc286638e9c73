"""The calibration certificate of one calibration record (seed 004), in English or Chinese.

`render_certificate(record, lang)` lays out the record GET /api/v1/calibrations/{id} answers
as a self-contained HTML page in the manner of a JJF 1071 certificate: the laboratory and
customer, the instrument and the reference standard, the quantity and its MPE, the procedure,
the results with their expanded uncertainty, each point's uncertainty budget, the statement
of conformity under its ILAC-G8:09/2019 decision rule, and a signature block. Numbers follow
GUM 7.2.6 (certificate_format.py). No I/O: report_print.render_pdf prints it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from html import escape
from typing import Any, Literal

from dcmeter.collectors.evaluation.issues import render_issue
from dcmeter.collectors.reporting.certificate_format import (
    decimals_of_u,
    divisor,
    dof,
    finite,
    fixed,
    percent_sig,
    percent_with_u,
    significant,
    with_u,
)
from dcmeter.collectors.reporting.certificate_i18n import (
    COMPONENTS,
    DISTRIBUTIONS,
    DRIVERS,
    INSTRUMENT_KINDS,
    LABELS,
    PAGE_END,
    QUANTITIES,
    REFERENCE_KINDS,
    RESULTS,
    RULES,
    UNITS,
)
from dcmeter.collectors.reporting.report_format import epoch, local_time, utc_offset, zone
from dcmeter.collectors.reporting.report_html import CSP_META, CSS, table

Lang = Literal["en", "zh"]

CERT_CSS = """
.cert-head{display:flex;justify-content:space-between;align-items:flex-end;
border-bottom:3px double #1f5fa8;padding-bottom:6px;margin-bottom:10px}
.cert-no{font-size:15px;font-weight:bold}
.provisional{border:3px solid #c0392b;color:#c0392b;font-weight:bold;font-size:18px;
padding:6px 12px;margin:8px 0;text-align:center}
.watermark{position:fixed;top:40%;left:0;right:0;text-align:center;transform:rotate(-30deg);
font-size:56px;color:rgba(192,57,43,0.13);font-weight:bold;z-index:-1}
.result{font-size:16px;font-weight:bold}.cond{color:#b9770e;font-weight:bold}
table.kv{width:100%}table.kv th{width:40%}
.cols{display:grid;grid-template-columns:1fr 1fr;gap:0 18px}body{padding:0 12px}
table.pts{width:100%;font-size:12px}table.pts td:first-child{white-space:nowrap}
h3.point{break-after:avoid}
@page{size:A4;margin:16mm 14mm 18mm}
"""
_RESULT_CLASS = {"pass": "ok", "conditional_pass": "cond", "conditional_fail": "cond",
                 "fail": "bad", "not_stated": "muted"}


def _e(v: Any) -> str:
    """`v` escaped, '—' when missing."""
    return escape("—" if v is None or v == "" else str(v))


def certificate_number(record: Mapping[str, Any]) -> str:
    """'DCM-CAL-{id}', with '-R{revision}' when the record carries a revision."""
    rev = record.get("revision")
    return f"DCM-CAL-{record.get('id')}" + (f"-R{rev}" if rev else "")


def _css_string(text: str) -> str:
    """`text` as a CSS string literal: every character but letters, digits, spaces and a few
    safe marks written as a CSS escape, so record data (an id) cannot end the string or the
    style element (`"`, `\\`, `<`)."""
    safe = re.compile(r"[\w \-.,:/()]")
    return '"' + "".join(c if safe.fullmatch(c) else f"\\{ord(c):x} " for c in text) + '"'


class Certificate:
    """One certificate being laid out in language `lang`."""

    def __init__(self, record: Mapping[str, Any], lang: Lang, tz: str | None) -> None:
        self.r, self.lang, self.L = record, lang, LABELS[lang]
        self.tz = zone(tz)
        q = record.get("quantity") or {}
        self.unit = str(q.get("unit") or "")
        self.u_name = UNITS[lang].get(self.unit, self.unit)

    def t(self, key: str, **kw: Any) -> str:
        """The escaped label of `key`, formatted with `kw`."""
        return escape(self.L[key].format(**kw) if kw else self.L[key])

    def word(self, table_: Mapping[str, Mapping[str, str]], key: Any) -> str:
        """`key` translated by `table_`, the record's text when the table lacks it."""
        return _e(table_[self.lang].get(str(key), key) if key is not None else None)

    def time(self, v: Any) -> str:
        return _e(local_time(v, self.tz)) if v else "—"

    def with_unit(self, label_key: str) -> str:
        return f"{self.L[label_key]} ({self.u_name})" if self.lang == "en" else \
            f"{self.L[label_key]}（{self.u_name}）"

    def mpe(self, m: Any) -> str:
        """An MPE {relative, absolute} in words."""
        m = m or {}
        rel, ab = m.get("relative"), m.get("absolute")
        p = significant(rel * 100, 3).rstrip("0").rstrip(".") if finite(rel) else None
        a = significant(ab, 3) if finite(ab) else None
        if p and a and rel:
            return self.t("mpe_both", p=p, a=a, unit=self.u_name)
        if p and rel:
            return self.t("mpe_rel", p=p)
        if a is not None:
            return self.t("mpe_pp" if self.unit == "%" else "mpe_abs", a=a, unit=self.u_name)
        return "—"

    def kv(self, rows: Sequence[tuple[str, str]]) -> str:
        """A two-column table of label keys and already-escaped values."""
        body = "".join(f"<tr><th>{self.t(k)}</th><td>{v}</td></tr>" for k, v in rows)
        return f'<table class="kv"><tbody>{body}</tbody></table>'

    def head(self) -> str:
        number = certificate_number(self.r)
        dates = self.r.get("dates") or {}
        provisional = ""
        if self.r.get("state") != "closed":
            provisional = (f'<div class="watermark">{self.t("provisional")}</div>'
                           f'<div class="provisional">{self.t("provisional")}</div>'
                           f'<p class="muted">{self.t("provisional_note")}</p>')
        # The offset shown is the one in force when the readings were taken.
        from_epoch = epoch(dates.get("last_reading") or dates.get("created"))
        return (f'<div class="cert-head"><h1>{self.t("title")}</h1>'
                f'<div class="cert-no">{self.t("number")}: {escape(number)}</div></div>'
                + provisional + self.kv([
                    ("number", escape(number)),
                    ("laboratory", _e(self.r.get("laboratory"))),
                    ("customer", _e(self.r.get("customer"))),
                    ("cal_from", self.time(dates.get("first_reading"))),
                    ("cal_to", self.time(dates.get("last_reading"))),
                    ("issued", self.time(dates.get("issued"))),
                    ("times_in", escape(utc_offset(self.tz, from_epoch))),
                ]))

    def instrument(self) -> str:
        i = self.r.get("instrument") or {}
        dev = i.get("device") or {}
        labels = i.get("labels") or {}
        rows = [("inst_kind", self.word(INSTRUMENT_KINDS, i.get("kind"))),
                ("description", _e(i.get("description") or dev.get("description"))),
                ("make", _e(dev.get("make"))), ("model", _e(dev.get("model"))),
                ("serial", _e(dev.get("serial"))), ("firmware", _e(dev.get("firmware"))),
                ("source", _e(i.get("source"))), ("metric", _e(i.get("metric"))),
                ("labels", _e(", ".join(f"{k}={v}" for k, v in sorted(labels.items())))),
                ("agent", _e(i.get("agent"))), ("point", _e(i.get("point")))]
        if i.get("kind") == "run":
            rows.append(("window", _e(i.get("window"))))
        rows.append(("resolution", self.amount(i.get("resolution"))))
        return f"<h2>{self.t('instrument')}</h2>" + self.kv(rows)

    def amount(self, v: Any) -> str:
        """A value in the quantity's unit, as given (no uncertainty to round it to)."""
        if not finite(v):
            return "—"
        text = significant(v, 6) if v else "0"
        if "." in text:
            text = text.rstrip("0").rstrip(".")
        return f"{escape(text)} {escape(self.u_name)}"

    def reference(self) -> str:
        ref = self.r.get("reference") or {}
        rows = [("ref_kind", self.word(REFERENCE_KINDS, ref.get("kind"))),
                ("name", _e(ref.get("name"))), ("make", _e(ref.get("make"))),
                ("model", _e(ref.get("model"))), ("serial", _e(ref.get("serial"))),
                ("certificate", _e(ref.get("certificate"))),
                ("calibrated", _e(ref.get("calibrated"))), ("due", _e(ref.get("due"))),
                ("mpe", self.mpe(ref.get("mpe"))),
                ("resolution", self.amount(ref.get("resolution")))]
        if ref.get("kind") == "series":
            rows += [("source", _e(ref.get("source"))), ("metric", _e(ref.get("metric")))]
        return f"<h2>{self.t('reference')}</h2>" + self.kv(rows)

    def quantity(self) -> str:
        q = self.r.get("quantity") or {}
        rng = q.get("range")
        range_text = "—"
        if isinstance(rng, Sequence) and len(rng) == 2 and all(finite(v) for v in rng):
            range_text = self.t("range_text", lo=significant(rng[0], 6) if rng[0] else "0",
                                hi=significant(rng[1], 6), unit=self.u_name)
        return f"<h2>{self.t('quantity_h')}</h2>" + self.kv([
            ("quantity", self.word(QUANTITIES, q.get("name"))),
            ("unit", _e(self.u_name)), ("range", range_text),
            ("mpe_result", self.mpe(q.get("mpe"))), ("basis", self.t("basis_text"))])

    def procedure(self) -> str:
        p = self.r.get("procedure") or {}
        rows = [("points", _e(", ".join(str(x) for x in p.get("points") or []))),
                ("repetitions", _e(p.get("repetitions"))),
                ("dwell", _e(_seconds(p.get("dwell_s")))),
                ("settle", _e(_seconds(p.get("settle_s")))),
                ("sync", _e(_seconds(p.get("sync_s")))),
                ("driver", self.word(DRIVERS, p.get("driver"))),
                ("rule", self.word(RULES, p.get("decision_rule"))),
                ("k", _e(_seconds(p.get("k")))),
                ("environment", _e(self.r.get("environment"))),
                ("note", _e(self.r.get("note")))]
        return f"<h2>{self.t('procedure')}</h2>" + self.kv(rows)

    def result_word(self, result: Any) -> str:
        cls = _RESULT_CLASS.get(str(result), "")
        return f'<span class="{cls}">{self.word(RESULTS, result)}</span>'

    def results(self) -> str:
        points = self.r.get("points") or []
        k = _seconds((points[0] if points else {}).get("k") or 2)
        head = [self.L["col_point"], self.with_unit("col_ref"), self.with_unit("col_ind"),
                self.with_unit("col_err"), self.L["col_rel_err"], self.with_unit("col_s"),
                f"{self.L['col_u'].format(k=k)} ({self.u_name})" if self.lang == "en"
                else f"{self.L['col_u'].format(k=k)}（{self.u_name}）",
                self.L["col_rel_u"], self.with_unit("col_mpe"), self.L["col_stmt"]]
        rows = []
        for p in points:
            u = p.get("expanded_u")
            rows.append([
                _e(p.get("label")), escape(with_u(p.get("reference_mean"), u)),
                escape(with_u(p.get("indicated_mean"), u)), escape(with_u(p.get("error"), u)),
                escape(percent_with_u(p.get("relative_error"), p.get("relative_expanded_u"))),
                escape(significant(p.get("repeatability"), 2)),
                escape(significant(u, 2)), escape(percent_sig(p.get("relative_expanded_u"))),
                escape(with_u(p.get("mpe"), u)),
                self.result_word((p.get("statement") or {}).get("result"))])
        points_table = table(head, rows, range(1, 9)).replace("<table>", '<table class="pts">', 1)
        return (f"<h2>{self.t('results')}</h2>" + points_table
                + f'<p class="muted">{self.t("rounding")}</p>')

    def budget(self, p: Mapping[str, Any]) -> str:
        head = [self.L["b_component"], self.L["b_type"], self.L["b_dist"],
                self.with_unit("b_half"), self.L["b_div"], self.with_unit("b_u"),
                self.L["b_dof"]]
        rows = []
        for b in p.get("budget") or []:
            half = b.get("half_width", b.get("value"))
            rows.append([self.word(COMPONENTS, b.get("name")),
                         self.t(f"type_{b.get('type')}") if b.get("type") in ("A", "B")
                         else _e(b.get("type")),
                         self.word(DISTRIBUTIONS, b.get("distribution")),
                         escape(significant(half, 3)), escape(divisor(b.get("divisor"))),
                         escape(significant(b.get("u"), 3)), escape(dof(b.get("dof")))])
        u = p.get("expanded_u")
        summary = self.kv([
            ("u_c", f"{escape(significant(p.get('combined_u'), 2))} {escape(self.u_name)}"),
            ("nu_eff", escape(dof(p.get("dof_eff")))),
            ("k_val", _e(_seconds(p.get("k")))),
            ("U_val", f"{escape(significant(u, 2))} {escape(self.u_name)}"
                      f" ({escape(percent_sig(p.get('relative_expanded_u')))})")])
        return (f'<h3 class="point">{self.t("budget_of", label=str(p.get("label")))}</h3>'
                + table(head, rows, (3, 4, 5, 6)) + summary + self.readings(p))

    def readings(self, p: Mapping[str, Any]) -> str:
        u = p.get("expanded_u")
        head = [self.L["rep"], self.L["start"], self.L["end"], self.with_unit("r_ref"),
                self.with_unit("r_ind"), self.with_unit("r_err"), self.L["r_valid"]]
        # Single readings are shown one digit finer than the means (they carry more scatter
        # than U, and rounding them to U's place would hide it).
        d = decimals_of_u(u)
        place = None if d is None else d + 1
        rows = [[_e(r.get("repetition")), self.time(r.get("start")), self.time(r.get("end")),
                 escape(fixed(r.get("reference"), place) if place is not None
                        else significant(r.get("reference"), 6)),
                 escape(fixed(r.get("indicated"), place) if place is not None
                        else significant(r.get("indicated"), 6)),
                 escape(fixed(r.get("error"), place) if place is not None
                        else significant(r.get("error"), 6)),
                 self.t("yes" if r.get("valid") else "no")]
                for r in p.get("repetitions") or []]
        return f"<p><b>{self.t('readings')}</b></p>" + table(head, rows, (0, 3, 4, 5))

    def budgets(self) -> str:
        points = self.r.get("points") or []
        return (f"<h2>{self.t('budget_h')}</h2><p class=\"muted\">{self.t('model_note')}</p>"
                + "".join(self.budget(p) for p in points))

    def reason(self, p: Mapping[str, Any]) -> str:
        """Why a point got its statement, in symbols and figures (language-neutral)."""
        st = p.get("statement") or {}
        result, rule = st.get("result"), st.get("rule")
        u: Any = p.get("expanded_u")
        if result == "not_stated" or not (finite(p.get("mpe")) and finite(p.get("error"))):
            return self.t("not_stated_why")
        mpe, e = float(p["mpe"]), float(p["error"])

        def w(v: Any) -> str:
            return f"{with_u(v, u)} {self.u_name}"
        abs_e = f"|E| = {w(abs(e))}"
        if rule == "guarded" and finite(u):
            low, high = w(mpe - float(u)), w(mpe + float(u))
            text = {"pass": f"{abs_e} ≤ MPE − U = {low}",
                    "conditional_pass": f"MPE − U = {low} < {abs_e} ≤ MPE = {w(mpe)}",
                    "conditional_fail": f"MPE = {w(mpe)} < {abs_e} ≤ MPE + U = {high}",
                    "fail": f"{abs_e} > MPE + U = {high}"}.get(str(result), "")
        else:
            text = (f"{abs_e} ≤ MPE = {w(mpe)}" if result == "pass"
                    else f"{abs_e} > MPE = {w(mpe)}")
        return escape(text)

    def statement(self) -> str:
        st = self.r.get("statement") or {}
        rule = st.get("rule") or (self.r.get("procedure") or {}).get("decision_rule")
        rows = [[_e(p.get("label")), self.result_word((p.get("statement") or {}).get("result")),
                 self.reason(p)] for p in self.r.get("points") or []]
        return (f"<h2>{self.t('statement_h')}</h2>"
                f'<p class="result">{self.t("overall")}: {self.result_word(st.get("result"))}</p>'
                f"<p>{self.t('rule')}: {self.word(RULES, rule)}</p>"
                + table([self.L["col_point"], self.L["col_stmt"], self.L["why"]], rows))

    def issues(self) -> str:
        # The record's issues hold every point's, each named by its point; with their
        # details (codes) they print in the page's language, a plain text as written.
        texts = list(self.r.get("issues") or [])
        found_details = self.r.get("issue_details")
        details = (found_details if isinstance(found_details, list)
                   and len(found_details) == len(texts) else texts)
        found = [render_issue(d, self.lang) for d in details]
        body = ("<ul class=\"issues\">" + "".join(f"<li>{_e(i)}</li>" for i in found) + "</ul>"
                if found else f"<p>{self.t('no_issues')}</p>")
        return f"<h2>{self.t('issues')}</h2>" + body

    def signatures(self) -> str:
        rows = "".join(f"<tr><th>{self.t(who)}</th><td></td><td></td><td></td></tr>"
                       for who in ("calibrated_by", "checked_by", "approved_by"))
        people = self.r.get("people") or {}
        return (f"<h2>{self.t('signatures')}</h2>" + self.kv([
                    ("created_by", _e(people.get("created_by"))),
                    ("closed_by", _e(people.get("closed_by")))])
                + f'<table class="sign"><thead><tr><th></th><th>{self.t("sign_name")}</th>'
                f"<th>{self.t('sign_sig')}</th><th>{self.t('sign_date')}</th></tr></thead>"
                f"<tbody>{rows}</tbody></table>"
                f'<p class="muted">{self.t("software")}: {_e(self.r.get("software"))}</p>')

    def page_css(self) -> str:
        """Margin boxes: the certificate number on top, 'page X of Y' at the foot."""
        number = _css_string(certificate_number(self.r))
        page = (f"{_css_string(self.L['page'])} counter(page) {_css_string(self.L['of'])}"
                f" counter(pages) {_css_string(PAGE_END[self.lang])}")
        return (f"@page{{@top-right{{content:{number};font-size:9px;color:#666}}"
                f"@bottom-center{{content:{page};font-size:9px;color:#666}}}}")

    def html(self) -> str:
        number = escape(certificate_number(self.r))
        # The instrument beside its reference standard, the quantity beside the procedure.
        body = "".join([self.head(),
                        f'<div class="cols"><div>{self.instrument()}</div>'
                        f"<div>{self.reference()}</div></div>",
                        f'<div class="cols"><div>{self.quantity()}</div>'
                        f"<div>{self.procedure()}</div></div>",
                        self.results(), self.statement(), self.budgets(), self.issues(),
                        self.signatures()])
        html_lang = "zh-CN" if self.lang == "zh" else "en"
        return (f'<!doctype html><html lang="{html_lang}"><head><meta charset="utf-8">'
                f"{CSP_META}<title>{self.t('title')} {number}</title>"
                f"<style>{CSS}{CERT_CSS}{self.page_css()}</style></head>"
                f"<body>{body}</body></html>")


def _seconds(v: Any) -> str | None:
    """A setting as given (5, 0.5, 30): up to 6 significant digits, trailing zeros dropped."""
    if not finite(v):
        return None
    return f"{float(v):.6g}"


def render_certificate(record: Mapping[str, Any], lang: Literal["en", "zh"],
                       tz: str | None = None) -> str:
    """The certificate of `record` (the calibration record of GET /api/v1/calibrations/{id})
    as a self-contained HTML page in `lang`; times local to `tz` (IANA name, default
    Asia/Shanghai)."""
    if lang not in LABELS:
        raise ValueError(f"lang {lang!r}: the certificate is written in 'en' or 'zh'")
    return Certificate(record, lang, tz).html()
