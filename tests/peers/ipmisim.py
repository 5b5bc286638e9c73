"""OpenIPMI's ipmi_sim as a real BMC for tests: lanplus on 127.0.0.1, DCMI from a plug-in.

`build_plugin` compiles tests/peers/ipmi_dcmi_plugin.c with gcc; `IpmiSim` writes lan.conf
and the emulator command file into a work folder, starts `ipmi_sim -c lan.conf -f sim.emu
-s STATEDIR -n` on a free UDP port, waits until it answers an RMCP presence ping, and stops
it. The power the plug-in reports comes from a file (`set_power`), so a test changes it
live; the SDR power sensors read their raw values from files too (`set_sensor_raw`).

Accounts: `admin`/`secret` (administrator) and `reader`/`readpass` (user). ipmi_sim wants
the administrator privilege for DCMI (group extension) commands.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
PLUGIN_SOURCE = HERE / "ipmi_dcmi_plugin.c"

ADMIN = ("admin", "secret")
READER = ("reader", "readpass")


@dataclass(frozen=True)
class SdrSensor:
    """An analog SDR sensor served by the simulator: value = m * raw (in `unit_code`)."""

    number: int
    name: str
    m: int
    unit_code: int = 6  # watts
    sensor_type: int = 0x0B  # other units-based sensor


# Two PSU input sensors in watts and a temperature sensor (unit code 1, degrees C).
SENSORS = (
    SdrSensor(5, "PSU1 Input", 4),
    SdrSensor(6, "PSU2 Input", 2),
    SdrSensor(7, "Inlet Temp", 1, unit_code=1, sensor_type=0x01),
)


def build_plugin(out_dir: Path) -> Path:
    """Compile the DCMI plug-in into out_dir; return the .so path."""
    gcc = shutil.which("gcc")
    assert gcc, "gcc is missing (apt-get install gcc)"
    assert Path("/usr/include/OpenIPMI/mcserv.h").exists(), (
        "OpenIPMI headers are missing (apt-get install libopenipmi-dev)"
    )
    so = out_dir / "ipmi_dcmi_plugin.so"
    subprocess.run(
        [gcc, "-shared", "-fPIC", "-O2", "-Wall", "-Werror", "-o", str(so), str(PLUGIN_SOURCE)],
        check=True,
        capture_output=True,
    )
    return so


def free_udp_port() -> int:
    """A UDP port on loopback that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def full_sensor_record(sensor: SdrSensor, owner: int = 0x20) -> bytes:
    """An SDR Full Sensor Record (type 0x01, IPMI v2.0 table 43-1), linear, value = M * raw."""
    name = sensor.name.encode()
    fields = [
        (owner, 0x00, sensor.number),  # record key: owner, LUN, sensor number
        (0x15, 0x01),  # entity: power unit, instance 1
        (0x41, 0x40),  # initialisation: scanning; capabilities: auto re-arm
        (sensor.sensor_type, 0x01),  # sensor type; event/reading type: threshold
        (0,) * 6,  # assertion, deassertion and reading masks
        (0x00, sensor.unit_code, 0x00),  # units 1 (unsigned), base unit, modifier unit
        (0x00,),  # linearisation: linear
        (sensor.m & 0xFF, (sensor.m >> 2) & 0xC0),  # M (10 bits), tolerance
        (0, 0, 0, 0x00),  # B, accuracy, R and B exponents
        (0x00, 0, 0, 0),  # analog characteristics, nominal, normal max, normal min
        (0xFF, 0x00),  # sensor maximum, minimum reading
        (0,) * 6,  # thresholds
        (0, 0, 0, 0, 0),  # hysteresis (2), reserved (2), OEM
        (0xC0 | len(name),),  # ID string type/length: 8-bit ASCII
    ]
    body = bytes(b for group in fields for b in group) + name
    return bytes([0x00, 0x00, 0x51, 0x01, len(body)]) + body


class IpmiSim:
    """One ipmi_sim process serving one BMC on 127.0.0.1:`port` (UDP)."""

    def __init__(self, workdir: Path, plugin: Path | None, port: int | None = None) -> None:
        """Prepare workdir; `plugin` None serves a BMC without DCMI (stock ipmi_sim)."""
        self.workdir = workdir
        self.plugin = plugin
        self.port = port or free_udp_port()
        self.power_file = workdir / "power"
        self.state_dir = workdir / "state"
        self.proc: subprocess.Popen[bytes] | None = None
        workdir.mkdir(parents=True, exist_ok=True)
        self.set_power(250)
        for sensor in SENSORS:
            self.set_sensor_raw(sensor.number, 0)
        self._write_config()

    def set_power(
        self,
        current: int,
        minimum: int | None = None,
        maximum: int | None = None,
        average: int | None = None,
        period_ms: int = 1000,
        active: bool = True,
    ) -> None:
        """Set what the next DCMI Get Power Reading answers (watts, ms)."""
        values = [
            current,
            current if minimum is None else minimum,
            current if maximum is None else maximum,
            current if average is None else average,
            period_ms,
            int(active),
        ]
        tmp = self.power_file.with_suffix(".tmp")
        tmp.write_text(" ".join(map(str, values)) + "\n")
        os.replace(tmp, self.power_file)  # the plug-in never sees a half-written file

    def power_requests(self) -> int:
        """How many DCMI power readings the plug-in has answered."""
        log = self.power_file.with_name(self.power_file.name + ".log")
        return len(log.read_text().splitlines()) if log.exists() else 0

    def sensor_file(self, number: int) -> Path:
        """The file an SDR sensor's raw value is polled from."""
        return self.workdir / f"sensor{number}"

    def set_sensor_raw(self, number: int, raw: int) -> None:
        """Set an SDR sensor's raw byte (ipmi_sim polls the file every 100 ms)."""
        path = self.sensor_file(number)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(f"{raw}\n")
        os.replace(tmp, path)

    def _write_config(self) -> None:
        lines = [
            'name "dcmeter-test"',
            "set_working_mc 0x20",
            "startlan 1",
            f"  addr 127.0.0.1 {self.port}",
            "  priv_limit admin",
            *(
                f"  allowed_auths_{p} none md2 md5 straight"
                for p in ("callback", "user", "operator", "admin")
            ),
            "  guid a123456789abcdefa123456789abcdef",
            "endlan",
            f'user 2 true "{ADMIN[0]}" "{ADMIN[1]}" admin 10 none md2 md5 straight',
            f'user 3 true "{READER[0]}" "{READER[1]}" user 10 none md2 md5 straight',
        ]
        if self.plugin is not None:
            lines.append(f'loadlib "{self.plugin}" "{self.power_file}"')
        (self.workdir / "lan.conf").write_text("\n".join(lines) + "\n")
        emu = [
            "mc_setbmc 0x20",
            "mc_add 0x20 0 no-device-sdrs 0x23 9 8 0x9f 0x1291 0xf02",
        ]
        for s in SENSORS:
            record = " ".join(f"0x{b:02x}" for b in full_sensor_record(s))
            emu += [
                f"sensor_add 0x20 0 {s.number} {s.sensor_type:#04x} 0x01 "
                f'poll 100 file "{self.sensor_file(s.number)}"',
                f"main_sdr_add 0x20 {record}",
                f"sensor_set_event_support 0x20 0 {s.number} enable scanning none "
                + " ".join(["0" * 15] * 4),
            ]
        emu.append("mc_enable 0x20")
        (self.workdir / "sim.emu").write_text("\n".join(emu) + "\n")

    def start(self, timeout_s: float = 10.0) -> None:
        """Start ipmi_sim with a fresh state folder; return once it answers a ping."""
        exe = shutil.which("ipmi_sim")
        assert exe, "ipmi_sim is missing (apt-get install openipmi)"
        shutil.rmtree(self.state_dir, ignore_errors=True)  # users/SDRs persist there
        self.state_dir.mkdir()
        out = (self.workdir / "ipmi_sim.out").open("ab")
        self.proc = subprocess.Popen(
            [exe, "-c", "lan.conf", "-f", "sim.emu", "-s", str(self.state_dir), "-n"],
            cwd=self.workdir,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        out.close()
        deadline = time.monotonic() + timeout_s
        while not self._answers_ping():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                log = (self.workdir / "ipmi_sim.out").read_text(errors="replace")
                raise AssertionError(f"ipmi_sim did not come up on port {self.port}:\n{log}")
        self.wait_sensors()

    def wait_sensors(self, timeout_s: float = 10.0) -> None:
        """Wait until ipmi_sim has polled every sensor file once (first poll after 100 ms)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            out = self.ipmitool("sdr", "list", check=False)
            if "disabled" not in out and "PSU1 Input" in out:
                return
            time.sleep(0.05)
        raise AssertionError(f"ipmi_sim never polled its sensor files:\n{out}")

    def _answers_ping(self) -> bool:
        # RMCP header (v6, seq 0xff, class ASF) + ASF presence ping (IANA 4542, type 0x80).
        ping = bytes.fromhex("0600ff06000011be80000000")
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(0.1)
            try:
                s.sendto(ping, ("127.0.0.1", self.port))
                return len(s.recv(512)) > 0
            except OSError:  # timeout or ICMP port unreachable
                return False

    def stop(self) -> None:
        """Stop ipmi_sim (SIGTERM, then SIGKILL)."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def restart(self) -> None:
        """Stop and start again on the same port: a BMC reset (all sessions lost)."""
        self.stop()
        self.start()

    def ipmitool(self, *args: str, user: tuple[str, str] = ADMIN, check: bool = True) -> str:
        """Run Debian's ipmitool against this BMC over lanplus, cipher suite 3."""
        exe = shutil.which("ipmitool")
        assert exe, "ipmitool is missing (apt-get install ipmitool)"
        cmd = [exe, "-I", "lanplus", "-C", "3", "-H", "127.0.0.1", "-p", str(self.port)]
        cmd += ["-U", user[0], "-P", user[1], *args]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
        if check:
            assert done.returncode == 0, f"{' '.join(cmd)}: {done.stderr}"
        return done.stdout

    def raw_power_reading(self) -> dict[str, int]:
        """DCMI Get Power Reading through `ipmitool raw` (not its DCMI output, which has a
        formatting bug), decoded from the response bytes (DCMI 1.5, table 6-16)."""
        out = self.ipmitool("raw", "0x2c", "0x02", "0xdc", "0x01", "0x00", "0x00")
        data = bytes(int(b, 16) for b in re.findall(r"[0-9a-fA-F]{2}", out))
        assert len(data) == 18 and data[0] == 0xDC, out

        def u16(i: int) -> int:
            return int.from_bytes(data[i : i + 2], "little")

        return {
            "current": u16(1),
            "minimum": u16(3),
            "maximum": u16(5),
            "average": u16(7),
            "timestamp": int.from_bytes(data[9:13], "little"),
            "period_ms": int.from_bytes(data[13:17], "little"),
            "state": data[17],
        }

    def active_sessions(self) -> int:
        """The BMC's count of active sessions (Get Session Info), ipmitool's own included."""
        out = self.ipmitool("session", "info", "active")
        m = re.search(r"active sessions\s*:\s*(\d+)", out)
        assert m, out
        return int(m.group(1))
