"""`dcmeter run`: real workloads wrapped as the runs of an AI window on a real collector."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import ROOT, SITE_TOML, Collector, serve

from dcmeter.cli.main import main
from dcmeter.cli.run_cli import read_report
from dcmeter.collectors.evaluation.jsonl import parse_rfc3339
from dcmeter.collectors.evaluation.site import load_site
from dcmeter.collectors.intake.ingest import Ingest
from dcmeter.collectors.storage.store import Store
from dcmeter.collectors.web.api import create_app
from dcmeter.collectors.web.auth import create_token

# Sleeps 0.2 s; fails at the repetition named by $FAIL_AT; writes $REPORT_JSON as its report.
WORKLOAD = """
import os, sys, time
marker = os.environ.get("MARKER")
if marker:
    open(marker, "a").write(os.environ["DCMETER_RUN_REPETITION"] + "\\n")
time.sleep(float(os.environ.get("SLEEP_S", "0.2")))
report = os.environ.get("REPORT_JSON")
if report is not None:
    open(os.environ["DCMETER_RUN_REPORT"], "w").write(report)
if os.environ.get("KILL_SELF"):
    os.kill(os.getpid(), 15)
sys.exit(1 if os.environ["DCMETER_RUN_REPETITION"] == os.environ.get("FAIL_AT") else 0)
"""


@pytest.fixture
def workload(tmp_path: Path) -> list[str]:
    """The command line of the test workload."""
    script = tmp_path / "workload.py"
    script.write_text(WORKLOAD)
    return [sys.executable, str(script)]


@pytest.fixture
def env(collector: Collector, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Collector:
    """Point the CLI at the collector with an engineer's token; work in tmp_path."""
    monkeypatch.setenv("DCMETER_COLLECTOR", collector.url)
    monkeypatch.setenv("DCMETER_TOKEN", collector.tokens["engineer"])
    for name in ("FAIL_AT", "REPORT_JSON", "KILL_SELF", "MARKER", "SLEEP_S"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    return collector


def open_window(c: Collector, kind: str = "ai") -> int:
    """Open a window now; return its id."""
    with c.http() as eng:
        r = eng.post(f"{c.url}/api/v1/windows", json={"kind": kind})
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


def runs(c: Collector, wid: int) -> list[dict[str, Any]]:
    """The runs recorded in window `wid`, by repetition."""
    with c.http("reader") as rd:
        r = rd.get(f"{c.url}/api/v1/windows/{wid}/runs")
    assert r.status_code == 200, r.text
    return sorted(r.json(), key=lambda x: x["repetition"])


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    """Run `dcmeter ARGV` in this process; return (status, stderr)."""
    code = main(list(argv))
    return code, capsys.readouterr().err


def duration(run: dict[str, Any]) -> float:
    """A recorded run's length, s."""
    return parse_rfc3339(run["end"]) - parse_rfc3339(run["start"])


def test_five_repetitions_one_failed(
    env: Collector, capsys: pytest.CaptureFixture[str], workload: list[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    wid = open_window(env)
    monkeypatch.setenv("FAIL_AT", "3")
    t0 = time.time()
    code, err = cli(capsys, "run", "--phase", "infer", "--model", "resnet-50", "--repeat", "5",
                    "--samples", "50000", "--precision", "int8", "--", *workload)
    t1 = time.time()
    assert code == 1, err
    assert "Traceback" not in err
    last = err.splitlines()[-1]
    assert last == (f"dcmeter: window {wid}, infer resnet-50: 5 of 5 run(s) recorded;"
                    " failed: repetition 3 (exit 1)")
    got = runs(env, wid)
    assert [r["repetition"] for r in got] == [1, 2, 3, 4, 5]
    assert [r["exit_status"] for r in got] == [0, 0, 1, 0, 0]
    for r in got:
        assert t0 <= parse_rfc3339(r["start"]) < parse_rfc3339(r["end"]) <= t1
        assert duration(r) >= 0.2
        assert (r["phase"], r["model"], r["samples"], r["precision"]) == (
            "infer", "resnet-50", 50000, "int8")
    for a, b in itertools.pairwise(got):  # one after another, never overlapping
        assert parse_rfc3339(a["end"]) <= parse_rfc3339(b["start"])
    # The window's evaluation keeps the failed run and marks it.
    with env.http("reader") as rd:
        result = rd.get(f"{env.url}/api/v1/windows/{wid}").json()
    text = json.dumps(result)
    assert "failed run: exit status 1" in text

    # Numbering goes on after what is recorded for (phase, model); the model in other case.
    code, err = cli(capsys, "run", "--window", str(wid), "--phase", "infer", "--model",
                    "ResNet-50", "--tokens", "10", "--", *workload)
    assert code == 0, err
    assert [r["repetition"] for r in runs(env, wid)] == [1, 2, 3, 4, 5, 6]
    # Another task starts at 1.
    code, err = cli(capsys, "run", "--phase", "train", "--model", "resnet-50", "--samples",
                    "10", "--", *workload)
    assert code == 0, err
    assert [(r["phase"], r["repetition"]) for r in runs(env, wid)].count(("train", 1)) == 1


def test_figures_from_the_report_file(
    env: Collector, capsys: pytest.CaptureFixture[str], workload: list[str],
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
) -> None:
    wid = open_window(env)
    # The workload reports whether it saw the token: it must not.
    script = tmp_path / "report.py"
    script.write_text(
        "import json, os\n"
        "json.dump({'flops': 1.2e15, 'tokens': 1000000, 'precision': 'bf16',"
        " 'quality': {'metric': 'top1', 'value': 0.759, 'target': 0.759},"
        " 'note': f\"token seen: {'DCMETER_TOKEN' in os.environ}\"},"
        " open(os.environ['DCMETER_RUN_REPORT'], 'w'))\n"
    )
    code, err = cli(capsys, "run", "--phase", "train", "--model", "bert-large", "--samples",
                    "64", "--flops", "5", "--precision", "fp32", "--", sys.executable,
                    str(script))
    assert code == 0, err
    (r,) = runs(env, wid)
    # The report overrides flops and precision and completes tokens, quality and note.
    assert (r["flops"], r["tokens"], r["samples"], r["precision"]) == (1.2e15, 1e6, 64, "bf16")
    assert r["quality"] == {"top1": 0.759}
    assert r["note"] == "token seen: False"

    # --report-file: the path given; a stale one is removed before the launch.
    path = tmp_path / "mine.json"
    path.write_text('{"flops": 7}')
    monkeypatch.setenv("REPORT_JSON", '{"quality": 0.9}')
    code, err = cli(capsys, "run", "--phase", "train", "--model", "bert-large", "--samples",
                    "64", "--report-file", str(path), "--", *workload)
    assert code == 0, err
    r = runs(env, wid)[1]
    assert (r["quality"], r["flops"], r["samples"]) == (0.9, None, 64)
    assert json.loads(path.read_text()) == {"quality": 0.9}

    # Bad JSON: the run is still recorded, with the options' figures, and one warning.
    monkeypatch.setenv("REPORT_JSON", '{"flops": 1e15,')
    code, err = cli(capsys, "run", "--phase", "train", "--model", "bert-large", "--samples",
                    "32", "--", *workload)
    assert code == 0, err
    r = runs(env, wid)[2]
    assert (r["repetition"], r["samples"], r["flops"]) == (3, 32, None)
    (warning,) = [x for x in err.splitlines() if "ignored" in x]
    assert warning.startswith("dcmeter: repetition 3: report file ") and "not JSON" in warning


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("[1, 2]", "expected a JSON object"),
        ('{"flop": 1}', "unknown key 'flop'"),
        ('{"samples": -3}', "samples: expected a number >= 0"),
        ('{"tokens": "many"}', "tokens: expected a number >= 0"),
        ('{"flops": -1}', "flops: expected a number >= 0"),
        ('{"quality": {"metric": "top1", "value": "high"}}', "quality.value: expected"),
        ('{"precision": ""}', "precision: expected a non-empty string"),
    ],
)
def test_bad_reports_are_named(tmp_path: Path, text: str, why: str) -> None:
    path = tmp_path / "r.json"
    path.write_text(text)
    found, reason = read_report(path)
    assert found == {} and reason is not None and why in reason


def test_report_forms(tmp_path: Path) -> None:
    path = tmp_path / "r.json"
    assert read_report(path) == ({}, None)  # no file: no report, no warning
    path.write_text('{"quality": {"rouge1": 0.46, "rouge2": 0.23}, "samples": 3, "note": null}')
    assert read_report(path) == ({"quality": {"rouge1": 0.46, "rouge2": 0.23},
                                  "samples": 3.0}, None)


def test_no_figures_and_killed_runs_are_kept(
    env: Collector, capsys: pytest.CaptureFixture[str], workload: list[str],
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
) -> None:
    wid = open_window(env)
    monkeypatch.setenv("KILL_SELF", "1")
    code, err = cli(capsys, "run", "--phase", "infer", "--model", "llama2-7b", "--tokens", "5",
                    "--", *workload)
    assert code == 1
    (r,) = runs(env, wid)
    assert r["exit_status"] == -signal.SIGTERM and r["note"] == "killed by SIGTERM"
    assert "failed: repetition 1 (killed by SIGTERM)" in err
    # No figure anywhere: not postable, so spooled with the reason rather than dropped.
    monkeypatch.delenv("KILL_SELF")
    code, err = cli(capsys, "run", "--phase", "infer", "--model", "llama2-7b", "--", *workload)
    assert code == 1
    assert "give at least one of samples, tokens or flops" in err
    (line,) = (tmp_path / "dcmeter-runs-pending.jsonl").read_text().splitlines()
    entry = json.loads(line)
    assert entry["window"] == wid and entry["run"]["repetition"] == 2
    assert len(runs(env, wid)) == 1
    # The next run comes after the spooled one, so a later --resend does not collide.
    code, err = cli(capsys, "run", "--phase", "infer", "--model", "llama2-7b", "--tokens", "5",
                    "--", *workload)
    assert code == 0, err
    assert [r["repetition"] for r in runs(env, wid)] == [1, 3]


def test_collector_down_spools_and_resend_posts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], workload: list[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    site_file = tmp_path / "site.toml"
    site_file.write_text(SITE_TOML)
    store = Store(tmp_path / "collector.sqlite")
    token = create_token(store, "engineer")[1]
    monkeypatch.setenv("DCMETER_TOKEN", token)
    monkeypatch.chdir(tmp_path)
    for name in ("FAIL_AT", "REPORT_JSON", "KILL_SELF"):
        monkeypatch.delenv(name, raising=False)

    def app() -> Any:
        return create_app(store, Ingest(store, {}, max_bytes=1 << 20), load_site(site_file))

    marker = tmp_path / "started"
    monkeypatch.setenv("MARKER", str(marker))
    monkeypatch.setenv("SLEEP_S", "0.5")
    spool = tmp_path / "pending.jsonl"
    try:
        with ExitStack() as stack:
            url = stack.enter_context(serve(app()))
            monkeypatch.setenv("DCMETER_COLLECTOR", url)
            wid = httpx.post(f"{url}/api/v1/windows", json={"kind": "ai"},
                             headers={"Authorization": f"Bearer {token}"}).json()["id"]

            def stop_when_started() -> None:
                deadline = time.monotonic() + 20
                while not marker.exists() and time.monotonic() < deadline:
                    time.sleep(0.01)
                stack.close()  # the collector goes away while the workload runs

            stopper = threading.Thread(target=stop_when_started)
            stopper.start()
            code, err = cli(capsys, "run", "--phase", "infer", "--model", "resnet-50",
                            "--samples", "10", "--spool", str(spool), "--", *workload)
            stopper.join()
        assert code == 1
        assert "unreachable" in err and f"kept in {spool}" in err and "Traceback" not in err
        assert err.splitlines()[-1].endswith(f"`dcmeter run --resend {spool}`")
        (line,) = spool.read_text().splitlines()
        assert json.loads(line)["run"]["repetition"] == 1
        assert store.runs(wid) == []

        # Still down: nothing is lost.
        code, err = cli(capsys, "run", "--resend", str(spool))
        assert code == 1 and "unreachable" in err and spool.read_text() == line + "\n"

        with serve(app()) as url2:
            code, err = cli(capsys, "run", "--resend", str(spool), "--collector", url2)
            assert code == 0, err
            assert spool.read_text() == ""
            (stored,) = store.runs(wid)
            assert stored.body["repetition"] == 1 and stored.body["samples"] == 10
            # The same run again is a duplicate the API accepts (200): the file is emptied.
            spool.write_text(line + "\n" + "not json\n")
            code, err = cli(capsys, "run", "--resend", str(spool), "--collector", url2)
            assert code == 1 and "not a spooled run" in err
            assert spool.read_text() == "not json\n" and len(store.runs(wid)) == 1
    finally:
        store.close()


def test_refused_before_launch(
    env: Collector, capsys: pytest.CaptureFixture[str], workload: list[str],
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
) -> None:
    marker = tmp_path / "started"
    monkeypatch.setenv("MARKER", str(marker))
    argv = ["run", "--phase", "infer", "--model", "resnet-50", "--samples", "1", "--", *workload]
    code, err = cli(capsys, *argv)
    assert code == 1 and err == (
        "dcmeter: no open ai window: open one with `dcmeter window start --kind ai`\n")
    general = open_window(env, "general")
    code, err = cli(capsys, "run", "--window", str(general), *argv[1:])
    assert code == 1 and err == (
        f"dcmeter: window {general} is general and open: runs need an open ai window\n")
    code, err = cli(capsys, "run", "--window", "99", *argv[1:])
    assert code == 1 and err == "dcmeter: no window 99\n"
    a, b = open_window(env), open_window(env)
    code, err = cli(capsys, *argv)
    assert code == 1 and err == (
        f"dcmeter: 2 open ai windows ({b}, {a}): choose one with --window ID\n")

    monkeypatch.setenv("DCMETER_TOKEN", env.tokens["reader"])
    code, err = cli(capsys, "run", "--window", str(a), *argv[1:])
    assert code == 1 and err.count("\n") == 1 and "(403)" in err and "reader" in err

    monkeypatch.delenv("DCMETER_TOKEN")
    code, err = cli(capsys, "run", "--window", str(a), *argv[1:])
    assert code == 1 and err.count("\n") == 1
    assert err.startswith("dcmeter: no bearer token") and "(401)" in err
    assert not marker.exists()  # the workload never ran
    assert runs(env, a) == []

    code, err = cli(capsys, "run", "--phase", "infer")
    assert code == 2 and err == "dcmeter: run: give --model, -- COMMAND (or --resend FILE)\n"


@pytest.fixture
def child_env(collector: Collector, tmp_path: Path) -> Iterator[dict[str, str]]:
    """The environment of a `dcmeter` child process pointed at the collector."""
    yield {**os.environ, "PYTHONPATH": str(ROOT), "DCMETER_COLLECTOR": collector.url,
           "DCMETER_TOKEN": collector.tokens["engineer"], "MARKER": str(tmp_path / "started"),
           "SLEEP_S": "30"}


def test_sigterm_is_forwarded_to_the_workload(
    collector: Collector, child_env: dict[str, str], workload: list[str], tmp_path: Path,
) -> None:
    wid = open_window(collector)
    exe = ROOT / ".venv" / "bin" / "dcmeter"
    proc = subprocess.Popen(
        [str(exe), "run", "--phase", "train", "--model", "llama2-7b", "--repeat", "3",
         "--tokens", "2048", "--", *workload],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=child_env,
        cwd=tmp_path,
    )
    try:
        deadline = time.monotonic() + 20
        while not (tmp_path / "started").exists():
            assert time.monotonic() < deadline, "the workload did not start"
            time.sleep(0.02)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 1 and "Traceback" not in err
    assert err.splitlines()[-1] == (
        f"dcmeter: window {wid}, train llama2-7b: 1 of 3 run(s) recorded;"
        " failed: repetition 1 (killed by SIGTERM); stopped by SIGTERM")
    (r,) = runs(collector, wid)
    assert r["exit_status"] == -signal.SIGTERM and duration(r) < 20
