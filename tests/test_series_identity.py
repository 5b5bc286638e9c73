"""Issue 16 item 4: a BMC whose DCMI statistics period changes every poll, read by the real
ipmi source in a real agent and shipped to a real collector, is one series per metric in
the store, one row per metric in the window's result and in its report."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from conftest import Collector

from dcmeter.collectors.evaluation.evaluate import evaluate
from dcmeter.collectors.evaluation.jsonl import rfc3339
from dcmeter.collectors.evaluation.site import Site
from dcmeter.collectors.reporting.report import render_html, series_from
from dcmeter.sim.bmc import PowerReading, SimBmc
from dcmeter.sim.loop import LoopThread
from tests.peers.agent import agent_of, tick_and_ship

PASSWORD = "bmc-secret"
METRICS = ["power_avg_period_s", "power_avg_w", "power_max_w", "power_min_w", "power_w"]
TICKS = 4






def test_a_bmc_moving_its_period_every_poll_is_one_series_per_metric(
    collector: Collector, tmp_path: Path
) -> None:
    bmc = SimBmc(lambda: PowerReading(412.0, 400.0, 430.0, 410.0, period_s=39.0),
                 password=PASSWORD, period_step_s=1.0)
    with LoopThread() as loop:
        port = loop.serve(bmc)
        agent = agent_of(tmp_path, collector.url, collector.keys["agent-1"], [
            {"id": "bmc-1", "type": "ipmi", "host": "127.0.0.1", "port": port,
             "username": "admin", "password": PASSWORD, "timeout_s": 3}])
        try:
            assert asyncio.run(tick_and_ship(agent, TICKS))
        finally:
            agent.buffer.close()
    assert bmc.power_reads == TICKS
    rows = collector.store._db.execute(
        "SELECT metric, labels FROM series WHERE source = 'bmc-1' ORDER BY metric"
    ).fetchall()
    assert [tuple(r) for r in rows] == [(m, "{}") for m in METRICS]  # no period_s label
    series = {s.metric: s for s in collector.store.series(["bmc-1"], 0, 2**62)}
    assert sorted(series) == METRICS
    assert [len(series[m].ts) for m in METRICS] == [TICKS] * len(METRICS)
    # The sim's period: 39 s, then one more each poll.
    assert list(series["power_avg_period_s"].values) == [39.0, 40.0, 41.0, 42.0]
    assert list(series["power_avg_w"].values) == [410.0] * TICKS

    t0, t1 = float(min(series["power_w"].ts)), float(max(series["power_w"].ts))
    site = Site.model_validate({
        "site": {"name": "t", "grid_factor_kg_per_kwh": 0.5},
        "energy": {"total": ["bmc-1"], "it": ["bmc-1"], "metrics": {"power": "power_avg_w"}},
        "ai": {"servers": ["bmc-1"]},
    })
    run: dict[str, Any] = {"phase": "infer", "model": "m", "repetition": 1, "flops": 1e12,
                           "start": rfc3339(t0), "end": rfc3339(t1), "exit_status": 0}
    result = evaluate("ai", site, list(series.values()), t0 - 1, t1 + 1, [run])
    listed = [(q["source"], q["metric"]) for q in result["quality"]["sources"]]
    # One row per series (power_avg_w serves E_total and E_IT here: listed once), in the
    # order the evaluation met them.
    assert listed == [("bmc-1", m) for m in ["power_avg_w", "power_w", "power_min_w",
                                             "power_max_w", "power_avg_period_s"]]
    assert all(q["samples"] == TICKS for q in result["quality"]["sources"])
    # The report's coverage table: the same five rows, one per series, in both languages.
    for lang in ("en", "zh"):
        html = render_html(result, series_from("ai", site, list(series.values()), t0 - 1,
                                                t1 + 1), lang)
        heading = {"en": "Coverage per source", "zh": "各数据源覆盖率"}[lang]
        table = html[html.index(f"<h3>{heading}</h3>"):]
        table = table[:table.index("</table>")]
        rows = [r for r in table.split("<tr>")[1:] if "bmc-1" in r]
        assert len(rows) == len(METRICS), rows
        assert [sum(f"<td>{m}</td>" in r for r in rows) for m in METRICS] == [1] * len(METRICS)
