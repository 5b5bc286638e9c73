# ruff: noqa: E501  (a table of texts: a template reads best whole)
"""The issue catalogue's texts: code -> English and Chinese template (str.format, named params).

Params are JSON-plain. A param that is an issue detail (`inner`, and the parts of a composed
issue) is written in the same language; a list is joined (LIST_SEP); the params named in
TRANSLATED are words of the code (a role, an edge, a method) looked up in VALUES.
The English texts are those the code wrote before issue codes existed.
"""

from __future__ import annotations

from dcmeter.collectors.evaluation.calibration_issue_texts import (
    CALIBRATION_TEXTS,
    CALIBRATION_WORDS,
)
from dcmeter.collectors.evaluation.reconcile_texts import RECONCILE_TEXTS

_GAP = "gap of {gap} s from {at} (longer than {limit} s)"
_GAP_ZH = "自 {at} 起有 {gap} 秒的间隙（超过 {limit} 秒）"
_A5 = "(T/CECA-G 0355 A.5)"

CATALOGUE: dict[str, dict[str, str]] = {
    "empty": {"en": "", "zh": ""},
    # where an inner issue happened
    "ctx.role": {"en": "{role}: {inner}", "zh": "{role}：{inner}"},
    "ctx.series": {"en": "{source} {metric}{labels}: {inner}", "zh": "{source} {metric}{labels}：{inner}"},
    "ctx.metric": {"en": "{metric}: {inner}", "zh": "{metric}：{inner}"},
    "ctx.port": {"en": "{port}: {inner}", "zh": "端口 {port}：{inner}"},
    "ctx.group": {"en": "group {group}: {inner}", "zh": "设备组 {group}：{inner}"},
    "ctx.run": {"en": "runs[{run}]: {inner}", "zh": "第 {run} 次运行：{inner}"},
    "ctx.gpu": {"en": "gpu (beside, not used for AEE): {inner}",
                "zh": "GPU（旁路测量，不用于 AEE）：{inner}"},
    # samples and energy (energy.py, loads.py, gauge_fold.py, roles.py)
    "nonfinite_dropped": {"en": "{count} non-finite samples dropped",
                          "zh": "舍弃 {count} 个非有限值样本"},
    "gap_integrated": {"en": _GAP + ": power interpolated across it, the energy is not measured",
                       "zh": _GAP_ZH + "：其间功率为插值，该段能耗未经测量"},
    "gap_counter_edge": {"en": _GAP + ": the counter value at the window edge is interpolated",
                         "zh": _GAP_ZH + "：窗口边界处的计数器读数为插值"},
    "gap_bridged": {"en": _GAP + ": bridged by counter", "zh": _GAP_ZH + "：由电能计数器跨越"},
    "coverage_energy": {"en": "coverage: {edge} by {short} s; energy there is not counted",
                        "zh": "覆盖：{edge}相差 {short} 秒；该段能耗未计入"},
    "coverage_energy_far": {
        "en": "coverage: {edge} by {short} s; energy there is not counted"
              " (more than {n:g} median intervals)",
        "zh": "覆盖：{edge}相差 {short} 秒；该段能耗未计入（超过 {n:g} 个中位采样间隔）"},
    "unknown_unit": {"en": "unknown unit {unit!r} for {method}; known: {known}",
                     "zh": "{method}的单位 {unit!r} 未知；已知单位：{known}"},
    "empty_window": {"en": "empty window: end {end} is not after start {start}",
                     "zh": "空窗口：结束时间 {end} 不晚于开始时间 {start}"},
    "few_samples": {"en": "fewer than 2 samples around the window", "zh": "窗口前后样本少于 2 个"},
    "counter_reset_energy": {
        "en": "counter reset at {at}: {before} -> {after} {unit};"
              " counted {after} {unit} for the step, the energy is uncertain",
        "zh": "计数器在 {at} 复位：{before} → {after} {unit}；该步按 {after} {unit} 计，能耗不确定"},
    "coverage_load": {"en": "coverage: {what} {edge} by {short} s",
                      "zh": "覆盖：{what}{edge}相差 {short} 秒"},
    "coverage_load_far": {"en": "coverage: {what} {edge} by {short} s (more than {n:g} median intervals)",
                          "zh": "覆盖：{what}{edge}相差 {short} 秒（超过 {n:g} 个中位采样间隔）"},
    "unknown_unit_util": {"en": "unknown unit {unit!r} for a utilisation; known: {known}",
                          "zh": "利用率的单位 {unit!r} 未知；已知单位：{known}"},
    "clipped": {"en": "{count} values outside 0..100 % clipped (e.g. {example:g})",
                "zh": "{count} 个超出 0..100 % 的值被截断（例如 {example:g}）"},
    "no_interval": {"en": "no sample interval inside the window", "zh": "窗口内没有采样区间"},
    "counter_reset_load": {
        "en": "counter reset at {at}: {before:g} -> {after:g} {unit}; counted {after:g} for the step",
        "zh": "计数器在 {at} 复位：{before:g} → {after:g} {unit}；该步按 {after:g} 计"},
    "gap_edge_load": {"en": "gap of {gap} s from {at} holds a window edge:"
                            " the counter value there is interpolated",
                      "zh": "自 {at} 起 {gap} 秒的间隙包含窗口边界：该处计数器读数为插值"},
    "line_rate_changed": {"en": "line rate changed in the window ({low:g} to {high:g} bit/s);"
                                " the mean of the samples is used",
                          "zh": "窗口内线路速率变化（{low:g} 至 {high:g} bit/s）；采用样本均值"},
    "integrated_used": {"en": "integrated power used for {source}: no energy counter ({metric})",
                        "zh": "{source} 采用功率积分：无电能计数器（{metric}）"},
    "integrated_used_around": {
        "en": "integrated power used for {source}: no energy counter ({metric})"
              " samples around the window",
        "zh": "{source} 采用功率积分：窗口前后无电能计数器（{metric}）样本"},
    "no_energy_series": {"en": "{source}: no {counter} or {power} samples around the window",
                         "zh": "{source}：窗口前后无 {counter} 或 {power} 样本"},
    # infrastructure (infrastructure.py, quality.py)
    "window_not_after": {"en": "window end {end} is not after its start {start}",
                         "zh": "窗口结束时间 {end} 不晚于开始时间 {start}"},
    "point_mismatch": {"en": "{role}: sources labelled point {points}, expected {expected}",
                       "zh": "{role}：数据源标注的测量点为 {points}，应为 {expected}"},
    "green_exceeds": {"en": "green: green energy exceeds total energy; non-green energy set to 0",
                      "zh": "绿电：绿电能耗超过总能耗；非绿电能耗取 0"},
    "it_not_positive": {"en": "it: IT energy is not positive; PUE and CUE cannot be computed",
                        "zh": "IT：IT 设备能耗不为正；无法计算 PUE 和 CUE"},
    "no_total": {"en": "total: no total energy (E_total) measured; PUE and CE cannot be computed",
                 "zh": "总能耗：未测得总能耗（E_total）；无法计算 PUE 和碳排放"},
    "no_it": {"en": "it: no IT energy (E_IT) measured; PUE and CUE cannot be computed",
              "zh": "IT：未测得 IT 设备能耗（E_IT）；无法计算 PUE 和 CUE"},
    "pue_below_1": {"en": "PUE below 1: IT energy exceeds total energy; check the sources' roles",
                    "zh": "PUE 小于 1：IT 设备能耗超过总能耗；请检查数据源的角色"},
    "window_short": {"en": "window of {hours:g} h is shorter than the {minimum:g} h minimum for"
                           " {kind} " + _A5[:-1] + "; {recommended:g} h recommended)",
                     "zh": "{kind}窗口 {hours:g} h 短于最短 {minimum:g} h（T/CECA-G 0355 A.5；"
                           "建议 {recommended:g} h）"},
    "window_short_note": {"en": "note: window of {hours:g} h meets the {minimum:g} h minimum but"
                                " not the {recommended:g} h recommended for {kind} " + _A5,
                          "zh": "注：{kind}窗口 {hours:g} h 满足最短 {minimum:g} h，但未达到建议的"
                                " {recommended:g} h（T/CECA-G 0355 A.5）"},
    "series_gap": {"en": "{series}: longest gap {gap} s exceeds the {limit} s sampling interval"
                         " limit " + _A5,
                   "zh": "{series}：最长间隙 {gap} 秒超过 {limit} 秒的采样间隔限值（T/CECA-G 0355 A.5）"},
    "series_resets": {"en": "{series}: {resets} counter reset(s) in the window",
                      "zh": "{series}：窗口内计数器复位 {resets} 次"},
    "interval_rule": {"en": "sampling interval rule broken (at most {limit} s, A.5):"
                            " see the per-series issues",
                      "zh": "违反采样间隔规则（至多 {limit} 秒，A.5）：见各序列的问题"},
    "implausible": {
        "en": "{source} {metric}{labels}: {count} implausible sample(s) left out ({rule}), first at"
              " {at}: {value:g} {unit}; {what} {checked:g} {checked_unit} against {limit:g}",
        "zh": "{source} {metric}{labels}：剔除 {count} 个不合理样本（{rule}），首个在 {at}："
              "{value:g} {unit}；{what} {checked:g} {checked_unit}，限值 {limit:g}"},
    "implausible_span": {
        "en": "{source} {metric}{labels}: {count} implausible sample(s) left out ({rule}), first at"
              " {at}: {value:g} {unit}; {what} {checked:g} {checked_unit} in {span:g} s"
              " against {limit:g}",
        "zh": "{source} {metric}{labels}：剔除 {count} 个不合理样本（{rule}），首个在 {at}："
              "{value:g} {unit}；{span:g} 秒内{what} {checked:g} {checked_unit}，限值 {limit:g}"},
    "nonfinite_figures": {"en": "non-finite figures replaced by null: {paths}",
                          "zh": "非有限值的结果已置空：{paths}"},
    "nonfinite_figures_more": {"en": "non-finite figures replaced by null: {paths} and {more} more",
                               "zh": "非有限值的结果已置空：{paths} 等另 {more} 项"},
    # general (general.py)
    "no_group_series": {"en": "{source}: no {metric} series", "zh": "{source}：无 {metric} 序列"},
    "load_count_note": {"en": "note: {n} load series measured but count N = {count}",
                        "zh": "注：测得 {n} 条负载序列，但设备数 N = {count}"},
    "rate_configured": {"en": "line rate unknown from the device; configured {rate:g} bit/s used",
                        "zh": "设备未报告线路速率；采用配置的 {rate:g} bit/s"},
    "wrap_ambiguous": {"en": "{metric}: a counter of modulus {modulus:g} can wrap more than once in"
                             " {step:g} s at {rate:g} bit/s; traffic may be undercounted",
                       "zh": "{metric}：模为 {modulus:g} 的计数器在 {rate:g} bit/s 下 {step:g} 秒内"
                             "可能回绕多次；流量可能少计"},
    "no_octets": {"en": "no {metric} series: port left out", "zh": "无 {metric} 序列：该端口不计"},
    "rate_unknown": {"en": "line rate unknown (the device reports none): port left out of"
                           " U_network; set unknown_line_rate_bps for it in this group or"
                           " speed_override_bps in the agent",
                     "zh": "线路速率未知（设备未报告）：该端口不计入网络负载率；请在该设备组配置"
                           "未知线路速率，或在采集代理中配置速率"},
    "no_rated_port": {"en": "no port with a known line rate: U_network not computed",
                      "zh": "没有已知线路速率的端口：未计算网络负载率"},
    "group_no_load": {"en": "group {group}: no load measured; its term is left out of C",
                      "zh": "设备组 {group}：未测得负载；其项不计入算力 C"},
    "no_group_network": {"en": "note: no network group configured; optional (A.4)",
                         "zh": "注：未配置网络设备组；可选（A.4）"},
    "no_group_kind": {"en": "note: no {kind} group configured; its β term is left out",
                      "zh": "注：未配置{kind}设备组；其 β 项不计"},
    "c_zero": {"en": "computing power C is 0: CEE is 0 and CCUE cannot be computed",
               "zh": "算力 C 为 0：CEE 为 0，无法计算 CCUE"},
    "load_above_1": {"en": "load of {kind} {load:g} is above 1 (100 %): not physically possible",
                     "zh": "{kind}负载率 {load:g} 大于 1（100 %）：物理上不可能"},
    "no_general_section": {
        "en": "site file has no [general] section: groups, ratings and load sources are needed",
        "zh": "站点文件缺少通用计算节：需要设备组、额定值和负载数据源"},
    # ai (ai.py, ai_coverage.py, ai_runs.py, ai_tasks.py)
    "no_ai_section": {
        "en": "the site file has no [ai] section: name the servers under test (ai.servers,"
              " GB 40879 point 8 sources) to evaluate AI runs",
        "zh": "站点文件缺少 AI 节：请列出被测服务器（GB 40879 测量点 8 的数据源）以评估 AI 运行"},
    "ace_no_green_share": {
        "en": "ACE not computed: the window's green share needs E_total and E_green",
        "zh": "未计算 ACE：窗口的绿电占比需要总能耗和绿电能耗"},
    "servers_not_positive": {"en": "the servers' energy over the run is not positive",
                             "zh": "运行期间服务器能耗不为正"},
    "servers_point": {"en": "servers under test labelled point {points}, not it_input",
                      "zh": "被测服务器标注的测量点为 {points}，而非 IT 输入"},
    "run_outside": {"en": "run outside the window [{start}, {end}]: its energy is not measured here",
                    "zh": "运行不在窗口 [{start}, {end}] 内：此处不测量其能耗"},
    "run_failed": {"en": "failed run: exit status {status}", "zh": "运行失败：退出状态 {status}"},
    "repetition_twice": {"en": "repetition {rep} of {phase} {model} given twice (also"
                               " runs[{first}]); only the first counts",
                         "zh": "{model} {phase}的第 {rep} 次重复提交了两次（另见第 {first} 次运行）；"
                               "只计第一次"},
    "runs_overlap": {"en": "overlaps runs{others}: the servers' energy cannot be split between them",
                     "zh": "与运行 {others} 时间重叠：服务器能耗无法在其间分摊"},
    "edge_far": {
        "en": "energy not measured: {source} {metric} ({what}): the nearest readings are {d0} s"
              " from the run's start and {d1} s from its end, more than {limit} s ({share:.0%} of"
              " the {duration} s run, 6.3.3.2): its energy would be interpolated between readings"
              " that do not bound the run; read it at least every {every} s",
        "zh": "能耗未测量：{source} {metric}（{what}）：最近的读数距运行开始 {d0} 秒、距结束 {d1}"
              " 秒，超过 {limit} 秒（{duration} 秒运行的 {share:.0%}，6.3.3.2）；请至少每 {every}"
              " 秒读取一次"},
    "density_low": {
        "en": "energy not measured: sampling density {density:.1%} below {minimum:.0%} (6.3.3.2):"
              " poll the servers' power more often during runs, or read an energy counter at the"
              " run's start and end",
        "zh": "能耗未测量：采样密度 {density:.1%} 低于 {minimum:.0%}（6.3.3.2）：请在运行期间"
              "更频繁地读取服务器功率，或在运行开始和结束时读取电能计数器"},
    "unknown_precision": {"en": "unknown precision {precision!r}: known {known}"
                                " (add it under [ai.precision_factors])",
                          "zh": "未知精度 {precision!r}：已知 {known}（请在精度系数表中添加）"},
    "no_flops_samples": {"en": "no flops and no samples: give the run's flops, or its samples for"
                               " the catalogue (tokens alone serve only {models})",
                         "zh": "既无运算量也无样本数：请给出运行的运算量，或样本数（仅凭词元数只适用于"
                               " {models}）"},
    "unknown_model": {"en": "no FLOPs figure for model {model!r}: the catalogue holds {models};"
                            " for another model give the run's FLOPs directly",
                      "zh": "模型 {model!r} 没有运算量数据：目录中有 {models}；其他模型请直接给出运行的运算量"},
    "no_work": {"en": "no work: {what} = 0; a run that did no work is not a repetition"
                      " (6.3.2, 6.3.3.3 step 5)",
                "zh": "无有效工作：{what} = 0；未做工作的运行不算一次重复（6.3.2，6.3.3.3 第 5 步）"},
    "quality_not_reported": {"en": "quality not reported: the run cannot show it reached its"
                                   " target ({names})",
                             "zh": "未报告质量指标：无法证明运行达到目标（{names}）"},
    "quality_one_number": {"en": "quality is one number but {phase} {model} has {n} targets:"
                                 " give an object with {names}",
                           "zh": "质量指标只有一个数，但 {model} {phase}有 {n} 个目标：请按 {names} 分别给出"},
    "quality_figure_missing": {"en": "quality figure {metric} not reported",
                               "zh": "未报告质量指标 {metric}"},
    "quality_not_fraction": {"en": "quality {metric} = {value:g} is not a fraction 0..1"
                                   " (write 75.9 % as 0.759)",
                             "zh": "质量指标 {metric} = {value:g} 不是 0..1 的小数（75.9 % 应写作 0.759）"},
    "quality_missed": {"en": "missed quality target: {metric} {value:g} {sign} {target:g}",
                       "zh": "未达到质量目标：{metric} {value:g} {sign} {target:g}"},
    "too_few_reps": {"en": "{phase} {model}: {good} valid repetition(s), fewer than {minimum}"
                           " (6.3.3.3 step 5); {bad} run(s) not valid",
                     "zh": "{model} {phase}：有效重复 {good} 次，少于 {minimum} 次（6.3.3.3 第 5 步）；"
                           "{bad} 次运行无效"},
    "task_not_weighted": {"en": "{phase} {model}: runs not weighted (not in"
                                " [ai.task_weights.{phase}])",
                          "zh": "{model} {phase}：运行未加权（不在 [ai.task_weights.{phase}] 中）"},
    "aee_phase_missing": {"en": "AEE_{phase} not computed: no valid run of {models}",
                          "zh": "未计算{phase}的 AEE：{models} 没有有效运行"},
    "phase_weight_zero": {"en": "{phase} runs not counted: phase weight 0",
                          "zh": "{phase}运行不计入：阶段权重为 0"},
    "no_runs": {"en": "no runs: AEE needs at least one run (POST .../runs or --runs)",
                "zh": "没有运行：AEE 至少需要一次运行"},
    # the store's side (results/windows.py)
    "seqs": {"en": "{seqs}", "zh": "{seqs}"},
    "seqs_more": {"en": "{seqs} and {more} more", "zh": "{seqs} 等另 {more} 个"},
    "chain_broken": {"en": "agent {agent}: hash chain broken at batch(es) {seqs}: the previous"
                           " batch's hash does not match; check for replaced or altered batches",
                     "zh": "采集代理 {agent}：哈希链在批次 {seqs} 处断开：与上一批次的哈希不符；"
                           "请检查批次是否被替换或篡改"},
    "batches_missing": {"en": "agent {agent}: batch(es) before {seqs} never arrived;"
                              " their samples are missing",
                        "zh": "采集代理 {agent}：批次 {seqs} 之前的批次未到达；其样本缺失"},
    "batches_late": {"en": "agent {agent}: batch(es) before {seqs} arrived late; that link of the"
                           " chain was not verified",
                     "zh": "采集代理 {agent}：批次 {seqs} 之前的批次迟到；该处链接未经验证"},
    "dropped_before": {"en": " before {seqs}", "zh": "（批次 {seqs} 之前）"},
    "dropped_span": {"en": "batches {first}-{last}: {samples} samples read {start} to {end}",
                     "zh": "批次 {first}-{last}：{start} 至 {end} 读取的 {samples} 个样本"},
    "dropped_spans": {"en": " ({spans})", "zh": "（{spans}）"},
    "batches_dropped": {"en": "agent {agent}: the agent dropped batches{before} (buffer full):"
                              " {samples} samples missing{spans}",
                        "zh": "采集代理 {agent}：缓冲区已满，丢弃了批次{before}：缺失 {samples} 个样本{spans}"},
    "clock_step": {"en": "{step:+g} s at batch {seq}", "zh": "批次 {seq} 处 {step:+g} 秒"},
    "clock_stepped": {"en": "agent {agent}: wall clock stepped ({steps}); each series kept moving"
                            " forward in time, but sample times around the step are off by up to"
                            " its size",
                      "zh": "采集代理 {agent}：系统时钟跳变（{steps}）；各序列时间仍单调向前，但跳变前后的"
                            "样本时间最多偏差跳变的大小"},
    "clock_unsynced": {"en": "agent {agent}: clock not synchronised (NTP) in {unsynced} of {n}"
                             " batches; sample times may be off",
                       "zh": "采集代理 {agent}：{n} 个批次中有 {unsynced} 个时钟未同步（NTP）；样本时间可能有偏差"},
    "clock_error": {"en": "agent {agent}: clock error bound {error:g} s exceeds the {limit:g} s"
                          " sampling interval limit",
                    "zh": "采集代理 {agent}：时钟误差上限 {error:g} 秒超过 {limit:g} 秒的采样间隔限值"},
    "owner_changed": {"en": "source {source}: owned by {agents} in this window; each agent's"
                            " samples count only for the span it owned the source",
                      "zh": "数据源 {source}：本窗口内先后归属于 {agents}；各采集代理的样本只在其拥有该"
                            "数据源的时段内计入"},
    "change": {"en": "{key} {before} -> {after}", "zh": "{key} {before} → {after}"},
    "reconfigured": {"en": "source {source} (agent {agent}) reconfigured at {at}: {changes}",
                     "zh": "数据源 {source}（采集代理 {agent}）于 {at} 重新配置：{changes}"},
    "window_open": {"en": "window still open: result as of {at}",
                    "zh": "窗口仍未关闭：结果截至 {at}"},
    # the clause 4 verdict's basis (verdict.py)
    "v.not_valid": {"en": "indicative: the result is not valid (see data quality); the category is what its figures would give, not a verdict",
                    "zh": "仅供参考：结果无效；所示类别为按其数值应得的类别，并非结论"},
    "v.not_conforming": {"en": "indicative: the result does not conform to the standard's fixed rules (declared deviations: {rules})",
                         "zh": "仅供参考：结果不符合标准的固定规则（声明的偏离：{rules}）"},
    "v.not_conforming_unnamed": {"en": "indicative: the result does not conform to the standard's fixed rules (declared deviations: see deviations)",
                                 "zh": "仅供参考：结果不符合标准的固定规则（声明的偏离见偏离表）"},
    "v.pue_ungraded": {"en": "PUE {pue} is GB 40879-2021 not graded, neither level 1 (<= {l1}) nor level 2 (<= {l2}): no front-runner level (4.1)",
                       "zh": "PUE {pue} 未达 GB 40879-2021 任何等级，既非 1 级（≤ {l1}）也非 2 级（≤ {l2}）：无领跑等级（4.1）"},
    "v.pue_none": {"en": "PUE {pue} is GB 40879-2021 level {level}, neither level 1 (<= {l1}) nor level 2 (<= {l2}): no front-runner level (4.1)",
                   "zh": "PUE {pue} 为 GB 40879-2021 {level} 级，既非 1 级（≤ {l1}）也非 2 级（≤ {l2}）：无领跑等级（4.1）"},
    "v.pue_level": {"en": "PUE {pue} is GB 40879-2021 level {level} (PUE <= {bound}): {candidate} if clause 5 is met (4.1)",
                    "zh": "PUE {pue} 为 GB 40879-2021 {level} 级（PUE ≤ {bound}）：满足第 5 章时为{candidate}（4.1）"},
    "v.c5_met": {"en": "clause 5 met: every shall item of the register is met with checked evidence",
                 "zh": "满足第 5 章：登记表中每项“应”条款均已满足且证据经核查"},
    "v.c5_not_met": {"en": "clause 5 not met: {reasons}", "zh": "不满足第 5 章：{reasons}"},
    "v.c5_unproven": {"en": "clause 5 unproven (no verdict without evidence): {reasons}",
                      "zh": "第 5 章未经证实（无证据不作结论）：{reasons}"},
    "v.should": {"en": "should items ({clauses}), not blocking: {status}",
                 "zh": "“宜”条款（{clauses}），不影响结论：{status}"},
    "v.pue_blocked": {"en": "none: PUE level {level} alone would be {candidate}, but clause 5 is {status}",
                      "zh": "无：仅按 PUE {level} 级应为{candidate}，但第 5 章{status}"},
    "v.cee_missing": {"en": "CEE not computed: no Table 1 level (4.2)", "zh": "未计算 CEE：无表 1 等级（4.2）"},
    "v.cee_below": {"en": "CEE {value} standard points/Wh is below Table 1 energy-saving (>= {bound}): none (4.2)",
                    "zh": "CEE {value} 标准分/Wh 低于表 1 节能级（≥ {bound}）：无（4.2）"},
    "v.cee_level": {"en": "CEE {value} standard points/Wh >= {bound}: Table 1 {candidate} (4.2)",
                    "zh": "CEE {value} 标准分/Wh ≥ {bound}：表 1 {candidate}（4.2）"},
    "v.aee_missing": {"en": "AEE not computed: no Table 2 level (4.3)", "zh": "未计算 AEE：无表 2 等级（4.3）"},
    "v.aee_level": {"en": "AEE {value} GFLOPs/Wh >= {bound}: Table 2 advanced (4.3)",
                    "zh": "AEE {value} GFLOPs/Wh ≥ {bound}：表 2 先进级（4.3）"},
    "v.aee_below": {"en": "AEE {value} GFLOPs/Wh is below Table 2 advanced (>= {bound}), the table's only level: none (4.3)",
                    "zh": "AEE {value} GFLOPs/Wh 低于表 2 先进级（≥ {bound}，该表唯一等级）：无（4.3）"},
    "v.aee_other_threshold": {"en": "{inner}; the threshold used differs from Table 2's {table:g}",
                              "zh": "{inner}；所用阈值不同于表 2 的 {table:g}"},
    # the instrument list (instruments.py, site_instruments.py)
    "instrument_overdue": {
        "en": "instrument {source} (agent {agent}): calibration was due {due}, before the"
              " window's end ({end}); recalibrate it or give its current certificate under"
              " [[instruments]]",
        "zh": "计量器具 {source}（代理 {agent}）：校准已于 {due} 到期，早于窗口结束日（{end}）；"
              "请重新校准，或在 [[instruments]] 中给出其现行有效的校准证书"},
    # the clause 5 register (clause5.py): an item's reason, and the shall part's reasons
    "c5.asks": {"en": "clause {clause} asks {standard} grade {grade}",
                "zh": "第 {clause} 条要求 {standard} 能效 {grade} 级"},
    "c5.asks_or_better": {"en": "clause {clause} asks {standard} grade {grade} or better",
                          "zh": "第 {clause} 条要求 {standard} 能效 {grade} 级及以上"},
    "c5.no_grade": {"en": "no declared grade; {asked}", "zh": "未申报能效等级；{asked}"},
    "c5.declared": {"en": "declared grade {declared}; {asked}",
                    "zh": "申报能效 {declared} 级；{asked}"},
    "c5.met": {"en": "declared grade {declared}, checked; {asked}",
               "zh": "申报能效 {declared} 级，已核查；{asked}"},
    "c5.no_label": {
        "en": "no evidence: clause {clause} is verified by the China Energy Label filing;"
              " give the China Energy Label filing number",
        "zh": "无证明：第 {clause} 条的验证方式为查验中国能效标识官网的备案信息；请给出能效标识备案号"},
    "c5.no_certificate": {
        "en": "no evidence: clause {clause} is verified by the site's proof or a third-party"
              " certificate; give the certificate or proof document or the China Energy Label"
              " filing number",
        "zh": "无证明：第 {clause} 条的验证方式为查验数据中心提供的相关证明材料或第三方认证证书；"
              "请给出证书或证明材料，或能效标识备案号"},
    "c5.unchecked_by": {"en": "evidence not recorded as checked: give who checked it",
                        "zh": "证明未记录核查：请给出核查人"},
    "c5.unchecked_on": {"en": "evidence not recorded as checked: give the date it was checked",
                        "zh": "证明未记录核查：请给出核查日期"},
    "c5.unchecked": {"en": "evidence not recorded as checked: give who checked it and when",
                     "zh": "证明未记录核查：请给出核查人和核查日期"},
    "c5.item": {"en": "{clause} {standard} {model}: {status}: {reason}",
                "zh": "{clause} {standard} {model}：{status}：{reason}"},
    "c5.nothing_declared": {"en": "{clause}: nothing declared in [[equipment]] ({standards})",
                            "zh": "{clause}：[[equipment]] 中未登记设备（{standards}）"},
}
CATALOGUE.update(RECONCILE_TEXTS)  # the meter cross-check's texts (reconcile.py)

# Params whose value is a word of the code, translated by VALUES.
TRANSLATED = frozenset({"role", "edge", "what", "method", "kind", "phase", "expected", "points", "rule",
                        "candidate", "status", "side", "sides"})

VALUES: dict[str, dict[str, str]] = {
    "zh": {
        "total": "总能耗", "it": "IT", "green": "绿电",
        "first sample after window start": "首个样本晚于窗口开始",
        "last sample before window end": "末个样本早于窗口结束",
        "after window start": "晚于窗口开始", "before window end": "早于窗口结束",
        "first/last sample interval": "首/末采样区间",
        "counter": "电能计数器", "integrated_power": "功率积分", "power": "功率",
        "compute": "计算", "storage": "存储", "network": "网络",
        "train": "训练", "infer": "推理",
        "general": "通用计算", "infrastructure": "基础设施", "ai": "AI",
        "it_pdu": "IT 配电（PDU）输出", "it_input": "IT 设备输入",
        "samples": "样本数", "tokens": "词元数", "flops": "运算量",
        "FP16-equivalent flops": "FP16 等效运算量",
        "load": "负载", "CPU load": "CPU 负载",
        "counter_negative": "计数器值为负", "counter_above_modulus": "计数器值超过其模",
        "counter_increase": "计数器增量过大", "power_below_range": "功率低于量程",
        "power_above_range": "功率高于量程", "percent_out_of_range": "百分比超出 0..100 %",
        "octets_above_line_rate": "流量超过线路速率",
        "line_rate_out_of_range": "线路速率超出范围",
        "counter value": "计数器值", "counter value above its modulus:": "计数器值超过其模：",
        "increase": "增量", "value outside 0..100 %:": "超出 0..100 % 的值：",
        "traffic": "流量", "line rate": "线路速率",
        "advanced": "先进级", "energy-saving": "节能级", "energy_saving": "节能级",
        "none": "无", "met": "已满足", "not met": "不满足", "unproven": "未经证实",
    },
}

# How a list param is joined, by language and param name (else ", " or "、").
LIST_SEP: dict[str, dict[str, str]] = {
    "en": {"spans": "; ", "agents": " then ", "sides": " or "},
    "zh": {"spans": "；", "agents": "、然后 ", "sides": "或"},
}

CATALOGUE.update(CALIBRATION_TEXTS)
VALUES["zh"].update(CALIBRATION_WORDS)
