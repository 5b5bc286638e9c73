"""Agent- and user-supplied text in `dcmeter window status`: printed literally, never obeyed.

A batch's source labels, metric name and metric labels and a window's note carry Rich markup
(`[/bold]`, `[link=…]`), an ANSI colour escape or a bidirectional override; the real command
line reads the window from a real collector and must print them as text. (Source ids are
the site file's, so the agent's text reaches the status through its labels.)
"""

from __future__ import annotations

import json
import re

import httpx
import pytest
from conftest import Collector

from dcmeter.agent import wire
from dcmeter.agent.samples import MetricSpec, SourceInfo
from dcmeter.agent.wire import GENESIS, Batch, ClockStatus, MetricEntry
from dcmeter.cli.main import main
from dcmeter.collectors.evaluation.jsonl import parse_rfc3339

START, END = "2026-03-01T00:00:00Z", "2026-03-01T01:00:00Z"
T0 = parse_rfc3339(START)
# Each finding's text, between letters so a swallowed or obeyed tag shows in the output.
PAYLOADS = {
    "closing_tag": "[/bold]",  # crashed the command (MarkupError)
    "hyperlink": "[link=http://x]y[/link]",  # became an OSC-8 terminal hyperlink
    "ansi_escape": "\x1b[31m",  # reached the terminal as a colour escape
    "bidi_override": "\u202e",  # reversed the rest of the line on screen
}


@pytest.fixture
def env(collector: Collector, monkeypatch: pytest.MonkeyPatch) -> Collector:
    """Point the CLI at the collector with an engineer's token, on a wide console."""
    monkeypatch.setenv("DCMETER_COLLECTOR", collector.url)
    monkeypatch.setenv("DCMETER_TOKEN", collector.tokens["engineer"])
    monkeypatch.setenv("COLUMNS", "400")
    return collector


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """Run `dcmeter ARGV` in this process; return (status, stdout, stderr)."""
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def feed_hostile(c: Collector, hostile: str) -> None:
    """Meter power every 60 s over the window, `hostile` in source and metric labels.

    A metric of that name is sent too; the status shows only the metrics a window reads.
    """
    labels = {"point": f"total{hostile}", "room": hostile}
    sources = [SourceInfo("meter-total", "modbus", "127.0.0.1:502", labels),
               SourceInfo("meter-it", "modbus", "127.0.0.1:502", {"point": "it_pdu"})]
    metrics = [MetricEntry(MetricSpec("power_w", "W")),
               MetricEntry(MetricSpec(f"power_w{hostile}", "W"), {"port": hostile})]
    offsets = range(-300, 3901, 60)
    rows = [(t, s, m, v) for t in offsets
            for s, m, v in ((0, 0, 150_000.0), (1, 0, 100_000.0), (0, 1, 1.0))]
    ts = [int((T0 + t) * 1e9) for t, *_ in rows]
    arrays = wire.pack_arrays(ts, [r[1] for r in rows], [r[2] for r in rows],
                              [r[3] for r in rows])
    batch = Batch("agent-1", 1, GENESIS, ts[-1], ClockStatus(synced=True), sources, metrics,
                  *arrays)
    r = httpx.post(f"{c.url}/api/v1/batches", content=wire.seal(batch, c.keys["agent-1"]),
                   headers={"content-type": "application/x-msgpack"})
    assert r.status_code == 200, r.text


@pytest.mark.parametrize("payload", PAYLOADS.values(), ids=PAYLOADS.keys())
def test_agent_text_in_window_status_is_printed_literally(
    env: Collector, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
    payload: str,
) -> None:
    hostile = f"a{payload}b"
    feed_hostile(env, hostile)
    code, out, err = cli(capsys, "window", "start", "--kind", "infrastructure", "--note",
                         f"note{hostile}", "--start", START, "--json")
    assert code == 0, err
    wid = json.loads(out)["id"]
    assert cli(capsys, "window", "stop", str(wid), "--end", END)[0] == 0

    code, out, err = cli(capsys, "window", "status", str(wid))
    assert code == 0, err
    assert "\x1b" not in out + err, "an escape sequence reached the terminal"
    # A control character shows as U+FFFD; markup shows as the characters it is made of.
    literal = re.sub("[\x1b\u202e]", "\ufffd", hostile)
    # The note (a user's), the point label (the agent's) and an issue that quotes it.
    for text in (f"note{literal}", f"points total{literal}", f"point total{literal}, expected"):
        assert text in out, f"{text!r} is not printed literally in:\n{out}"

    code, out, err = cli(capsys, "window", "list")
    assert code == 0, err
    assert f"note{literal}" in out and "\x1b" not in out

    monkeypatch.setenv("FORCE_COLOR", "1")  # a terminal: styles and links would be drawn
    code, out, err = cli(capsys, "window", "status", str(wid))
    assert code == 0, err
    assert "\x1b]8;" not in out, "an OSC-8 hyperlink reached the terminal"
    if payload.startswith("["):
        assert f"note{hostile}" in out, "markup was obeyed on a terminal"
    else:
        assert hostile not in out, f"{payload!r} reached the terminal"
    monkeypatch.delenv("FORCE_COLOR")

    code, out, err = cli(capsys, "window", "status", str(wid), "--json")
    assert code == 0, err
    result = json.loads(out)  # --json keeps the stored text as it is, for programs to read
    assert result["window"]["note"] == f"note{hostile}"
    assert f"total{hostile}" in result["sources"]["total"]["points"]
