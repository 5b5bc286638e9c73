"""`redfish` source: a chassis's input power (and energy) from its Redfish service (DMTF).

GB 40879 measurement point 8 (`it_input`) by default: the server's own input power as its
BMC measures it. Two resources carry it (DMTF DSP0268): the newer
`Chassis/{id}/EnvironmentMetrics` (`PowerWatts.Reading` W, `EnergykWh.Reading` kWh, next to
`PowerSubsystem`) and the classic `Chassis/{id}/Power` (`PowerControl[0].PowerConsumedWatts`
W, deprecated since Redfish 2020.4 but still what most BMCs serve). EnvironmentMetrics is
preferred where the chassis links it; the device map's `profile` says which was read.

The client is httpx (already the agent's HTTP client): DMTF's `redfish` library and `sushy`
are both synchronous over `requests`, and the agent reads every source on one event loop
(docs/sources.md, "redfish"). httpx is imported when the source first connects.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import structlog

from dcmeter.agent.samples import MetricSpec, Reading, SourceInfo, device_map, now_ns
from dcmeter.agent.sources import DeviceError, SourceError
from dcmeter.agent.sources.redfish_config import RedfishSettings
from dcmeter.agent.sources.redfish_http import RedfishHttp

if TYPE_CHECKING:
    import httpx

log = structlog.get_logger("dcmeter.agent.redfish")

POWER = MetricSpec("power_w", "W")
# The collector's default energy counter (site file `counter`); EnergykWh is cumulative and
# has no documented wrap, so a decrease is a reset (a replaced or reset BMC).
ENERGY = MetricSpec("energy_import_kwh", "kWh", "counter")

DEFAULT_SESSIONS = "/redfish/v1/SessionService/Sessions"


class RedfishConfig(RedfishSettings):
    """A Redfish target's settings (redfish_config.py) and the source they make."""

    def build(self) -> RedfishSource:
        """Make the source this config describes (reads password_file now)."""
        return RedfishSource(self, self.read_password())


@dataclasses.dataclass(frozen=True, slots=True)
class _Target:
    """What discovery found: the chassis and the resource its power is read from."""

    chassis: str  # the Chassis resource's URI
    uri: str  # EnvironmentMetrics or Power URI
    profile: str  # "EnvironmentMetrics" or "Power"
    fallback: str | None  # the Power URI when EnvironmentMetrics has no PowerWatts


def _link(body: dict[str, Any], *keys: str) -> str | None:
    """The `@odata.id` under body[keys[0]][keys[1]]…, or None."""
    cur: Any = body
    for key in keys:
        cur = cur.get(key) if isinstance(cur, dict) else None
    if isinstance(cur, list):
        cur = cur[0] if cur else None
    ref = cur.get("@odata.id") if isinstance(cur, dict) else None
    return ref if isinstance(ref, str) and ref.startswith("/") else None


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


class RedfishSource:
    """One Redfish service: discovery and login on the first read, then one GET per read.

    Discovery (service root, chassis, its manager's firmware) runs again whenever a new
    connection or session starts: a new session may be a replaced BMC. A 401 on a kept
    session logs in again once within the same read (the BMC expired or forgot it).
    """

    def __init__(
        self,
        config: RedfishConfig,
        password: str,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Callable[[], int] = now_ns,
    ) -> None:
        labels = {"point": "it_input", "kind": "compute", **config.labels}
        self.info = SourceInfo(config.id, "redfish", config.url, labels, config.accuracy)
        self._config = config
        self._http = RedfishHttp(config, password, transport)
        self._clock = clock
        self._target: _Target | None = None

    @property
    def sessions_opened(self) -> int:
        """Sessions created so far (diagnostics and tests)."""
        return self._http.sessions_opened

    def timeout_hint(self) -> str:
        """What no answer within timeout_s means for this service (the poller's message)."""
        return f"{self._config.url}: check the BMC is up, its HTTPS port and a firewall between"

    async def read(self) -> list[Reading]:
        """Read the chassis's power (and energy, where offered) once."""
        try:
            if self._target is None or self._http.fresh:
                await self._discover()
            assert self._target is not None
            return await self._read_power(self._target)
        except SourceError:
            if not self._http.open:
                self._target = None
            raise

    async def close(self) -> None:
        """Delete the session (DELETE its URI) and close the connection."""
        await self._http.close()
        self._target = None

    async def _discover(self) -> None:
        root = await self._http.root()
        self._http.sessions_uri = _link(root, "Links", "Sessions") or DEFAULT_SESSIONS
        await self._http.login()
        collection = _link(root, "Chassis") or "/redfish/v1/Chassis"
        members = (await self._http.get(collection)).get("Members") or []
        uris = [m["@odata.id"] for m in members if isinstance(m, dict)
                and isinstance(m.get("@odata.id"), str)]
        want = self._config.chassis
        if want is not None:
            uris = [u for u in uris if u.rstrip("/").rsplit("/", 1)[-1] == want]
            if not uris:
                raise DeviceError(f"{self._config.url}: no chassis {want!r} in {collection}")
        target = None
        for uri in uris:
            chassis = await self._http.get(uri)
            target = self._pick(uri, chassis)
            if target is not None:
                break
        if target is None:
            where = f"chassis {want!r}" if want else f"no chassis in {collection}"
            verb = "has no" if want else "has a"
            raise DeviceError(
                f"{self._config.url}: {where} {verb} {self._wanted()} resource: the BMC"
                " reports no chassis power over Redfish (check chassis and resource)")
        self._target = target
        await self._identify(chassis, target.profile)
        self._http.fresh = False

    def _wanted(self) -> str:
        return {"auto": "EnvironmentMetrics or Power", "power": "Power",
                "environment_metrics": "EnvironmentMetrics"}[self._config.resource]

    def _pick(self, uri: str, chassis: dict[str, Any]) -> _Target | None:
        env, power = _link(chassis, "EnvironmentMetrics"), _link(chassis, "Power")
        mode = self._config.resource
        if env is not None and mode != "power":
            return _Target(uri, env, "EnvironmentMetrics", power if mode == "auto" else None)
        if power is not None and mode != "environment_metrics":
            return _Target(uri, power, "Power", None)
        return None

    async def _identify(self, chassis: dict[str, Any], profile: str) -> None:
        firmware = None
        manager = _link(chassis, "Links", "ManagedBy")
        if manager is not None:
            try:
                firmware = (await self._http.get(manager)).get("FirmwareVersion")
            except DeviceError:
                firmware = None  # identity is a courtesy; the power reading is what counts
        device = device_map(
            make=chassis.get("Manufacturer"), model=chassis.get("Model"),
            serial=chassis.get("SerialNumber"), part_number=chassis.get("PartNumber"),
            firmware=firmware, profile=profile,
        )
        if device != self.info.device:
            self.info = dataclasses.replace(self.info, device=device)

    async def _read_power(self, target: _Target) -> list[Reading]:
        body = await self._http.get(target.uri)
        ts_ns = self._clock()
        if target.profile == "EnvironmentMetrics":
            watts = _number((body.get("PowerWatts") or {}).get("Reading"))
            if watts is None and target.fallback is not None:
                # Some services link EnvironmentMetrics for temperatures only.
                self._target = _Target(target.chassis, target.fallback, "Power", None)
                self.info = dataclasses.replace(
                    self.info, device={**self.info.device, "profile": "Power"})
                return await self._read_power(self._target)
            if watts is None:
                raise DeviceError(f"{self._config.url}: {target.uri} has no PowerWatts.Reading")
            out = [Reading(POWER, watts, ts_ns)]
            kwh = _number((body.get("EnergykWh") or {}).get("Reading"))
            if kwh is not None:
                out.append(Reading(ENERGY, kwh, ts_ns))
            return out
        controls = body.get("PowerControl") or []
        first = controls[0] if isinstance(controls, list) and controls else {}
        watts = _number(first.get("PowerConsumedWatts") if isinstance(first, dict) else None)
        if watts is None:
            raise DeviceError(
                f"{self._config.url}: {target.uri} has no PowerControl[0].PowerConsumedWatts"
                " (the BMC does not measure chassis power, or the server is off)")
        return [Reading(POWER, watts, ts_ns)]
