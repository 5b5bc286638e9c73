"""`dcmeter source list|owner` against a real collector on a socket."""

from __future__ import annotations

import json

import pytest
from conftest import Collector
from test_window_cli import cli, feed


@pytest.fixture
def env(collector: Collector, monkeypatch: pytest.MonkeyPatch) -> Collector:
    """The CLI pointed at the collector with an engineer's token; agent-1's meters stored."""
    monkeypatch.setenv("DCMETER_COLLECTOR", collector.url)
    monkeypatch.setenv("DCMETER_TOKEN", collector.tokens["engineer"])
    feed(collector)
    return collector


def test_list_confirm_and_refusals(env: Collector, capsys: pytest.CaptureFixture[str],
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    code, out, _ = cli(capsys, "source", "list")
    assert code == 0
    assert "meter-it: agent-1 (first_delivery, NOT confirmed)" in out
    code, out, _ = cli(capsys, "source", "owner", "meter-it", "--agent", "agent-1",
                       "--reason", "seen on site", "--json")
    entry = json.loads(out[out.index("{\n"):])  # the in-process collector logs there too
    assert code == 0 and entry["confirmed"] is True and entry["history"][0]["by"] == "engineer-1"
    code, _, err = cli(capsys, "source", "owner", "meter-it", "--agent", "rack-z",
                       "--reason", "typo")
    assert code == 1 and "'rack-z' is not enrolled" in err and "\n" not in err.rstrip("\n")
    monkeypatch.setenv("DCMETER_TOKEN", env.tokens["reader"])
    code, _, err = cli(capsys, "source", "owner", "meter-it", "--agent", "agent-1",
                       "--reason", "x")
    assert code == 1 and "(403)" in err
    code, out, _ = cli(capsys, "source", "list", "--json")
    listed = json.loads(out[out.index("[\n"):])
    assert code == 0 and {e["source"]: e["via"] for e in listed} == {
        "meter-total": "first_delivery", "meter-it": "confirmed"}
