"""A stub libnvidia-ml.so.1 for testing the nvml source over the real pynvml bindings.

`build_stub` compiles tests/peers/nvml_stub.c with gcc. The bindings load the library once
per process and keep it, so every test runs the source in a fresh Python subprocess with
LD_LIBRARY_PATH pointing at the stub (`NvmlStub.drive`, `NvmlStub.run_cli`). The stub reads
the GPUs it pretends to have from a state file on every call (`StubState`), so a test can
change values between two reads of one source.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
STUB_SOURCE = Path(__file__).with_name("nvml_stub.c")
LIBRARY_NAME = "libnvidia-ml.so.1"
SUBPROCESS_TIMEOUT_S = 60


def build_stub(out_dir: Path) -> Path:
    """Compile the stub into out_dir/libnvidia-ml.so.1; return out_dir."""
    gcc = shutil.which("gcc")
    if gcc is None:
        raise RuntimeError("gcc is not installed: it builds the NVML stub (apt-get install gcc)")
    out_dir.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [gcc, "-shared", "-fPIC", "-O2", "-Wall", "-Wextra", "-Werror", "-o",
         str(out_dir / LIBRARY_NAME), str(STUB_SOURCE)],
        check=True, capture_output=True, text=True,
    )
    return out_dir


@dataclass
class StubGpu:
    """One pretended GPU; a quantity left None is NVML_ERROR_NOT_SUPPORTED."""

    uuid: str
    name: str = "NVIDIA H100 80GB HBM3"
    serial: str | None = None  # nvmlDeviceGetSerial; None: NVML_ERROR_NOT_SUPPORTED
    power_mw: int | None = None  # nvmlDeviceGetPowerUsage
    power_avg_mw: int | None = None  # field 185
    power_instant_mw: int | None = None  # field 186
    energy_mj: int | None = None  # nvmlDeviceGetTotalEnergyConsumption
    util_gpu: int | None = None
    util_mem: int | None = None
    lost: bool = False  # every call on it returns NVML_ERROR_GPU_IS_LOST
    hang_ms: int = 0  # nvmlDeviceGetUtilizationRates blocks this long
    # call or field -> NVML return code: handle name uuid serial power power_avg power_instant
    # energy util fields
    errors: dict[str, int] = field(default_factory=dict)


@dataclass
class StubState:
    """What the stub library pretends: driver, init result and GPUs."""

    gpus: list[StubGpu] = field(default_factory=list)
    driver: str = "550.54.15"
    init_error: int = 0  # nvmlInit returns this (9: driver not loaded)
    count_error: int = 0

    def text(self) -> str:
        """The state file's text (see nvml_stub.c)."""
        lines = [
            f"driver {self.driver}",
            f"init_error {self.init_error}",
            f"count {len(self.gpus)}",
            f"count_error {self.count_error}",
        ]
        for i, g in enumerate(self.gpus):
            lines += [f"gpu.{i}.name {g.name}", f"gpu.{i}.uuid {g.uuid}"]
            if g.serial is not None:
                lines.append(f"gpu.{i}.serial {g.serial}")
            for key in ("power_mw", "power_avg_mw", "power_instant_mw", "energy_mj",
                        "util_gpu", "util_mem"):
                value = getattr(g, key)
                if value is not None:
                    lines.append(f"gpu.{i}.{key} {value}")
            if g.lost:
                lines.append(f"gpu.{i}.lost 1")
            if g.hang_ms:
                lines.append(f"gpu.{i}.hang_ms {g.hang_ms}")
            lines += [f"gpu.{i}.error.{q} {code}" for q, code in g.errors.items()]
        return "\n".join(lines) + "\n"

    def write(self, path: Path) -> None:
        """Replace the state file at once, so the stub never reads half a file."""
        tmp = path.with_suffix(".tmp")
        tmp.write_text(self.text())
        os.replace(tmp, path)


@dataclass
class NvmlStub:
    """The compiled stub plus one test's state file and call log."""

    lib_dir: Path
    work_dir: Path

    @property
    def state_file(self) -> Path:
        """The file the stub reads its GPUs from."""
        return self.work_dir / "nvml-state.txt"

    @property
    def call_log(self) -> Path:
        """The stub appends the name of every called NVML function here."""
        return self.work_dir / "nvml-calls.log"

    def write(self, state: StubState) -> None:
        """Set what the stub pretends from now on."""
        state.write(self.state_file)

    def env(self, lib_dir: Path | None = None) -> dict[str, str]:
        """Environment of a subprocess that loads the stub (or whatever lib_dir holds)."""
        env = dict(os.environ)
        env["LD_LIBRARY_PATH"] = str(lib_dir or self.lib_dir)
        env["DCMETER_NVML_STUB"] = str(self.state_file)
        env["DCMETER_NVML_STUB_LOG"] = str(self.call_log)
        env["PYTHONPATH"] = str(ROOT)
        return env

    def drive(
        self, config: dict[str, Any], steps: list[tuple[Any, ...]], lib_dir: Path | None = None
    ) -> dict[str, Any]:
        """Run one NvmlSource through `steps` in a fresh process; return its results and logs.

        Steps: ("read",), ("read", timeout_s) bounded like the Poller bounds it,
        ("wait_idle",) until the source's worker thread is idle, ("state", StubState),
        ("advance", seconds) of the source's monotonic clock, ("close",). The result has `results` (one per read: `readings` or
        `error` and `message`, plus the NVML `calls` made since the previous step, and a
        last entry with the `calls` of closing the source) and `logs` (structlog events).
        """
        program = {
            "config": {"type": "nvml", "id": "gpus", **config},
            "state_file": str(self.state_file),
            "call_log": str(self.call_log),
            "steps": [
                ["state", s[1].text()] if s[0] == "state" else list(s) for s in steps
            ],
        }
        proc = subprocess.run(
            [sys.executable, "-c", "from tests.peers.nvml import drive_main; drive_main()"],
            input=json.dumps(program), capture_output=True, text=True, cwd=ROOT,
            env=self.env(lib_dir), timeout=SUBPROCESS_TIMEOUT_S,
        )
        assert proc.returncode == 0, f"driver failed:\n{proc.stdout}\n{proc.stderr}"
        result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
        return result

    def run_python(self, code: str, lib_dir: Path | None = None) -> subprocess.CompletedProcess[str]:
        """Run a Python snippet in a fresh process that loads the stub (or lib_dir)."""
        return subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
            env=self.env(lib_dir), timeout=SUBPROCESS_TIMEOUT_S,
        )

    def run_cli(
        self, config_toml: str, *args: str, lib_dir: Path | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run `dcmeter agent once -c FILE --json` (the venv's console script) with the stub."""
        dcmeter = Path(sys.executable).with_name("dcmeter")
        assert dcmeter.exists(), f"{dcmeter} missing: pip install -e . into the venv"
        config = self.work_dir / "agent.toml"
        config.write_text(config_toml)
        return subprocess.run(
            [str(dcmeter), "agent", "once", "-c", str(config), "--json", *args],
            capture_output=True, text=True, cwd=self.work_dir, env=self.env(lib_dir),
            timeout=SUBPROCESS_TIMEOUT_S,
        )


def drive_main() -> None:
    """Subprocess side of `NvmlStub.drive`: read a program from stdin, print one JSON line."""
    import asyncio

    from structlog.testing import capture_logs

    from dcmeter.agent.sources import SourceError
    from dcmeter.agent.sources.nvml import NvmlConfig, NvmlSource

    program = json.load(sys.stdin)
    state_file, call_log = Path(program["state_file"]), Path(program["call_log"])
    now = [1000.0]
    source = NvmlSource(NvmlConfig.model_validate(program["config"]), monotonic=lambda: now[0])
    seen_calls = 0

    def calls_since_last() -> list[str]:
        nonlocal seen_calls
        lines = call_log.read_text().splitlines() if call_log.exists() else []
        new, seen_calls = lines[seen_calls:], len(lines)
        return new

    async def run() -> list[dict[str, Any]]:
        results: list[dict[str, Any]] = []
        for step in program["steps"]:
            kind = step[0]
            if kind == "state":
                tmp = state_file.with_suffix(".tmp")
                tmp.write_text(step[1])
                os.replace(tmp, state_file)
            elif kind == "advance":
                now[0] += float(step[1])
            elif kind == "close":
                await source.close()
            elif kind == "wait_idle":
                pending = source._pending
                if pending is not None:
                    await asyncio.wrap_future(pending)
            elif kind == "read":
                entry: dict[str, Any]
                try:
                    readings = await asyncio.wait_for(source.read(), step[1] if len(step) > 1 else None)
                except SourceError as exc:
                    entry = {"error": type(exc).__name__, "message": str(exc)}
                except TimeoutError:
                    entry = {"error": "TimeoutError", "message": ""}
                else:
                    entry = {"readings": [
                        {"metric": r.metric.name, "value": r.value, "unit": r.metric.unit,
                         "kind": r.metric.kind, "modulus": r.metric.modulus,
                         "labels": dict(r.labels), "ts_ns": r.ts_ns}
                        for r in readings
                    ]}
                entry["calls"] = calls_since_last()
                results.append(entry)
            if kind != "read":
                calls_since_last()  # calls of a step other than a read belong to no read
        await source.close()
        results.append({"closed": True, "calls": calls_since_last()})
        return results

    with capture_logs() as logs:
        results = asyncio.run(run())
    info = {"id": source.info.id, "protocol": source.info.protocol,
            "labels": dict(source.info.labels)}
    print(json.dumps({"results": results, "logs": logs, "info": info,
                      "device": dict(source.info.device)}, default=str))
