"""The calibration certificate's words in English and Chinese (no I/O).

Every label, statement word, budget component, distribution and kind the certificate shows;
collectors/reporting/certificate.py lays them out. Keys missing from a table show the
record's own text (a component or kind added later prints, untranslated, rather than fail).
"""

from __future__ import annotations

LABELS: dict[str, dict[str, str]] = {
    "en": {
        "title": "Calibration certificate", "number": "Certificate number",
        "provisional": "PROVISIONAL — calibration not closed",
        "provisional_note": "The calibration is still open: its figures may change until it"
                            " is closed. This page is not a certificate.",
        "laboratory": "Calibration laboratory", "customer": "Customer",
        "issued": "Date of issue", "cal_from": "Calibration from", "cal_to": "Calibration to",
        "created": "Record created", "closed": "Record closed", "created_by": "Created by",
        "closed_by": "Closed by", "times_in": "Times are local",
        "instrument": "Instrument under calibration", "inst_kind": "Kind",
        "description": "Description", "source": "Source", "metric": "Metric",
        "labels": "Labels", "agent": "Agent", "point": "Measurement point",
        "window": "AI window", "make": "Make", "model": "Model", "serial": "Serial number",
        "firmware": "Firmware", "resolution": "Resolution",
        "reference": "Reference standard", "ref_kind": "Kind", "name": "Name",
        "certificate": "Calibration certificate", "calibrated": "Calibrated",
        "due": "Calibration due", "mpe": "Maximum permissible error (MPE)",
        "quantity_h": "Quantity and requirement", "quantity": "Quantity", "unit": "Unit",
        "range": "Range", "mpe_result": "MPE of the result", "basis": "Basis",
        "basis_text": "seed 004 proposal: calibration specification for AI computing-power"
                      " platforms, §4 (calibration quantities)",
        "procedure": "Procedure", "points": "Load points", "dwell": "Dwell per reading (s)",
        "settle": "Settling before each reading (s)", "repetitions": "Repetitions per point",
        "sync": "Bound of the time-base offset (s)", "driver": "How the load is set",
        "rule": "Decision rule", "k": "Coverage factor k",
        "environment": "Environment", "note": "Note",
        "results": "Results", "col_point": "Point", "col_ref": "Reference mean R̄",
        "col_ind": "Indicated mean X̄", "col_err": "Error E = X̄ − R̄",
        "col_rel_err": "Relative error E/R̄", "col_s": "Repeatability s",
        "col_u": "U (k = {k})", "col_rel_u": "Relative U", "col_mpe": "MPE",
        "col_stmt": "Statement",
        "rounding": "U is stated to two significant digits and the means, the error and the"
                    " MPE to the same decimal place as U (GUM 7.2.6).",
        "budget_h": "Uncertainty budget", "budget_of": "Point {label}",
        "model_note": "Model: E = X − R, every sensitivity coefficient 1 (GUM 5.1); u_c"
                      " combines the components in quadrature, ν_eff by Welch–Satterthwaite"
                      " (GUM G.4), U = k · u_c.",
        "b_component": "Component", "b_type": "Type", "b_dist": "Distribution",
        "b_half": "Half-width a or value", "b_div": "Divisor", "b_u": "u",
        "b_dof": "Degrees of freedom", "type_A": "A", "type_B": "B",
        "u_c": "Combined standard uncertainty u_c", "nu_eff": "Effective degrees of"
        " freedom ν_eff", "k_val": "Coverage factor k", "U_val": "Expanded uncertainty U",
        "readings": "Readings", "rep": "Repetition", "start": "Start", "end": "End",
        "r_ref": "Reference", "r_ind": "Indicated", "r_err": "Error", "r_valid": "Valid",
        "yes": "yes", "no": "no",
        "statement_h": "Statement of conformity", "overall": "Overall statement",
        "per_point": "Per point", "why": "Reason",
        "not_stated_why": "no valid repetition, or a relative MPE at a reference of zero",
        "issues": "Issues", "no_issues": "No issues.",
        "signatures": "Signatures", "calibrated_by": "Calibrated by",
        "checked_by": "Checked by", "approved_by": "Approved by", "sign_name": "Name",
        "sign_sig": "Signature", "sign_date": "Date", "software": "Software",
        "page": "Page ", "of": " of ", "none": "—",
        "mpe_rel": "±{p} % of reading", "mpe_abs": "±{a} {unit}",
        "mpe_both": "±({p} % of reading + {a} {unit})", "mpe_pp": "±{a} percentage point(s)",
        "range_text": "{lo} to {hi} {unit}",
    },
    "zh": {
        "title": "校准证书", "number": "证书编号",
        "provisional": "临时 — 校准尚未结束",
        "provisional_note": "本次校准尚未结束，结束前各数值仍可能变化。本页不是校准证书。",
        "laboratory": "校准实验室", "customer": "委托方",
        "issued": "签发日期", "cal_from": "校准开始", "cal_to": "校准结束",
        "created": "记录创建", "closed": "记录结束", "created_by": "创建人",
        "closed_by": "结束人", "times_in": "时间均为当地时间",
        "instrument": "被校仪器", "inst_kind": "类型",
        "description": "说明", "source": "数据源", "metric": "测量项",
        "labels": "标签", "agent": "采集代理", "point": "计量点",
        "window": "AI 测量窗口", "make": "制造商", "model": "型号", "serial": "出厂编号",
        "firmware": "固件版本", "resolution": "分辨力",
        "reference": "参考标准", "ref_kind": "类型", "name": "名称",
        "certificate": "校准证书编号", "calibrated": "校准日期",
        "due": "校准有效期至", "mpe": "最大允许误差",
        "quantity_h": "被测量与要求", "quantity": "被测量", "unit": "单位",
        "range": "测量范围", "mpe_result": "结果的最大允许误差", "basis": "依据",
        "basis_text": "种子提案 004：人工智能算力平台校准规范，第 4 章（校准参数）",
        "procedure": "校准方法", "points": "校准点", "dwell": "每次读数的测量时长（秒）",
        "settle": "读数前的稳定时间（秒）", "repetitions": "每点重复次数",
        "sync": "时间基准偏差界限（秒）", "driver": "负载设定方式",
        "rule": "判定规则", "k": "包含因子 k",
        "environment": "环境条件", "note": "备注",
        "results": "校准结果", "col_point": "校准点", "col_ref": "参考值平均 R̄",
        "col_ind": "示值平均 X̄", "col_err": "示值误差 E = X̄ − R̄",
        "col_rel_err": "相对误差 E/R̄", "col_s": "重复性 s",
        "col_u": "U（k = {k}）", "col_rel_u": "相对 U", "col_mpe": "最大允许误差",
        "col_stmt": "判定",
        "rounding": "U 保留两位有效数字，平均值、误差和最大允许误差修约到与 U 相同的数位"
                    "（GUM 7.2.6）。",
        "budget_h": "不确定度分量一览表", "budget_of": "校准点 {label}",
        "model_note": "测量模型：E = X − R，各灵敏系数均为 1（GUM 5.1）；合成标准不确定度 u_c"
                      " 为各分量的方和根，有效自由度 ν_eff 按韦尔奇–萨特思韦特公式计算"
                      "（GUM G.4），U = k · u_c。",
        "b_component": "不确定度来源", "b_type": "评定类别", "b_dist": "分布",
        "b_half": "半宽 a 或数值", "b_div": "除数", "b_u": "标准不确定度 u",
        "b_dof": "自由度", "type_A": "A 类", "type_B": "B 类",
        "u_c": "合成标准不确定度 u_c", "nu_eff": "有效自由度 ν_eff",
        "k_val": "包含因子 k", "U_val": "扩展不确定度 U",
        "readings": "读数", "rep": "次序", "start": "开始", "end": "结束",
        "r_ref": "参考值", "r_ind": "示值", "r_err": "误差", "r_valid": "有效",
        "yes": "是", "no": "否",
        "statement_h": "符合性声明", "overall": "总体判定",
        "per_point": "各校准点", "why": "理由",
        "not_stated_why": "无有效读数，或参考值为零时无法计算相对最大允许误差",
        "issues": "问题", "no_issues": "无问题。",
        "signatures": "签字", "calibrated_by": "校准员",
        "checked_by": "核验员", "approved_by": "批准人", "sign_name": "姓名",
        "sign_sig": "签字", "sign_date": "日期", "software": "软件版本",
        "page": "第 ", "of": " 页，共 ", "none": "—",
        "mpe_rel": "±读数的 {p} %", "mpe_abs": "±{a} {unit}",
        "mpe_both": "±（读数的 {p} % + {a} {unit}）", "mpe_pp": "±{a} 个百分点",
        "range_text": "{lo} ～ {hi} {unit}",
    },
}
# The page footer's tail after the page count ("第 1 页，共 3 页").
PAGE_END = {"en": "", "zh": " 页"}

QUANTITIES: dict[str, dict[str, str]] = {
    "en": {"power": "Power", "energy": "Energy", "network": "Network throughput",
           "storage": "Storage throughput", "inference": "Inference throughput",
           "training": "Training throughput", "compute": "Computing power",
           "effective_compute": "Effective computing power"},
    "zh": {"power": "功率", "energy": "电能", "network": "网络吞吐量",
           "storage": "存储吞吐量", "inference": "推理吞吐量", "training": "训练吞吐量",
           "compute": "算力", "effective_compute": "有效算力"},
}
# Unit names: symbols stay symbols (W, Wh, Gbit/s, FLOPS, %); words are translated.
UNITS: dict[str, dict[str, str]] = {
    "en": {},
    "zh": {"tokens/s": "词元/秒"},
}
RESULTS: dict[str, dict[str, str]] = {
    "en": {"pass": "Pass", "conditional_pass": "Conditional pass",
           "conditional_fail": "Conditional fail", "fail": "Fail", "not_stated": "Not stated"},
    "zh": {"pass": "合格", "conditional_pass": "有条件合格", "conditional_fail": "有条件不合格",
           "fail": "不合格", "not_stated": "不作判定"},
}
RULES: dict[str, dict[str, str]] = {
    "en": {"simple": "Simple acceptance (ILAC-G8:09/2019 §4.2.1, guard band w = 0): pass"
                     " when |E| ≤ MPE",
           "guarded": "Guarded acceptance, non-binary (ILAC-G8:09/2019 §4.2.3, guard band"
                      " w = U): pass when |E| ≤ MPE − U, conditional pass up to MPE,"
                      " conditional fail up to MPE + U, fail beyond"},
    "zh": {"simple": "简单接受规则（ILAC-G8:09/2019 §4.2.1，保护带 w = 0）：|E| ≤ MPE 为合格",
           "guarded": "带保护带的非二元判定规则（ILAC-G8:09/2019 §4.2.3，保护带 w = U）："
                      "|E| ≤ MPE − U 为合格，不超过 MPE 为有条件合格，不超过 MPE + U"
                      " 为有条件不合格，超过为不合格"},
}
COMPONENTS: dict[str, dict[str, str]] = {
    "en": {"repeatability": "Repeatability of the error",
           "reference_mpe": "Reference standard MPE",
           "resolution_indicated": "Resolution of the indication",
           "resolution_reference": "Resolution of the reference",
           "synchronisation": "Synchronisation of the time bases"},
    "zh": {"repeatability": "示值误差的重复性", "reference_mpe": "参考标准的最大允许误差",
           "resolution_indicated": "被校仪器示值的分辨力",
           "resolution_reference": "参考标准的分辨力",
           "synchronisation": "两时间基准的同步"},
}
DISTRIBUTIONS: dict[str, dict[str, str]] = {
    "en": {"normal": "normal", "rectangular": "rectangular", "triangular": "triangular",
           "u-shaped": "U-shaped"},
    "zh": {"normal": "正态", "rectangular": "均匀（矩形）", "triangular": "三角",
           "u-shaped": "反正弦"},
}
INSTRUMENT_KINDS: dict[str, dict[str, str]] = {
    "en": {"series": "dcmeter series", "run": "AI window runs (tokens/s)",
           "entered": "readings entered by hand"},
    "zh": {"series": "dcmeter 数据序列", "run": "AI 测量窗口的运行（词元/秒）",
           "entered": "手工录入的读数"},
}
REFERENCE_KINDS: dict[str, dict[str, str]] = {
    "en": {"series": "series of a reference source", "entered": "readings entered from its"
           " display", "iperf3": "iperf3 output", "fio": "fio output",
           "workload": "the workload framework's own figure"},
    "zh": {"series": "参考数据源的数据序列", "entered": "从其显示屏手工录入的读数",
           "iperf3": "iperf3 的输出", "fio": "fio 的输出", "workload": "负载框架自身给出的数值"},
}
DRIVERS: dict[str, dict[str, str]] = {
    "en": {"none": "set by the operator", "command": "a command per point",
           "iperf3": "iperf3 (network load)", "fio": "fio (storage load)",
           "workload": "the AI workload"},
    "zh": {"none": "由操作员设定", "command": "每点执行的命令", "iperf3": "iperf3（网络负载）",
           "fio": "fio（存储负载）", "workload": "AI 负载程序"},
}
