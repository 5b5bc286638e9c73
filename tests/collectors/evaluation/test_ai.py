"""AI evaluation (AEE, ACE, calibration figures) on hand-built series: every rule can fail."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pytest
from pydantic import ValidationError

from dcmeter.base.configfile import ConfigError
from dcmeter.collectors.evaluation.ai import evaluate_ai
from dcmeter.collectors.evaluation.ai_calibration import counter_delta, gauge_mean, sampling_density
from dcmeter.collectors.evaluation.ai_runs import Run, check_quality, parse_runs, run_flops
from dcmeter.collectors.evaluation.evaluate import evaluate, source_ids
from dcmeter.collectors.evaluation.flops import SEQUENCE_LENGTH, forward_flops, training_flops
from dcmeter.collectors.evaluation.jsonl import rfc3339
from dcmeter.collectors.evaluation.series import Series
from dcmeter.collectors.evaluation.site import Site
from dcmeter.collectors.evaluation.site_ai import AiSection

T0 = 1_780_000_000.0  # 2026-05-28T20:26:40Z, a whole multiple of 10 s


def site(ai: dict[str, Any] | None = None, **energy: Any) -> Site:
    data: dict[str, Any] = {
        "site": {"name": "t", "grid_factor_kg_per_kwh": 0.5},
        "energy": {"total": ["bmc"], "it": ["bmc"], **energy},
    }
    if ai is not None:
        data["ai"] = {"servers": ["bmc"], **ai}
    return Site.model_validate(data)


def gauge(
    source: str, metric: str, f: Callable[[float], float], t1: float, step: float = 10.0,
    unit: str = "W", labels: dict[str, str] | None = None,
) -> Series:
    n = int(t1 / step) + 1
    ts = tuple(T0 + i * step for i in range(n))
    return Series(source, metric, unit, "gauge", ts, tuple(f(t) for t in ts),
                  labels=labels or {"point": "it_input", "kind": "compute"})


def counter(
    source: str, metric: str, rate: Callable[[float], float], t1: float, step: float = 10.0,
    unit: str = "B", modulus: float | None = None, start: float = 0.0,
    labels: dict[str, str] | None = None,
) -> Series:
    """A counter rising at rate(t) per second (constant over each step, taken at its middle)."""
    ts, vs, v = [T0], [start], start
    while ts[-1] + step <= T0 + t1 + 1e-9:
        v += rate(ts[-1] + step / 2) * step
        ts.append(ts[-1] + step)
        vs.append(v % modulus if modulus else v)
    return Series(source, metric, unit, "counter", tuple(ts), tuple(vs), modulus, labels or {})


def run(start: float, end: float, rep: int = 1, **extra: Any) -> dict[str, Any]:
    body = {"start": rfc3339(T0 + start), "end": rfc3339(T0 + end), "phase": "infer",
            "model": "resnet-50", "repetition": rep, "flops": 1.8e13, "quality": 0.77,
            "exit_status": 0}
    body.update(extra)
    return body


def step_power(runs: list[tuple[float, float, float]], idle: float = 100.0) -> Callable[[float], float]:
    """Power that is `watts` on [T0 + a, T0 + b] (edges included) for each (a, b, watts)."""
    def f(t: float) -> float:
        for a, b, w in runs:
            if T0 + a <= t <= T0 + b:
                return w
        return idle
    return f


def five(watts: float = 1200.0, **extra: Any) -> tuple[list[Series], list[dict[str, Any]]]:
    """Five 300 s runs 400 s apart at `watts`, power sampled every 10 s."""
    spans = [(100 + 400 * k, 400 + 400 * k) for k in range(5)]
    power = gauge("bmc", "power_w", step_power([(a, b, watts) for a, b in spans]), 2100)
    return [power], [run(a, b, k + 1, **extra) for k, (a, b) in enumerate(spans)]


def ev(s: Site, series: list[Series], runs: list[dict[str, Any]], end: float = 2100) -> dict[str, Any]:
    return evaluate_ai(s, series, runs, T0, T0 + end)


# --- runs ------------------------------------------------------------------------------------


def test_run_file_errors_name_the_run_and_key() -> None:
    good = run(0, 300)
    for bad, needle in [
        ({**good, "end": good["start"]}, "end"),
        ({**good, "start": "2026-01-01T00:00:00"}, r"runs\[1\]: key start"),
        ({k: v for k, v in good.items() if k != "flops"}, "at least one of samples, tokens or flops"),
        ({**good, "phase": "serve"}, "key phase"),
        ({**good, "colour": "red"}, "key colour"),
        ({**good, "repetition": 0}, "key repetition"),
    ]:
        with pytest.raises(ConfigError, match=needle):
            parse_runs([good, bad])
    with pytest.raises(ConfigError, match=r"runs\[0\]: expected a JSON object"):
        parse_runs([3])


def test_flops_given_or_from_the_catalogue_in_fp16_equivalent() -> None:
    ai = AiSection(servers=["bmc"], precision="bf16", precision_factors={"fp4": 0.25})
    given = run_flops(parse_runs([run(0, 1, flops=1e15, precision="fp32")])[0], ai)
    assert (given.fp16, given.native, given.factor, given.source) == (2e15, 1e15, 2.0, "given")
    body = run(0, 1, phase="train", model="ResNet-50", samples=1000, precision="fp4")
    del body["flops"]
    cat = run_flops(Run.model_validate(body), ai)
    assert cat.source == "catalogue" and cat.factor == 0.25
    assert cat.native == training_flops("resnet-50", 1000) == 3 * forward_flops("resnet-50") * 1000
    assert cat.fp16 == pytest.approx(cat.native * 0.25)
    body = run(0, 1, model="llama2-7b", tokens=4 * SEQUENCE_LENGTH["llama2-7b"])
    del body["flops"]
    lm = run_flops(Run.model_validate(body), ai)  # the run has no precision: [ai] bf16
    assert lm.samples == 4 and lm.precision == "bf16" and lm.source is not None
    assert lm.fp16 == pytest.approx(4 * forward_flops("llama2-7b"))
    body = run(0, 1, model="my-model", samples=10, precision="fp12")
    del body["flops"]
    odd = run_flops(Run.model_validate(body), ai)
    assert odd.fp16 is None and any("my-model" in i for i in odd.issues)
    assert any("unknown precision 'fp12'" in i for i in odd.issues)


def test_quality_targets_defaults_overrides_and_shapes() -> None:
    ai = AiSection(servers=["bmc"], quality_targets=[
        {"phase": "infer", "model": "RESNET-50", "metric": "top1", "target": 0.8}])
    check = lambda body: check_quality(Run.model_validate(body), ai.targets(*Run.model_validate(body).key))  # noqa: E731
    assert check(run(0, 1, quality={"top1": 0.81}))[0] is True
    assert check(run(0, 1, quality=0.79))[2] == ["missed quality target: top1 0.79 < 0.8"]
    lm = run(0, 1, phase="train", model="llama2-70b", quality=0.93)
    assert check(lm)[2] == ["missed quality target: cross_entropy 0.93 > 0.925"]
    assert check({**lm, "quality": 0.92})[0] is True
    rouge = run(0, 1, model="llama2-70b", quality={"rouge1": 0.46, "rouge2": 0.23})
    ok, shown, issues = check(rouge)
    assert not ok and issues == ["quality figure rougeL not reported"]
    assert [t["met"] for t in shown] == [True, True, None]
    assert "give an object with rouge1, rouge2, rougeL" in check({**rouge, "quality": 0.5})[2][0]
    assert "not a fraction" in check(run(0, 1, model="bert-large", quality=90.5))[2][0]
    assert "quality not reported" in check(run(0, 1, quality=None))[2][0]
    assert "no quality target for infer gpt-9" in check(run(0, 1, model="gpt-9"))[2][0]


def test_site_section_rules() -> None:
    for bad, needle in [
        ({"phase_weights": {"train": 0.3, "infer": 0.7}}, "0, 0.5 or 1"),
        ({"phase_weights": {"train": 1, "infer": 0.5}}, "must be 1"),
        ({"task_weights": {"train": {"a": 0.5, "b": 0.4}}}, "sum to 1"),
        ({"precision": "fp12"}, "unknown precision"),
        ({"servers": []}, "at least 1"),
        ({"gpus": ["g", "g"]}, "listed twice"),
    ]:
        with pytest.raises(ValidationError, match=needle):
            AiSection.model_validate({"servers": ["bmc"], **bad})


# --- per run ---------------------------------------------------------------------------------


def test_five_valid_runs_give_the_mean_and_the_level() -> None:
    series, runs = five(watts=1200.0)
    result = ev(site({}), series, runs)
    # 1200 W x 300 s = 100 Wh; 1.8e13 FLOPs / 1e9 / 100 Wh = 180 GFLOPs/Wh each.
    assert [r["energy_wh"] for r in result["runs"]] == pytest.approx([100.0] * 5)
    assert result["aee_gflops_per_wh"] == pytest.approx(180.0) and result["aee_level"] is None
    assert result["quality"]["valid"] is True and result["tasks"][0]["aee_stdev"] == pytest.approx(0, abs=1e-9)
    assert result["aee_weights"]["phase"] == {"train": 0.0, "infer": 1.0}
    lower = ev(site({"advanced_gflops_per_wh": 180.0}), series, runs)
    assert lower["aee_level"] == "advanced"  # >= the threshold
    # 31 samples inside each run x 1 s / 300 s
    assert result["runs"][0]["sampling_density"] == pytest.approx(31 / 300)


def test_sparse_power_sampling_invalidates_the_runs() -> None:
    series, runs = five()
    sparse = gauge("bmc", "power_w", lambda t: series[0].values[int((t - T0) / 10)], 2100, step=60.0)
    result = ev(site({}), [sparse], runs)
    assert all(not r["valid"] for r in result["runs"])
    assert any("sampling density" in i for i in result["runs"][0]["issues"])
    assert result["aee_gflops_per_wh"] is None and result["quality"]["valid"] is False
    # The same samples reach the density when each stands for 60 s (an averaging meter), but
    # the run (100-400 s) lies 20 s from its nearest samples (120, 360 + 60 = 420): more than
    # 5 % of 300 s = 15 s, so its edges are interpolated, not measured (ai_coverage.py).
    first = ev(site({"power_sample_period_s": 60.0}), [sparse], runs)["runs"][0]
    assert first["sampling_density"] == pytest.approx(1.0) and not first["valid"]
    assert first["energy_edges_s"] == {"start": 20.0, "end": 20.0, "max": 15.0}
    (why,) = first["issues"]
    assert why.startswith("energy not measured: bmc power_w (power): the nearest readings")


def test_counter_preferred_and_gpu_energy_only_beside() -> None:
    series, runs = five()
    # A point-8 energy counter at 2000 W within runs: it wins over the 1200 W power gauge.
    spans = [(100 + 400 * k, 400 + 400 * k) for k in range(5)]
    in_run = lambda t: any(T0 + a <= t <= T0 + b for a, b in spans)  # noqa: E731
    kwh = counter("bmc", "energy_import_kwh", lambda t: (2.0 if in_run(t) else 0.1) / 3600, 2100,
                  unit="kWh", labels={"point": "it_input"})
    gpu = counter("gpu", "gpu_energy_j", lambda t: 700.0 if in_run(t) else 0.0, 2100, unit="J",
                  labels={"kind": "gpu"})
    result = ev(site({"gpus": ["gpu"]}), [*series, kwh, gpu], runs)
    first = result["runs"][0]
    assert first["energy_method"] == "counter" and first["sampling_density"] == 1.0
    assert first["energy_wh"] == pytest.approx(2000 * 300 / 3600)
    assert first["gpu_energy_wh"] == pytest.approx(700 * 300 / 3600)
    assert first["aee_gflops_per_wh"] == pytest.approx(18000 / (2000 * 300 / 3600))


def test_failed_missed_outside_duplicate_and_overlapping_runs_are_marked() -> None:
    series, runs = five()
    runs[0]["exit_status"] = 137
    runs[1]["quality"] = 0.70
    runs.append(run(2000, 2200, 6))  # ends after the window
    runs.append(run(520, 600, 2, flops=1e12))  # repeats repetition 2, within run 2 (500-800)
    runs.append(run(550, 650, 7))  # overlaps run 2 (500-800)
    result = ev(site({}), series, runs)
    issues = [r["issues"] for r in result["runs"]]
    assert "failed run: exit status 137" in issues[0]
    assert "missed quality target: accuracy 0.7 < 0.76" in issues[1]
    assert any("outside the window" in i for i in issues[5])
    assert any("given twice" in i for i in issues[6])
    assert any("overlaps runs[1, 7]" in i for i in issues[6])
    assert any("overlaps" in i for i in issues[7]) and any("overlaps" in i for i in issues[1])
    assert [r["valid"] for r in result["runs"]] == [False, False, True, True, True, False, False, False]
    task = result["tasks"][0]
    assert task["valid_runs"] == 3 and task["repetitions"] == [3, 4, 5] and not task["valid"]
    assert result["quality"]["valid"] is False
    assert any("3 valid repetition(s), fewer than 5" in i for i in result["quality"]["issues"])


def test_task_and_phase_weights() -> None:
    spans = [(100 + 400 * k, 400 + 400 * k) for k in range(10)]
    power = gauge("bmc", "power_w", step_power([(a, b, 1200.0) for a, b in spans]), 4100)
    runs = [run(a, b, k % 5 + 1, phase="train", model="bert-large" if k < 5 else "resnet-50",
                flops=(1.0e13 if k < 5 else 2.0e13), quality=0.8)
            for k, (a, b) in enumerate(spans)]
    # AEE per model: 1e13 / 1e9 / 100 Wh = 100 and 200 GFLOPs/Wh.
    weighted = ev(site({"task_weights": {"train": {"bert-large": 0.25, "resnet-50": 0.75}}}),
                  [power], runs, 4100)
    assert weighted["aee_train"] == pytest.approx(0.25 * 100 + 0.75 * 200)
    assert weighted["aee_gflops_per_wh"] == pytest.approx(175.0)
    equal = ev(site({}), [power], runs, 4100)
    assert equal["aee_train"] == pytest.approx(150.0)
    assert equal["aee_weights"]["task"]["train"] == {"bert-large": 0.5, "resnet-50": 0.5}
    missing = ev(site({"task_weights": {"train": {"bert-large": 0.5, "dlrm-dcnv2": 0.5}}}),
                 [power], runs, 4100)
    assert missing["aee_train"] is None and missing["quality"]["valid"] is False
    assert any("no valid run of dlrm-dcnv2" in i for i in missing["quality"]["issues"])
    assert any("resnet-50: runs not weighted" in i for i in missing["quality"]["issues"])
    # Inference weighted 1, training 0: no inference runs, so no AEE.
    infer_only = ev(site({"phase_weights": {"train": 0, "infer": 1}}), [power], runs, 4100)
    assert infer_only["aee_gflops_per_wh"] is None
    assert any("train runs not counted: phase weight 0" in i for i in infer_only["quality"]["issues"])
    # Both phases present, no configured weights: 0.5 each.
    mixed = [dict(r, phase="infer", model="resnet-50", quality=0.77) if i >= 5 else r
             for i, r in enumerate(runs)]
    both = ev(site({}), [power], mixed, 4100)
    assert both["aee_weights"]["phase"] == {"train": 0.5, "infer": 0.5}
    assert both["aee_gflops_per_wh"] == pytest.approx(0.5 * 100 + 0.5 * 200)


def test_ace_uses_the_windows_green_share() -> None:
    series, runs = five()
    total = counter("meter", "energy_import_kwh", lambda t: 4.0 / 3600, 2100, unit="kWh",
                    labels={"point": "total"})
    green = counter("pv", "energy_import_kwh", lambda t: 1.0 / 3600, 2100, unit="kWh",
                    labels={"point": "green"})
    s = site({}, total=["meter"], green=["pv"])
    result = ev(s, [*series, total, green], runs)
    # Non-green share 3/4, eta 0.5: 0.375 kg/kWh; each run 0.1 kWh and 1.8e13 FLOPs.
    assert result["ace_kg_per_flop"] == pytest.approx(0.1 * 0.375 / 1.8e13)
    assert result["runs"][0]["carbon_kg"] == pytest.approx(0.0375)
    no_total = ev(s, [*series, green], runs)
    assert no_total["ace_kg_per_flop"] is None
    assert any("green share" in i for i in no_total["quality"]["issues"])


def test_without_an_ai_section_the_result_says_so() -> None:
    series, runs = five()
    result = evaluate("ai", site(None), series, T0, T0 + 2100, runs)
    assert result["kind"] == "ai" and result["quality"]["valid"] is False
    assert result["quality"]["issues"][0].startswith("the site file has no [ai] section")
    assert result["aee_gflops_per_wh"] is None and len(result["runs"]) == 5
    assert result["runs"][0]["energy_wh"] is None


def test_source_ids_include_the_ai_sources() -> None:
    s = site({"gpus": ["g"], "network": ["sw"], "storage": ["st"]}, total=["m"])
    assert source_ids("ai", s) == ["bmc", "g", "m", "st", "sw"]
    assert source_ids("infrastructure", s) == ["bmc", "m"]


# --- calibration figures ---------------------------------------------------------------------


def test_port_and_storage_throughput_across_a_32_bit_wrap() -> None:
    series, runs = five()
    port = {"if_index": "3", "if_name": "eth3"}
    # 50 MB/s in, starting 1 GB below the 32-bit modulus: it wraps during the first run.
    rx = counter("sw", "if_in_octets", lambda t: 50e6, 2100, modulus=2.0**32,
                 start=2.0**32 - 1e9 - 5e9, labels=port)
    tx = counter("sw", "if_out_octets", lambda t: 25e6, 2100, modulus=2.0**32, labels=port)
    s_in = counter("array", "if_in_octets", lambda t: 10e6, 2100, labels={"if_name": "fc0"})
    s_out = counter("array", "if_out_octets", lambda t: 30e6, 2100, labels={"if_name": "fc0"})
    result = ev(site({"network": ["sw"], "storage": ["array"]}), [*series, rx, tx, s_in, s_out], runs)
    assert sum(1 for i in range(1, len(rx.values)) if rx.values[i] < rx.values[i - 1]) >= 1
    first = result["runs"][0]
    assert first["network"] == [{"source": "sw", "if_index": "3", "if_name": "eth3",
                                 "in_gbps": pytest.approx(0.4), "out_gbps": pytest.approx(0.2),
                                 "gbps": pytest.approx(0.6), "valid": True}]
    st = first["storage"]
    assert st["method"] == "port_counters" and st["read_gbit_s"] == pytest.approx(0.24)
    assert st["write_gbit_s"] == pytest.approx(0.08) and st["gbit_s"] == pytest.approx(0.32)


def test_normalised_compute_and_power_by_load() -> None:
    spans = [(100 + 400 * k, 400 + 400 * k) for k in range(5)]
    power = gauge("bmc", "power_w", step_power([(a, b, 1000.0 + 100 * k) for k, (a, b) in enumerate(spans)]), 2100)
    util = gauge("gpu", "gpu_util_pct", step_power([(a, b, 55.0 + 10 * k) for k, (a, b) in enumerate(spans)], idle=0.0),
                 2100, unit="%", labels={"kind": "gpu"})
    runs = [run(a, b, k + 1, tokens=3000.0) for k, (a, b) in enumerate(spans)]
    result = ev(site({"gpus": ["gpu"], "peak_flops": 1.2e12}), [power, util], runs)
    first = result["runs"][0]
    assert first["gpu_util"] == pytest.approx(0.55)
    assert first["achieved_flops"] == pytest.approx(1.8e13 / 300)
    assert first["compute_utilisation"] == pytest.approx(0.05)
    assert first["tokens_per_s"] == pytest.approx(10.0)
    assert first["tokens_per_wh"] == pytest.approx(3000 / (1000 * 300 / 3600))
    deciles = {(b["gpu_util_from"], b["points"], b["mean_power_w"]) for b in result["calibration"]["power_by_gpu_util"]}
    assert (0.5, 31, 1000.0) in deciles and (0.9, 31, 1400.0) in deciles
    assert result["calibration"]["normalised_effective_compute"]["gpu_util"] == pytest.approx(0.75)


def test_counter_delta_and_gauge_mean() -> None:
    c = counter("x", "if_in_octets", lambda t: 1.0, 100)
    d = counter_delta(c, T0 + 5, T0 + 95)
    assert d.value == pytest.approx(90.0) and d.valid and d.wraps == 0
    reset = Series("x", "c", "B", "counter", (T0, T0 + 10, T0 + 20), (100.0, 200.0, 50.0))
    r = counter_delta(reset, T0, T0 + 20)
    assert r.resets == 1 and not r.valid and r.value == pytest.approx(150.0)
    ramp = gauge("x", "p", lambda t: t - T0, 100)
    assert gauge_mean(ramp, T0, T0 + 100) == pytest.approx(50.0)
    assert gauge_mean(ramp, T0 + 200, T0 + 300) is None
    labelled = Series("x", "power_avg_w", "W", "gauge", (T0, T0 + 60, T0 + 120), (1.0, 1.0, 1.0),
                      labels={"period_s": "30"})
    assert sampling_density([labelled], T0, T0 + 120, 1.0) == pytest.approx(0.75)
    assert math.isclose(sampling_density([labelled], T0, T0 + 60, 1.0), 1.0)


def test_sampling_density_takes_the_period_in_force_at_each_sample() -> None:
    """DCMI's average power with its period as a metric (power_avg_period_s), worked by hand:
    run [T0, T0 + 100 s]; power samples at +5, +10, +30, +50, +70, +90 s; periods 2 s from
    +10 and 4 s from +50. τ: +5 has no period yet (ai.power_sample_period_s, 1 s), +10 → 2
    (same time), +30 → 2 (latest before), +50 → 4, +70 → 4, +90 → 4: Σ τ = 17 s, density
    17 / 100 = 0.17 (a median τ would give 6 × 4 / 100 = 0.24; the fallback alone 0.06)."""
    at = (5, 10, 30, 50, 70, 90)
    power = Series("bmc", "power_avg_w", "W", "gauge", [T0 + t for t in at], [300.0] * 6)
    periods = Series("bmc", "power_avg_period_s", "s", "gauge", (T0 + 10, T0 + 50), (2.0, 4.0))
    other = Series("bmc-2", "power_avg_period_s", "s", "gauge", (T0,), (60.0,))
    assert sampling_density([power], T0, T0 + 100, 1.0, [other, periods]) == pytest.approx(0.17)
    assert sampling_density([power], T0, T0 + 100, 1.0) == pytest.approx(0.06)
    assert sampling_density([power], T0, T0 + 100, 1.0, [other]) == pytest.approx(0.06)
    # power_w (the instantaneous reading) has no averaging period: the fallback stands.
    current = Series("bmc", "power_w", "W", "gauge", power.ts, power.values)
    assert sampling_density([current], T0, T0 + 100, 1.0, [periods]) == pytest.approx(0.06)


def test_quality_rows_name_their_port_and_leave_idle_series_out() -> None:
    from dcmeter.collectors.evaluation.quality import tidy_sources

    def row(source: str, metric: str, samples: int, **labels: str) -> dict[str, Any]:
        return {"source": source, "metric": metric, "labels": labels, "samples": samples}

    quality = {"sources": [
        row("sw-1", "if_in_octets", 5, if_index="1", if_name="Eth1/1"),
        row("sw-1", "if_in_octets", 5, if_index="2", if_name="Eth1/2"),
        row("sw-1", "if_in_octets", 0, if_index="9", if_name="Eth1/9"),  # idle: a live source
        row("sw-1", "if_in_octets", 5, if_index="1", if_name="Eth1/1"),  # listed twice
        row("meter-it", "energy_import_kwh", 0),  # a dead source: a finding, kept
        row("gpu-host", "gpu_power_w", 3, gpu_index="0", gpu_name="H200"),
    ]}
    tidy_sources(quality)
    assert [q["name"] for q in quality["sources"]] == [
        "if_in_octets Eth1/1", "if_in_octets Eth1/2", "energy_import_kwh", "gpu_power_w GPU 0 H200",
    ]
    assert [q["part"] for q in quality["sources"]][2] is None
    assert quality["idle_series"] == 1
