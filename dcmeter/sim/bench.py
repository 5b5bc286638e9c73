"""A simulated power calibration bench: servers whose load a file sets, planted DCMI errors,
and a reference power analyser (Modbus) with its own small known error.

Opt-in through the `[calibration]` table of a simulate file. The servers under calibration
leave their swing: their load u (0..1) is read from `load_file`, so a calibration driver sets
a load point by writing one number there. Their input power stays exact,
`P = idle + (max - idle)·u` (W), and the site's meters keep seeing it. What the instruments
report is not exact, on purpose:

- each server's BMC reports over DCMI `round(P·(1 + g) + o)` W (g `dcmi_gain_error`, o
  `dcmi_offset_w`; whole watts, as DCMI carries them; Python's round, half to even, as the
  simulated BMC encodes);
- the analyser measures the sum ΣP of the servers under calibration with gain error a
  (`analyser_gain_error`): power `ΣP·(1 + a)` W, energy `(1 + a)·∫ΣP dt` from the start.

So the planted error of one server's DCMI reading against the analyser is
`E = P(1 + g) + o - P(1 + a) = P(g - a) + o` before DCMI's rounding (`BenchTruth`).

The load is piecewise constant in time, and every integral is the exact sum over its steps.
The simulator looks at the file (its mtime and size) on every reading of a bench device; a
changed value takes effect from the previous look, the last moment any reading was taken
with the old value: so the reading that sees the change shows it, and no value already
reported changes afterwards.
"""

from __future__ import annotations

import bisect
import dataclasses
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import structlog
from pydantic import BaseModel, ConfigDict, Field, field_validator

from dcmeter.agent.sources.modbus_profiles import PROFILES
from dcmeter.base.configfile import ConfigError
from dcmeter.sim.site import SimSite

log = structlog.get_logger(__name__)

ANALYSER_NAME = "analyser-001"
# The metrics the analyser's profile must map (what the bench serves).
ANALYSER_METRICS = ("power_w", "energy_import_kwh")


class SimCalibration(BaseModel):
    """`[calibration]` of a simulate file: the power calibration bench."""

    model_config = ConfigDict(extra="forbid")

    servers: list[str] = Field(
        min_length=1, description="the servers under calibration, e.g. ['server-0001']"
    )
    load_file: Path = Field(description="their load 0..1, one plain number, re-read on change")
    initial_load: float = Field(
        default=0.0, ge=0, le=1, description="the load until the file is first read"
    )
    dcmi_gain_error: float = Field(default=0.0, gt=-1, lt=1, description="g: BMC reads P(1+g)+o")
    dcmi_offset_w: float = Field(default=0.0, description="o (W)")
    analyser_profile: str = Field(
        default="eastron_sdm630", description="the reference analyser's Modbus profile"
    )
    analyser_gain_error: float = Field(
        default=0.0, gt=-1, lt=1, description="a: the analyser reads ΣP(1+a)"
    )
    analyser_device_id: int = Field(default=1, ge=1, le=247)
    analyser_serial: str = Field(default="SIM-AN-0001", min_length=1)

    @field_validator("servers")
    @classmethod
    def _distinct(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError(f"servers are listed twice: {value}")
        return value

    @field_validator("analyser_profile")
    @classmethod
    def _power_and_energy(cls, value: str) -> str:
        fits = [name for name, regs in PROFILES.items()
                if set(ANALYSER_METRICS) <= {r.metric for r in regs}]
        if value not in fits:
            raise ValueError(
                f"analyser_profile {value!r} is not a profile with active power and energy "
                f"registers; valid: {', '.join(fits)}"
            )
        return value


@dataclass
class FileLoad:
    """A load (0..1) set by a file: piecewise constant, with its exact integral from t0.

    `at(t)` and `integral(t)` first look at the file (its mtime and size); a changed file is
    re-read and its value takes effect from the previous look on (module docstring). An absent
    file, or one that does not hold a number in 0..1, keeps the last load and is logged once
    per problem (until a good read).
    """

    path: Path
    t0: float
    initial: float = 0.0
    clock: Callable[[], float] = time.time
    _starts: list[float] = field(default_factory=list)  # epoch s of each step
    _loads: list[float] = field(default_factory=list)  # its load
    _area: list[float] = field(default_factory=list)  # the integral from t0 to its start (s)
    _seen: tuple[int, int] | None = None  # (mtime_ns, size) of the last file read
    _complaint: str | None = None
    _looked: float = 0.0  # clock of the last look at the file (epoch s)

    def __post_init__(self) -> None:
        self._starts, self._loads, self._area = [self.t0], [self.initial], [0.0]
        self._looked = self.t0
        self.refresh()

    @property
    def current(self) -> float:
        """The load in effect now (after the last refresh)."""
        return self._loads[-1]

    def refresh(self) -> None:
        """Look at the file; a new valid value starts a new step at the previous look."""
        previous, self._looked = self._looked, max(self.clock(), self._looked)
        try:
            st = self.path.stat()
            stamp = (st.st_mtime_ns, st.st_size)
            if stamp == self._seen:
                return
            text = self.path.read_text()
        except OSError as e:
            self._complain(f"cannot read it ({e.strerror or type(e).__name__})")
            return
        self._seen = stamp
        try:
            value = float(text.strip())
        except ValueError:
            self._complain(f"{text.strip()[:40]!r} is not a number")
            return
        if not (math.isfinite(value) and 0 <= value <= 1):
            self._complain(f"{value} is outside 0..1")
            return
        self._complaint = None
        self._step(max(previous, self._starts[-1]), value)

    def _complain(self, why: str) -> None:
        if why != self._complaint:  # once per problem, not once per reading
            self._complaint = why
            log.warning("sim_bench_load_file_unusable", path=str(self.path), reason=why,
                        keeping=self.current)

    def _step(self, t: float, value: float) -> None:
        if value == self._loads[-1]:
            return
        area = self._area[-1] + self._loads[-1] * (t - self._starts[-1])
        if t == self._starts[-1]:  # two values at one instant: the later wins
            self._loads[-1] = value
            return
        self._starts.append(t)
        self._loads.append(value)
        self._area.append(area)

    def at(self, t: float) -> float:
        """The load at `t` (the step in effect then)."""
        self.refresh()
        i = max(bisect.bisect_right(self._starts, t) - 1, 0)
        return self._loads[i]

    def integral(self, t: float) -> float:
        """The integral of the load from t0 to `t` (s), exact over the steps."""
        self.refresh()
        i = max(bisect.bisect_right(self._starts, t) - 1, 0)
        return self._area[i] + self._loads[i] * (t - self._starts[i])


@dataclass(frozen=True, slots=True)
class BenchTruth:
    """What the bench's instruments show at a steady load u (W), and the planted error.

    `power_w` is one server's true input P, `dcmi_w` what its BMC reports (whole W),
    `analyser_w` what the analyser reports for the `servers` servers together, `error_w` the
    planted error of the servers' DCMI readings summed against the analyser
    (Σ DCMI - analyser), `planted_error_w` the same before DCMI's rounding,
    `servers`·(P(g - a) + o), and `relative_error` error_w / analyser_w (None at 0 W).
    """

    load: float
    power_w: float
    dcmi_w: int
    analyser_w: float
    error_w: float
    planted_error_w: float
    relative_error: float | None


def bench_truth(calibration: SimCalibration, idle_w: float, max_w: float, u: float) -> BenchTruth:
    """The bench at load u with every server under calibration at idle_w..max_w (W)."""
    n = len(calibration.servers)
    g, o = calibration.dcmi_gain_error, calibration.dcmi_offset_w
    a = calibration.analyser_gain_error
    p = idle_w + (max_w - idle_w) * u
    dcmi = dcmi_watts(p * (1 + g) + o)
    analyser = n * p * (1 + a)
    error = n * dcmi - analyser
    return BenchTruth(
        load=u, power_w=p, dcmi_w=dcmi, analyser_w=analyser, error_w=error,
        planted_error_w=n * (p * (g - a) + o),
        relative_error=error / analyser if analyser else None,
    )


def dcmi_watts(value: float) -> int:
    """A power as DCMI Get Power Reading carries it: whole W in 0..65535 (as bmc.py encodes)."""
    return min(max(round(value), 0), 0xFFFF)


def bench_site(site: SimSite, calibration: SimCalibration) -> SimSite:
    """The site with its servers under calibration on one load file instead of their swing.

    Raises ConfigError naming a listed server the site does not have.
    """
    names = [s.name for s in site.servers]
    unknown = [s for s in calibration.servers if s not in names]
    if unknown:
        shown = f"{names[0]} .. {names[-1]}" if names else "none: [site] servers = 0"
        raise ConfigError(
            f"key calibration.servers: {', '.join(unknown)} is not a simulated server "
            f"(valid: {shown})"
        )
    load = FileLoad(calibration.load_file, site.t0, calibration.initial_load)
    servers = tuple(
        dataclasses.replace(s, load=load) if s.name in calibration.servers else s
        for s in site.servers
    )
    return dataclasses.replace(site, servers=servers)
