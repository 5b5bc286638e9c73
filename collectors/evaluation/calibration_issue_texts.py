# ruff: noqa: E501  (a table of texts: a template reads best whole)
"""The calibration issues' texts (issue 18): code -> English and Chinese template, part of the
issue catalogue (issue_texts.CATALOGUE takes them in), so a calibration record's issues carry
codes and its certificate prints them in the page's language (issues.render_issue)."""

from __future__ import annotations

_WHERE = "{side} {source} {metric}{labels}, point {point} repetition {repetition}: {inner}"
_WHERE_ZH = "{side} {source} {metric}{labels}，校准点 {point} 第 {repetition} 次重复：{inner}"

CALIBRATION_TEXTS: dict[str, dict[str, str]] = {
    "ctx.cal_point": {"en": "point {point}: {inner}", "zh": "校准点 {point}：{inner}"},
    "ctx.cal_series": {"en": _WHERE, "zh": _WHERE_ZH},
    "cal.no_statement": {"en": "no statement", "zh": "无符合性声明"},
    "cal.no_valid_repetition": {
        "en": "no valid repetition: no error, uncertainty or statement",
        "zh": "无有效重复测量：无误差、不确定度及符合性声明"},
    "cal.repetition_no_value": {
        "en": "repetition {repetition} left out: no finite {sides} value",
        "zh": "第 {repetition} 次重复已剔除：{sides}无有限值"},
    "cal.repetition_bad_dwell": {
        "en": "repetition {repetition} left out: its dwell does not end after it starts",
        "zh": "第 {repetition} 次重复已剔除：其测量时段的结束不晚于开始"},
    "cal.one_repetition": {
        "en": "one valid repetition: no type A evaluation of repeatability",
        "zh": "仅一次有效重复测量：无重复性的 A 类评定"},
    "cal.low_dof": {
        "en": "effective degrees of freedom {dof:.3g} < {limit:g}: k = {k:g} covers noticeably less than 95 % (GUM G.4.2)",
        "zh": "有效自由度 {dof:.3g} < {limit:g}：k = {k:g} 的包含概率明显低于 95 %（GUM G.4.2）"},
    "cal.mpe_zero": {
        "en": "the MPE of {quantity} at a reference mean of {mean:g} {unit} is 0 (a relative MPE at 0): no statement",
        "zh": "参考均值为 {mean:g} {unit} 时 {quantity} 的最大允许误差为 0（相对最大允许误差在零点）：不作符合性声明"},
    "cal.few_samples": {"en": "fewer than 2 samples around the dwell",
                        "zh": "测量时段前后样本少于 2 个"},
    "cal.counter_reset": {"en": "the counter reset {count} time(s) inside the dwell",
                          "zh": "计数器在测量时段内复位 {count} 次"},
    "cal.samples_short": {
        "en": "the samples stop more than 2 sampling intervals short of the dwell's edges",
        "zh": "样本距测量时段边界超过 2 个采样间隔"},
    "cal.no_sample_before": {"en": "no sample before the dwell's start",
                             "zh": "测量时段开始之前没有样本"},
    "cal.no_sample_after": {"en": "no sample after the dwell's end (yet)",
                            "zh": "测量时段结束之后（尚）没有样本"},
    "cal.no_indication": {"en": "no indication over the dwell ({inner})",
                          "zh": "测量时段内无示值（{inner}）"},
    "cal.no_indication_samples": {"en": "{samples} samples", "zh": "{samples} 个样本"},
    "cal.no_series": {"en": "no series match", "zh": "没有匹配的序列"},
    "cal.many_series": {"en": "{count} series match; give labels that pick one",
                        "zh": "{count} 个序列匹配；请给出能选定其一的标签"},
    "cal.run_missing": {"en": "point {point} repetition {repetition}: run {run} is not in window {window}",
                        "zh": "校准点 {point} 第 {repetition} 次重复：运行 {run} 不在窗口 {window} 中"},
    "cal.run_no_tokens": {"en": "point {point} repetition {repetition}: run {run} reports no tokens",
                          "zh": "校准点 {point} 第 {repetition} 次重复：运行 {run} 未报告词元数"},
}

# Words of the code in these templates' params (issue_texts.TRANSLATED, VALUES).
CALIBRATION_WORDS: dict[str, str] = {
    "instrument": "被校仪器", "reference": "参考标准", "indicated": "示值",
    "reference or indicated": "参考值或示值",
}
