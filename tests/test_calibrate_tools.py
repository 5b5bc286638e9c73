"""The reference tools as calibration drivers (issue 18): the real iperf3 over loopback, the
real fio on a temporary file, the example tokens workload; no tool is imitated."""

from __future__ import annotations

import json
import os
import shutil
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import ROOT, free_port

from dcmeter.cli.calibrate_drivers import DriverError
from dcmeter.cli.calibrate_fio import FioDriver, block_device
from dcmeter.cli.calibrate_iperf3 import Iperf3Driver
from dcmeter.cli.calibrate_tools import tool_driver
from dcmeter.cli.calibrate_workload import WorkloadDriver
from dcmeter.cli.client import ENV_TOKEN
from dcmeter.cli.run_records import read_report
from dcmeter.collectors.evaluation.calibration_plan import Plan
from dcmeter.collectors.evaluation.jsonl import parse_rfc3339

WORKLOAD = ROOT / "contrib" / "calibration" / "tokens_workload.py"
needs_iperf3 = pytest.mark.skipif(shutil.which("iperf3") is None, reason="iperf3 not installed")
needs_fio = pytest.mark.skipif(shutil.which("fio") is None, reason="fio not installed")


def make_plan(kind: str, points: list[dict[str, Any]], *, quantity: str, settle: float = 1.0,
              dwell: float = 2.0, repetitions: int = 1, **driver: Any) -> Plan:
    """A plan whose reference is the tool `kind` (and its driver)."""
    instrument: dict[str, Any] = (
        {"kind": "run", "window": 7} if kind == "workload"
        else {"kind": "series", "source": "host", "metric": "if_out_octets"})
    return Plan.model_validate({
        "calibration": {"quantity": quantity, "settle_s": settle, "dwell_s": dwell,
                        "repetitions": repetitions},
        "instrument": instrument,
        "reference": {"kind": kind, "name": kind},
        "driver": {"kind": kind, **driver},
        "points": points,
    })


def one_line(exc: pytest.ExceptionInfo[DriverError]) -> str:
    text = str(exc.value)
    assert text and "\n" not in text and "Traceback" not in text
    return text


# -- iperf3 -------------------------------------------------------------------------------------


@pytest.fixture
def iperf3_plan() -> Plan:
    return make_plan("iperf3", [{"label": "50 Mbit/s", "rate": "50M"},
                                {"label": "200 Mbit/s", "rate": "200M"}],
                     quantity="network", port=free_port())


@needs_iperf3
def test_iperf3_two_rates_reference_is_received_rate(iperf3_plan: Plan) -> None:
    driver = tool_driver(iperf3_plan, None)
    assert isinstance(driver, Iperf3Driver)
    try:
        # iperf3 -b: decimal prefixes, 50M = 50e6 bit/s = 0.05 Gbit/s, 200M = 0.2 Gbit/s.
        for point, target in zip(iperf3_plan.points, (0.05, 0.2), strict=True):
            before = time.time()
            m = driver.measure(point, 1)
            after = time.time()
            d = m.detail
            assert d["tool"] == "iperf3" and d["version"].startswith("iperf 3")
            assert d["target_rate"] == point.rate
            assert d["target_bits_per_second"] == target * 1e9
            # iperf3 paces to the target on average since the start: over 2 s the sum is
            # within a few % (3.5 % seen on a busy machine: a stall, then a catch-up burst).
            assert m.reference == pytest.approx(target, rel=0.05)
            # The reference is the JSON's received rate: equal to its bits_per_second, and to
            # its bytes × 8 / seconds (two other fields of sum_received).
            assert m.reference == d["bits_per_second"] / 1e9
            assert d["bytes"] * 8 / d["seconds"] / 1e9 == pytest.approx(m.reference, rel=1e-6)
            # The dwell: launch + 1 omitted second .. + the measured seconds (≈ -t 2).
            assert (d["omit_s"], d["time_s"]) == (1, 2)
            assert m.end - m.start == pytest.approx(d["seconds"], abs=1e-6)  # epoch float: ~0.2 µs
            assert d["seconds"] == pytest.approx(2.0, abs=0.1)
            assert before + 1 <= m.start and m.end <= after
            assert m.indicated is None and m.run is None
    finally:
        driver.close()
    assert driver.server is not None and driver.server.poll() is not None
    with socket.socket() as s:  # the server let go of its port (its closed connections may
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # linger in TIME_WAIT)
        s.bind(("127.0.0.1", iperf3_plan.driver.port))  # a listener there would refuse it
        s.listen()


@needs_iperf3
def test_iperf3_server_gone_is_one_line(iperf3_plan: Plan) -> None:
    driver = Iperf3Driver(iperf3_plan)
    try:
        driver.measure(iperf3_plan.points[0], 1)  # starts the server
        assert driver.server is not None
        driver.server.kill()
        driver.server.wait()
        with pytest.raises(DriverError) as exc:
            driver.measure(iperf3_plan.points[0], 2)  # the port is closed now
        text = one_line(exc)
        assert "50 Mbit/s" in text and f"127.0.0.1:{iperf3_plan.driver.port}" in text
        assert "refused" in text
    finally:
        driver.close()


@needs_iperf3
def test_iperf3_port_taken_is_one_line(iperf3_plan: Plan) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", iperf3_plan.driver.port))
        s.listen()
        driver = Iperf3Driver(iperf3_plan)
        with pytest.raises(DriverError) as exc:
            driver.measure(iperf3_plan.points[0], 1)
        driver.close()
    text = one_line(exc)
    assert text.startswith(f"iperf3 server on 127.0.0.1:{iperf3_plan.driver.port}: ")
    assert "in use" in text


@pytest.mark.parametrize("kind", ["iperf3", "fio", "workload"])
def test_missing_tool_is_one_line(kind: str, tmp_path: Path,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty folder: no tool on it
    extra: dict[str, Any] = {"command": ["tokens-workload-absent"], "model": "m"} \
        if kind == "workload" else {}
    plan = make_plan(kind, [{"label": "p", "rate": "1M"}],
                     quantity={"iperf3": "network", "fio": "storage"}.get(kind, "inference"),
                     **extra)
    with pytest.raises(DriverError) as exc:
        tool_driver(plan, lambda body: 1)
    name = extra["command"][0] if extra else kind
    assert one_line(exc).startswith(f"driver {name}: {name} not found on PATH")


# -- fio ----------------------------------------------------------------------------------------


def disk_writes() -> dict[str, int]:
    """Bytes written per /proc/diskstats entry (field 10: sectors written, 512 B each)."""
    out: dict[str, int] = {}
    for line in Path("/proc/diskstats").read_text().splitlines():
        f = line.split()
        out[f[2]] = int(f[9]) * 512
    return out


@pytest.fixture
def fio_dir(tmp_path: Path) -> Iterator[Path]:
    if block_device(tmp_path) is None:
        pytest.skip(f"{tmp_path} is on no block device (tmpfs?)")
    yield tmp_path


@needs_fio
def test_fio_rate_and_the_disk_behind_the_file(fio_dir: Path) -> None:
    target = fio_dir / "cal.dat"
    plan = make_plan("fio", [{"label": "20 MiB/s", "rate": "20m"}], quantity="storage",
                     filename=str(target), size="32M")
    driver = tool_driver(plan, None)
    assert isinstance(driver, FioDriver)
    device = driver.device
    assert device is not None and device == block_device(fio_dir)
    before_counts = disk_writes()
    before = time.time()
    try:
        m = driver.measure(plan.points[0], 1)
    except DriverError as exc:
        if "O_DIRECT" in str(exc) or "Invalid argument" in str(exc):
            pytest.skip(f"the file system refuses direct I/O: {exc}")
        raise
    after = time.time()
    grown = {k: v - before_counts.get(k, 0) for k, v in disk_writes().items()}
    d = m.detail
    # fio's rate 20m: kb_base 1024 by default, so 20 × 1024² = 20 971 520 B/s.
    assert d["bw_bytes"] == pytest.approx(20_971_520, rel=0.03)
    assert m.reference == d["bw_bytes"] * 8 / 1e9
    assert d["io_bytes"] / (d["runtime_ms"] / 1000) == pytest.approx(d["bw_bytes"], rel=0.01)
    assert d["runtime_ms"] == pytest.approx(2000, abs=50)
    assert m.end - m.start == pytest.approx(d["runtime_ms"] / 1000, abs=1e-6)
    # The dwell lies after the launch plus the 1 s ramp, and ends before fio exited.
    assert before + 1 <= m.start and m.end <= after
    # The disk found for the folder is a /proc/diskstats entry whose write counter grew by at
    # least what fio wrote with O_DIRECT in the dwell (the ramp's writes come on top).
    assert device in grown and grown[device] >= d["io_bytes"]
    assert d["device"] == device and d["version"].startswith("fio-")
    assert target.exists()
    driver.close()
    assert not target.exists()


@needs_fio
def test_fio_refuses_to_overwrite_a_file(tmp_path: Path) -> None:
    target = tmp_path / "precious.dat"
    target.write_text("keep me")
    plan = make_plan("fio", [{"label": "p", "rate": "1m"}], quantity="storage",
                     filename=str(target))
    with pytest.raises(DriverError) as exc:
        tool_driver(plan, None)
    assert str(target) in one_line(exc) and target.read_text() == "keep me"


@needs_fio
def test_fio_failures_are_one_line(tmp_path: Path) -> None:
    plan = make_plan("fio", [{"label": "p", "rate": "1m"}], quantity="storage",
                     filename=str(tmp_path / "no-such-dir" / "f.dat"))
    with pytest.raises(DriverError) as exc:
        FioDriver(plan)
    assert one_line(exc) == (f"driver fio: filename {tmp_path}/no-such-dir/f.dat: no folder"
                             f" {tmp_path}/no-such-dir")
    # fio itself refuses a block size it cannot read.
    plan = make_plan("fio", [{"label": "p", "rate": "1m"}], quantity="storage",
                     filename=str(tmp_path / "f.dat"), bs="lots", settle=0, dwell=1)
    driver = FioDriver(plan)
    with pytest.raises(DriverError) as exc:
        driver.measure(plan.points[0], 1)
    driver.close()
    assert one_line(exc).startswith(f"point 'p': fio on {tmp_path}/f.dat: ")
    assert not (tmp_path / "f.dat").exists()


def test_block_device_of_a_partition_is_its_disk(tmp_path: Path) -> None:
    dev = os.stat(tmp_path).st_dev
    node = Path(f"/sys/dev/block/{os.major(dev)}:{os.minor(dev)}")
    if not node.exists():
        pytest.skip("no block device under the temp folder")
    real = node.resolve()
    found = block_device(tmp_path)
    expected = real.parent.name if (real / "partition").exists() else real.name
    assert found == expected
    assert found in disk_writes()


# -- workload -----------------------------------------------------------------------------------


def workload_plan(*args: str, repetitions: int = 2) -> Plan:
    return make_plan(
        "workload",
        [{"label": "slow start", "command": ["--startup", "0.3"]}, {"label": "warm"}],
        quantity="inference", repetitions=repetitions, model="tokens-demo",
        command=[sys.executable, str(WORKLOAD), "--tokens", "200", "--rate", "400", *args])


def printed_reports(text: str) -> list[dict[str, Any]]:
    return [json.loads(x) for x in text.splitlines() if x.startswith("{")]


def test_workload_posts_runs_and_reads_the_framework_figure(
        capfd: pytest.CaptureFixture[str]) -> None:
    plan = workload_plan()
    posted: list[dict[str, Any]] = []

    def post_run(body: dict[str, Any]) -> int:
        posted.append(body)
        return 100 + len(posted)

    driver = tool_driver(plan, post_run)
    assert isinstance(driver, WorkloadDriver)
    measured = []
    try:
        for point in plan.points:
            for rep in (1, 2):
                before = time.time()
                measured.append((point, rep, driver.measure(point, rep), before, time.time()))
    finally:
        driver.close()
    reports = printed_reports(capfd.readouterr().out)  # what the workload wrote, in order
    assert len(reports) == len(posted) == 4
    for i, ((point, rep, m, before, after), body, report) in enumerate(
            zip(measured, posted, reports, strict=True)):
        # The run as `dcmeter run` posts it; repetition = point index × 2 + repetition.
        index = plan.points.index(point)
        assert body["phase"] == "infer" and body["model"] == "tokens-demo"
        assert body["repetition"] == index * 2 + rep and body["exit_status"] == 0
        assert body["tokens"] == report["tokens"] == 200
        assert m.run == 101 + i
        # The reference: the workload's tokens over its own generation loop's seconds (the
        # same float: JSON keeps a float's shortest repr exactly).
        assert m.reference == 200 / report["elapsed_s"]
        assert m.detail["elapsed_s"] == report["elapsed_s"]
        # 200 tokens at 400 tokens/s: the loop takes 0.5 s, a little more on a busy machine.
        assert 0.5 <= report["elapsed_s"] < 1.5
        # The run's interval is the dwell; it holds the start-up and the loop.
        assert parse_rfc3339(body["start"]) == pytest.approx(m.start, abs=1e-6)
        assert parse_rfc3339(body["end"]) == pytest.approx(m.end, abs=1e-6)
        startup = 0.3 if point.label == "slow start" else 0.0
        assert m.end - m.start >= report["elapsed_s"] + startup
        assert before <= m.start and m.end <= after
        assert m.indicated is None


def test_workload_framework_rate_is_taken_as_given(capfd: pytest.CaptureFixture[str]) -> None:
    plan = workload_plan("--framework-rate", repetitions=1)
    driver = WorkloadDriver(plan, lambda body: 5)
    try:
        m = driver.measure(plan.points[1], 1)
    finally:
        driver.close()
    (report,) = printed_reports(capfd.readouterr().out)
    assert m.reference == report["framework_tokens_per_s"]
    assert m.run == 5


def test_workload_failure_posts_nothing(tmp_path: Path) -> None:
    script = tmp_path / "fails.py"
    script.write_text("import sys; sys.exit(3)\n")
    plan = make_plan("workload", [{"label": "p"}], quantity="training", model="m",
                     command=[sys.executable, str(script)])
    posted: list[dict[str, Any]] = []
    driver = tool_driver(plan, lambda body: posted.append(body) or 1)
    with pytest.raises(DriverError) as exc:
        driver.measure(plan.points[0], 1)
    driver.close()
    assert one_line(exc).endswith("exit 3; no run recorded") and posted == []


def test_workload_report_without_elapsed_is_refused(tmp_path: Path) -> None:
    script = tmp_path / "no_elapsed.py"
    script.write_text("import json, os\n"
                      "open(os.environ['DCMETER_RUN_REPORT'], 'w').write(json.dumps({'tokens': 5}))\n")
    plan = make_plan("workload", [{"label": "p"}], quantity="inference", model="m",
                     command=[sys.executable, str(script)])
    driver = WorkloadDriver(plan, lambda body: 1)
    with pytest.raises(DriverError) as exc:
        driver.measure(plan.points[0], 1)
    driver.close()
    assert "framework_tokens_per_s or elapsed_s" in one_line(exc)


def test_dcmeter_run_accepts_and_drops_the_framework_keys(tmp_path: Path) -> None:
    report = tmp_path / "r.json"
    report.write_text('{"tokens": 10, "elapsed_s": 0.5, "framework_tokens_per_s": 20}')
    assert read_report(report) == ({"tokens": 10.0}, None)
    report.write_text('{"tokens": 10, "elapsed_s": 0}')
    assert read_report(report) == ({}, "elapsed_s: expected a number > 0, got 0")


def test_workload_environment_is_dcmeter_runs(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_TOKEN, "secret-token")
    script = tmp_path / "env.py"
    script.write_text(
        "import json, os\n"
        "e = os.environ\n"
        "note = f\"{e['DCMETER_RUN_WINDOW']}/{e['DCMETER_RUN_REPETITION']}/\"\n"
        f"note += str({ENV_TOKEN!r} in e)\n"
        "json.dump({'tokens': 6, 'elapsed_s': 0.25, 'note': note},"
        " open(e['DCMETER_RUN_REPORT'], 'w'))\n")
    plan = make_plan("workload", [{"label": "a"}, {"label": "b"}], quantity="training",
                     model="m", repetitions=3, command=[sys.executable, str(script)])
    posted: list[dict[str, Any]] = []
    driver = WorkloadDriver(plan, lambda body: posted.append(body) or 9)
    try:
        m = driver.measure(plan.points[1], 2)
    finally:
        driver.close()
    # Window 7 (the instrument's), repetition 1 × 3 + 2 = 5, the token withheld; the
    # workload's own note is kept; 6 tokens / 0.25 s = 24 tokens/s.
    (body,) = posted
    assert body["note"] == "7/5/False" and body["phase"] == "train"
    assert body["repetition"] == 5 and m.reference == 24.0 and m.run == 9
