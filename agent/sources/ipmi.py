"""`ipmi` source: a server's input power from its BMC (DCMI, or SDR power sensors).

GB 40879 measurement point 8 (`it_input`): the IT equipment's own input power, as the
server's BMC measures it. Out of band over RMCP+ (`lanplus`, python-ipmi's native
`rmcpplus` interface) or in band through the host's BMC device (`local`, /dev/ipmi0 via
python-ipmi's `ipmidev` interface). pyipmi is imported only when a read needs it.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import structlog

from dcmeter.agent.samples import MetricSpec, Reading, SourceInfo, now_ns
from dcmeter.agent.sources import DeviceError, SourceError, TargetUnreachable
from dcmeter.agent.sources.ipmi_config import (
    IpmiSettings,
)
from dcmeter.agent.sources.ipmi_errors import CC_INVALID_COMMAND, translate
from dcmeter.agent.sources.ipmi_identity import device_identity
from dcmeter.agent.sources.ipmi_keepalive import KEEPER, Keeper

if TYPE_CHECKING:
    from pyipmi import Ipmi

log = structlog.get_logger("dcmeter.agent.ipmi")

POWER = MetricSpec("power_w", "W")
POWER_AVG = MetricSpec("power_avg_w", "W")
POWER_MIN = MetricSpec("power_min_w", "W")
POWER_MAX = MetricSpec("power_max_w", "W")
# DCMI's statistics reporting period: the time power_avg_w (and min/max) were taken over. A
# value, never a label: it changes (it grows after a BMC starts, some BMCs move it every
# poll) and a label is part of a series' identity (docs/sources.md).
POWER_AVG_PERIOD = MetricSpec("power_avg_period_s", "s")

DCMI_STATE_ACTIVE = 0x40  # Get Power Reading, reading-state byte (DCMI 1.5, table 6-16)
UNIT_WATTS = 6  # SDR sensor unit type code (IPMI v2.0, table 43-15)


class IpmiConfig(IpmiSettings):
    """A BMC target's settings (ipmi_config.py) and the source they make."""

    def build(self) -> IpmiSource:
        """Make the source this config describes (reads password_file now)."""
        return IpmiSource(self, self.read_password())


@functools.cache
def _quiet_session_class() -> type[Any]:
    """pyipmi's Session with a str() that leaves the password out (pyipmi logs it at debug);
    made once (a class per session cost ~2 KB each, 1.2 MB at 600 BMCs)."""
    from pyipmi.session import Session

    class QuietSession(Session):  # type: ignore[misc]
        def __str__(self) -> str:
            return f"Session(host={self.rmcp_host}, port={self.rmcp_port}, sid={self.sid:#x})"

    return QuietSession


def _quiet_session() -> Any:
    """A pyipmi Session whose str() leaves the password out."""
    return _quiet_session_class()()


class IpmiSource:
    """One BMC: DCMI Get Power Reading, or configured SDR power sensors where DCMI is missing.

    The session is opened on the first read (or by `prepare()`) and kept open between reads:
    the agent's one keep-alive thread (ipmi_keepalive.py) sends Get Device ID on it after
    `keep_alive_s` idle seconds so the BMC does not expire it. After a transport error the
    session is closed and, if it had worked before (a BMC reset), opened again at once
    within the same read; otherwise on the next read. Each request waits `timeout_s / 3`
    for its answer, so a dead BMC fails within the poll's timeout. A power reading the BMC
    marks "not active" raises DeviceError rather than reporting 0 W. `sessions_opened`
    counts sessions for diagnostics.
    """

    def __init__(
        self,
        config: IpmiConfig,
        password: str = "",
        clock: Callable[[], int] = now_ns,
        keeper: Keeper = KEEPER,
    ) -> None:
        labels = {"point": "it_input", "kind": "compute", **config.labels}
        local = config.interface == "local"
        address = str(config.device) if local else f"{config.host}:{config.port}"
        self.info = SourceInfo(config.id, "ipmi", address, labels, config.accuracy)
        self._config = config
        self._password = password
        self._clock = clock
        self._request_timeout_s = config.timeout_s / 3
        self._lock = threading.Lock()  # one thread at a time talks to the BMC
        self._ipmi: Ipmi | None = None
        self._dcmi: bool | None = None  # None until the BMC has answered Get Power Reading
        self._sdr: dict[str | int, Any] | None = None  # sensor ref -> SdrFullSensorRecord
        self.sessions_opened = 0
        self._identified: Any = None  # the session Get Device ID was sent on
        self._keeper = keeper
        self._last_used = time.monotonic()  # the last exchange with the BMC (monotonic, s)

    async def read(self) -> list[Reading]:
        """Read the BMC's power once (blocking pyipmi calls run in a worker thread)."""
        return await asyncio.to_thread(self._read_locked)

    async def prepare(self) -> None:
        """Open the session before the first tick (agent/startup.py), in a worker thread."""
        await asyncio.to_thread(self._prepare_locked)

    def _prepare_locked(self) -> None:
        with self._lock:
            try:
                self._session()
            finally:
                self._used()

    def _used(self) -> None:
        """Note an exchange with the BMC: any request keeps the session alive. (The keeper
        needs no word: a due time only moves later, and it looks again when the old one
        comes.)"""
        self._last_used = time.monotonic()

    def keep_alive_due(self) -> float:
        """When (time.monotonic(), s) the session will have been idle for keep_alive_s."""
        return self._last_used + self._config.keep_alive_s

    def keep_alive(self) -> None:
        """Send Get Device ID on an idle session (the keeper's thread calls this). A read
        in progress keeps the session alive itself; a failure drops the session, logged
        once, and the next read opens a new one."""
        if not self._lock.acquire(blocking=False):
            self._last_used = time.monotonic()  # a read is talking to the BMC now
            return
        try:
            ipmi = self._ipmi
            if ipmi is None or time.monotonic() < self.keep_alive_due():
                return
            try:
                ipmi.get_device_id()
            except Exception as exc:
                self._drop()
                log.info(
                    "IPMI keep-alive failed: the next read opens a new session",
                    source=self.info.id,
                    error=str(self._translate(exc, "keeping the session alive")),
                )
            finally:
                self._last_used = time.monotonic()
        finally:
            self._lock.release()

    def timeout_hint(self) -> str:
        """What no answer within timeout_s means for this BMC (the poller's message)."""
        if self._config.interface == "local":
            return "the BMC did not answer through the device: check the ipmi_si driver"
        return (
            "lanplus: check host, port (623), that the BMC is up and its LAN channel enabled,"
            " and an ACL/firewall between"
        )

    async def close(self) -> None:
        """Close the session and its socket (or the BMC device)."""
        await asyncio.to_thread(self._close_locked)

    def _read_locked(self) -> list[Reading]:
        with self._lock:
            try:
                return self._read_twice()
            finally:
                self._used()

    def _read_twice(self) -> list[Reading]:
        reused = self._ipmi is not None
        try:
            return self._read_once()
        except TargetUnreachable:
            self._drop()
            if not reused:
                raise
        # The kept session went stale (BMC reset): one more try on a fresh session.
        try:
            return self._read_once()
        except TargetUnreachable:
            self._drop()
            raise

    def _close_locked(self) -> None:
        with self._lock:
            self._drop(graceful=True)

    def _read_once(self) -> list[Reading]:
        ipmi = self._session()
        try:
            readings = None
            if self._dcmi is not False:
                readings = self._read_dcmi(ipmi)
            if readings is None:
                readings = self._read_sdr(ipmi)
            if self._identified is not ipmi:  # after the first good read of each session
                self._identify(ipmi)
            return readings
        except SourceError:
            raise
        except Exception as exc:
            from pyipmi.errors import CompletionCodeError

            if not isinstance(exc, CompletionCodeError):
                self._drop()  # a garbled or missing answer: start the next read afresh
            raise self._translate(exc, "reading") from exc

    def _identify(self, ipmi: Ipmi) -> None:
        """Get Device ID once per session (ipmi_identity.py): a new session may be a
        replaced BMC."""
        self._identified = ipmi
        device = device_identity(ipmi)
        if device != self.info.device:
            self.info = dataclasses.replace(self.info, device=device)

    def _session(self) -> Ipmi:
        if self._ipmi is not None:
            return self._ipmi
        import pyipmi
        import pyipmi.interfaces

        from dcmeter.agent.sources import ipmi_compat

        ipmi_compat.apply()
        cfg = self._config
        iface: Any
        if cfg.interface == "lanplus":
            iface = pyipmi.interfaces.create_interface(
                "rmcpplus",
                host_target_address=cfg.bmc_address,
                keep_alive_interval=0,  # no thread per session: ipmi_keepalive.py
                cipher_suite=cfg.cipher_suite,
            )
        else:
            iface = pyipmi.interfaces.create_interface(
                "ipmidev", port=str(cfg.device), timeout=self._request_timeout_s
            )
        ipmi = pyipmi.Ipmi(interface=iface, session=_quiet_session())
        ipmi.target = pyipmi.Target(ipmb_address=cfg.bmc_address)
        try:
            iface.open()
            if cfg.interface == "lanplus":
                ipmi.session.set_session_type_rmcp(cfg.host, port=cfg.port)
                ipmi.session.set_auth_type_user(cfg.username, self._password)
                ipmi.session.set_priv_level(cfg.privilege)
                iface.set_timeout(self._request_timeout_s)
                ipmi.session.establish()
        except Exception as exc:
            self._discard(ipmi, graceful=False)
            raise self._translate(exc, "opening a session") from exc
        self._ipmi = ipmi
        self._sdr = None  # a reset BMC may have renumbered its sensors
        self.sessions_opened += 1
        if cfg.interface == "lanplus" and cfg.keep_alive_s > 0:
            self._last_used = time.monotonic()
            self._keeper.add(self)
        return ipmi

    def _read_dcmi(self, ipmi: Ipmi) -> list[Reading] | None:
        """DCMI readings, or None when the BMC has no DCMI and SDR sensors are configured."""
        from pyipmi.errors import CompletionCodeError

        try:
            rsp = ipmi.get_power_reading(1)
        except CompletionCodeError as exc:
            if exc.cc != CC_INVALID_COMMAND:
                raise
            if not self._config.sdr_sensors:
                raise DeviceError(
                    f"{self.info.address}: the BMC has no DCMI (Get Power Reading: completion "
                    "code 0xC1, invalid command): list its power sensors in sdr_sensors "
                    "(`ipmitool sdr type 'Power Supply'` or `ipmitool sdr elist` shows names)"
                ) from exc
            self._dcmi = False
            log.info(
                "BMC has no DCMI, falls back to SDR sensors",
                source=self.info.id,
                sensors=[str(s) for s in self._config.sdr_sensors],
            )
            return None
        ts_ns = self._clock()
        self._dcmi = True
        if not rsp.reading_state & DCMI_STATE_ACTIVE:
            raise DeviceError(
                f"{self.info.address}: DCMI power reading not active (reading state "
                f"{rsp.reading_state:#04x}): the BMC is not measuring power now; check that "
                "the server is powered on and its power meter is enabled"
            )
        return [
            Reading(POWER, float(rsp.current_power), ts_ns),
            Reading(POWER_AVG, float(rsp.average_power), ts_ns),
            Reading(POWER_MIN, float(rsp.minimum_power), ts_ns),
            Reading(POWER_MAX, float(rsp.maximum_power), ts_ns),
            Reading(POWER_AVG_PERIOD, rsp.period / 1000.0, ts_ns),
        ]

    def _read_sdr(self, ipmi: Ipmi) -> list[Reading]:
        """The sum of the configured SDR power sensors as `power_w`."""
        records = self._sdr if self._sdr is not None else self._load_sdr(ipmi)
        total = 0.0
        for ref in self._config.sdr_sensors:
            rec = records[ref]
            rsp = ipmi.send_message_by_name(
                "GetSensorReading", sensor_number=rec.number, lun=rec.owner_lun
            )
            # Byte 2 of the answer: bit 5 set = reading unavailable, bit 6 clear = scanning
            # disabled (pyipmi names these bits initial_update_in_progress and
            # sensor_scanning_disabled, the latter meaning the opposite of its name).
            if rsp.config.initial_update_in_progress or not rsp.config.sensor_scanning_disabled:
                raise DeviceError(
                    f"{self.info.address}: SDR sensor {rec.device_id_string!r} has no reading "
                    "now (reading unavailable or scanning disabled): is the server powered on?"
                )
            value = rec.convert_sensor_raw_to_value(rsp.sensor_reading)
            total += float(value)
        ts_ns = self._clock()
        label = {"sdr_sensors": ",".join(str(s) for s in self._config.sdr_sensors)}
        return [Reading(POWER, total, ts_ns, label)]

    def _load_sdr(self, ipmi: Ipmi) -> dict[str | int, Any]:
        from pyipmi.sdr import SdrFullSensorRecord

        full = [r for r in ipmi.sdr_repository_entries() if isinstance(r, SdrFullSensorRecord)]
        found: dict[str | int, Any] = {}
        for ref in self._config.sdr_sensors:
            match = [r for r in full if ref in (r.device_id_string, r.number)]
            if not match:
                watts = [r.device_id_string for r in full if r.units_2 == UNIT_WATTS]
                raise DeviceError(
                    f"{self.info.address}: no analog SDR sensor {ref!r}; sensors in watts on "
                    f"this BMC: {', '.join(map(repr, watts)) or 'none'}"
                )
            rec = match[0]
            if rec.units_2 != UNIT_WATTS:
                raise DeviceError(
                    f"{self.info.address}: SDR sensor {ref!r} is in unit code {rec.units_2}, "
                    "not watts (6): name a power sensor in sdr_sensors"
                )
            if rec.owner_id != self._config.bmc_address:
                raise DeviceError(
                    f"{self.info.address}: SDR sensor {ref!r} belongs to controller "
                    f"{rec.owner_id:#04x}, not the BMC: only the BMC's own sensors are read"
                )
            found[ref] = rec
        self._sdr = found
        return found

    def _translate(self, exc: Exception, doing: str) -> SourceError:
        """Turn a pyipmi or OS exception into TargetUnreachable or DeviceError."""
        where = f"{self.info.address}: {doing}"
        return translate(exc, where, self._config, self._request_timeout_s)

    def _drop(self, graceful: bool = False) -> None:
        if self._ipmi is not None:
            self._keeper.remove(self)
            self._discard(self._ipmi, graceful)
            self._ipmi = None

    def _discard(self, ipmi: Ipmi, graceful: bool) -> None:
        """Close the session (best effort, briefly unless graceful) and the socket/device."""
        iface = ipmi.interface
        if not graceful:
            # Don't wait long for a BMC that just failed; only rmcp interfaces have this.
            with contextlib.suppress(Exception):
                iface.set_timeout(min(0.2, self._request_timeout_s))
        try:
            ipmi.session.close()
        except Exception as exc:  # the BMC may be gone; the socket is closed below anyway
            log.debug("closing the IPMI session failed", source=self.info.id, error=str(exc))
        finally:
            iface.close()
