"""Issue 17 item 1, "per source ... the last failure reason": a real agent with one live
simulated Modbus meter and one Modbus target on a port nobody listens on ships to a real
collector; the console's live fragment shows the dead target `failing` with the agent's own
reason, the live one ok; once a meter listens on that port, the target is ok again."""

from __future__ import annotations

import asyncio
import re
import time
from contextlib import closing
from pathlib import Path

import httpx
from conftest import Collector, free_port

from dcmeter.sim.loop import LoopThread
from dcmeter.sim.meters import SimMeter
from tests.peers.agent import agent_of, tick_and_ship

VALUES = {"power_w": 1000.0, "frequency_hz": 50.0, "energy_import_kwh": 100.0,
          "energy_export_kwh": 0.0}




# Between ticks, s: the console calls a source stale after 3 × its median interval, so
# ticks spaced like an agent's keep the live meter `ok` while the fragment is read.
GAP_S = 3.0




def _row(text: str, source: str) -> tuple[str, str]:
    """The (class, failure cell) of `source`'s first row in the live fragment."""
    m = re.search(rf'<tr data-source="{source}" data-metric="[^"]*" class="([^"]*)">.*?'
                  r'<td class="failure">(.*?)</td>', text, re.S)
    assert m, text
    return m.group(1), m.group(2)


def test_a_dead_target_is_failing_with_its_reason_and_ok_once_it_answers(
    collector: Collector, tmp_path: Path
) -> None:
    dead_port = free_port()
    with LoopThread() as loop, closing(httpx.Client(base_url=collector.url)) as browser:
        live_port = loop.serve(SimMeter("eastron_sdm630", lambda: VALUES))
        agent = agent_of(tmp_path, collector.url, collector.keys["agent-1"], [
            {"id": "meter-total", "type": "modbus", "host": "127.0.0.1", "port": live_port,
             "profile": "eastron_sdm630", "timeout_s": 5, "labels": {"point": "total"}},
            {"id": "meter-it", "type": "modbus", "host": "127.0.0.1", "port": dead_port,
             "profile": "eastron_sdm630", "timeout_s": 5, "labels": {"point": "it_pdu"}},
        ])
        try:
            with collector.http("engineer") as api:
                wid = api.post(f"{collector.url}/api/v1/windows", json={
                    "kind": "infrastructure",
                    "start": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 60)),
                }).json()["id"]
            before = time.time()
            assert asyncio.run(tick_and_ship(agent, 2, GAP_S))
            after = time.time()
            r = browser.post("/login", data={"token": collector.tokens["engineer"]})
            assert r.status_code == 303
            text = browser.get(f"/windows/{wid}/live").text
            cls, cell = _row(text, "meter-it")
            assert cls == "failing", text
            assert "refused" in cell.lower() or "connect" in cell.lower(), cell
            # "since HH:MM:SS (2 times)": the first failed tick, both ticks counted.
            m = re.search(r"since (\d\d:\d\d:\d\d) \(2 times\)", cell)
            assert m, cell
            assert m.group(1) in {time.strftime("%H:%M:%S", time.gmtime(t))
                                  for t in range(int(before), int(after) + 1)}, cell
            assert _row(text, "meter-total")[0] == "ok"
            zh = browser.get(f"/windows/{wid}/live", headers={"accept-language": "zh-CN"}).text
            assert "始于" in _row(zh, "meter-it")[1] and ">故障<" in zh, zh
            # A meter starts listening on the dead port: the next ticks read it.
            loop.serve(SimMeter("eastron_sdm630", lambda: VALUES), port=dead_port)
            time.sleep(GAP_S)
            assert asyncio.run(tick_and_ship(agent, 1, GAP_S))
            text = browser.get(f"/windows/{wid}/live").text
            cls, cell = _row(text, "meter-it")
            assert cls == "ok", text
            assert "recovered" in cell and "(2 times)" in cell, cell
            assert _row(text, "meter-total")[0] == "ok"
        finally:
            agent.buffer.close()
            asyncio.run(agent.poller.close())
