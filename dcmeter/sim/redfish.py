"""A simulated Redfish BMC (DMTF DSP0266/DSP0268): a small HTTP/1.1 server on asyncio streams.

It serves what the `redfish` source (agent/sources/redfish.py) and curl read: the service root
(unauthenticated), the Chassis collection, one chassis `1` with its identity
(Manufacturer, Model, SerialNumber), `EnvironmentMetrics` (PowerWatts.Reading W = the model's
input power, EnergykWh.Reading kWh = a start value plus the exact integral since t0) and the
classic `Power` (PowerControl[0].PowerConsumedWatts), the Manager `BMC` with FirmwareVersion,
and session login (DSP0266 §13.3.4): POST SessionService/Sessions {UserName, Password} answers
201 with X-Auth-Token and Location, DELETE of that URI ends it. Every other resource needs a
valid token or HTTP basic auth, else 401. Plain HTTP on loopback (no TLS): the simulator is a
test bench, and the agent's TLS is checked against the real peers (tests/peers/redfish.py).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import secrets
import time
from collections.abc import Callable
from typing import Any

ROOT = "/redfish/v1"
CHASSIS = f"{ROOT}/Chassis/1"
MANAGER = f"{ROOT}/Managers/BMC"
SESSIONS = f"{ROOT}/SessionService/Sessions"
FIRMWARE = "1.0.0 (dcmeter simulator)"
MAX_HEAD = 16384
MAX_BODY = 65536
_REASONS = {200: "OK", 201: "Created", 204: "No Content", 400: "Bad Request",
            401: "Unauthorized", 404: "Not Found", 405: "Method Not Allowed"}


class SimRedfish:
    """One server's Redfish service: power (W) and energy since t0 (J) from the model."""

    def __init__(
        self,
        name: str,
        power_w: Callable[[float], float],
        energy_j: Callable[[float], float],
        *,
        username: str,
        password: str,
        energy_start_kwh: float = 0.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.name = name
        self._power_w, self._energy_j = power_w, energy_j
        self._user, self._password = username, password
        self._start_kwh = energy_start_kwh
        self._clock = clock
        self.sessions: dict[str, str] = {}  # token -> session id
        self._next_session = 0
        self._server: asyncio.Server | None = None
        self.requests = 0

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        """Listen on host:port (0: a free port); return the port."""
        self._server = await asyncio.start_server(self._serve, host, port)
        return int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        """Stop listening and close the open connections."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
            if hasattr(server, "close_clients"):  # Python 3.13: end kept-alive connections
                server.close_clients()
            await server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, asyncio.LimitOverrunError):
                    return
                if len(head) > MAX_HEAD:
                    return
                lines = head.decode("latin-1").split("\r\n")
                parts = lines[0].split(" ")
                if len(parts) != 3:
                    return
                method, target, _ = parts
                headers = {}
                for line in lines[1:]:
                    key, sep, value = line.partition(":")
                    if sep:
                        headers[key.strip().lower()] = value.strip()
                length = int(headers.get("content-length", "0") or 0)
                if not 0 <= length <= MAX_BODY:
                    return
                body = await reader.readexactly(length) if length else b""
                status, extra, payload = self._answer(method, target.split("?")[0], headers, body)
                self.requests += 1
                data = b"" if payload is None else json.dumps(payload).encode()
                close = headers.get("connection", "").lower() == "close"
                out = [f"HTTP/1.1 {status} {_REASONS.get(status, '')}",
                       f"Content-Length: {len(data)}", "OData-Version: 4.0"]
                if payload is not None:
                    out.append("Content-Type: application/json")
                out += [f"{k}: {v}" for k, v in extra.items()]
                if close:
                    out.append("Connection: close")
                writer.write(("\r\n".join(out) + "\r\n\r\n").encode() + data)
                await writer.drain()
                if close:
                    return
        except (ConnectionError, ValueError, UnicodeDecodeError):
            return
        finally:
            writer.close()

    def _authorised(self, headers: dict[str, str]) -> bool:
        token = headers.get("x-auth-token")
        if token is not None:
            return token in self.sessions
        auth = headers.get("authorization", "")
        if not auth.startswith("Basic "):
            return False
        try:
            user, _, pw = base64.b64decode(auth[6:], validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        return secrets.compare_digest(f"{user}\0{pw}", f"{self._user}\0{self._password}")

    def _answer(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], dict[str, Any] | None]:
        path = path.rstrip("/") or "/"
        if method == "GET" and path == ROOT:
            return 200, {}, self._root()
        if method == "POST" and path == SESSIONS:
            return self._login(body)
        if not self._authorised(headers):
            return 401, {}, _error("Base.1.8.NoValidSession")
        if method == "DELETE" and path.startswith(SESSIONS + "/"):
            sid = path.rsplit("/", 1)[1]
            for token, known in list(self.sessions.items()):
                if known == sid:
                    del self.sessions[token]
                    return 204, {}, None
            return 404, {}, _error("Base.1.8.ResourceMissingAtURI")
        if method != "GET":
            return 405, {"Allow": "GET"}, _error("Base.1.8.OperationNotAllowed")
        resource = self._resource(path)
        if resource is None:
            return 404, {}, _error("Base.1.8.ResourceMissingAtURI")
        return 200, {}, {"@odata.id": path, **resource}

    def _login(self, body: bytes) -> tuple[int, dict[str, str], dict[str, Any] | None]:
        try:
            creds = json.loads(body)
        except ValueError:
            return 400, {}, _error("Base.1.8.MalformedJSON")
        if not isinstance(creds, dict) or not secrets.compare_digest(
            f"{creds.get('UserName')}\0{creds.get('Password')}", f"{self._user}\0{self._password}"
        ):
            return 401, {}, _error("Base.1.8.NoValidSession")
        self._next_session += 1
        sid, token = str(self._next_session), secrets.token_hex(16)
        self.sessions[token] = sid
        uri = f"{SESSIONS}/{sid}"
        return 201, {"X-Auth-Token": token, "Location": uri}, {
            "@odata.id": uri, "Id": sid, "UserName": self._user}

    def _root(self) -> dict[str, Any]:
        return {
            "@odata.id": f"{ROOT}/", "@odata.type": "#ServiceRoot.v1_15_0.ServiceRoot",
            "Id": "RootService", "RedfishVersion": "1.15.0",
            "Chassis": {"@odata.id": f"{ROOT}/Chassis"},
            "Managers": {"@odata.id": f"{ROOT}/Managers"},
            "SessionService": {"@odata.id": f"{ROOT}/SessionService"},
            "Links": {"Sessions": {"@odata.id": SESSIONS}},
        }

    def _resource(self, path: str) -> dict[str, Any] | None:
        t = self._clock()
        if path == f"{ROOT}/Chassis":
            return {"Members": [{"@odata.id": CHASSIS}], "Members@odata.count": 1}
        if path == CHASSIS:
            return {
                "Id": "1", "Name": self.name, "ChassisType": "RackMount",
                "Manufacturer": "dcmeter simulator", "Model": "simulated server",
                "SerialNumber": f"SIM-{self.name}", "PartNumber": "SIM-RF-1",
                "EnvironmentMetrics": {"@odata.id": f"{CHASSIS}/EnvironmentMetrics"},
                "Power": {"@odata.id": f"{CHASSIS}/Power"},
                "Links": {"ManagedBy": [{"@odata.id": MANAGER}]},
            }
        if path == f"{CHASSIS}/EnvironmentMetrics":
            # One clock read: power and energy of one instant.
            return {
                "Id": "EnvironmentMetrics",
                "PowerWatts": {"Reading": self._power_w(t)},
                "EnergykWh": {"Reading": self._start_kwh + self._energy_j(t) / 3.6e6},
            }
        if path == f"{CHASSIS}/Power":
            return {"Id": "Power", "PowerControl": [{
                "@odata.id": f"{CHASSIS}/Power#/PowerControl/0", "MemberId": "0",
                "PowerConsumedWatts": self._power_w(t)}]}
        if path == f"{ROOT}/Managers":
            return {"Members": [{"@odata.id": MANAGER}], "Members@odata.count": 1}
        if path == MANAGER:
            return {"Id": "BMC", "ManagerType": "BMC", "FirmwareVersion": FIRMWARE}
        if path == f"{ROOT}/SessionService":
            return {"Id": "SessionService", "Sessions": {"@odata.id": SESSIONS}}
        if path == SESSIONS:
            return {"Members": [{"@odata.id": f"{SESSIONS}/{s}"} for s in self.sessions.values()]}
        return None


def redfish_name(server: str, bmc_protocol: str) -> str:
    """The Redfish BMC's device and source id: the server's name, or NAME-redfish beside an
    IPMI BMC of that name (bmc_protocol = "both")."""
    return f"{server}-redfish" if bmc_protocol == "both" else server


def _error(code: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": code.rsplit(".", 1)[-1]}}
