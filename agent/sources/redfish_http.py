"""The `redfish` source's HTTP side: TLS, session or basic auth, and one-line errors.

Session auth (DMTF DSP0266 §13.3.4): POST {UserName, Password} to the service's Sessions
collection, keep the `X-Auth-Token` it answers and send it on every request, log in again on
a 401, DELETE the session's URI (the `Location` header) at close. The password and the token
never reach a log line or an error message.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import structlog

from dcmeter.agent.sources import DeviceError, TargetUnreachable
from dcmeter.base.tls import tls_cause

if TYPE_CHECKING:
    import httpx

    from dcmeter.agent.sources.redfish_config import RedfishSettings

log = structlog.get_logger("dcmeter.agent.redfish")

ROOT = "/redfish/v1/"


class RedfishHttp:
    """One connection to one Redfish service, with its session."""

    def __init__(
        self, config: RedfishSettings, password: str,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._config = config
        self._password = password
        self._transport = transport
        self._client: httpx.AsyncClient | None = None
        self._token: str | None = None
        self._session_uri: str | None = None
        self.sessions_uri = "/redfish/v1/SessionService/Sessions"
        self.sessions_opened = 0
        self.fresh = True  # a new connection or session: the caller identifies again
        self._warned_verify = False

    @property
    def open(self) -> bool:
        """Whether a connection is held."""
        return self._client is not None

    def _connect(self) -> httpx.AsyncClient:
        if self._client is not None:
            return self._client
        import httpx

        from dcmeter.base.tls import client_context

        cfg = self._config
        verify: Any
        if not cfg.verify:
            verify = False
            if not self._warned_verify:
                self._warned_verify = True
                log.warning("TLS certificate verification is off (verify = false)",
                            source=cfg.id, url=cfg.url)
        else:
            try:
                verify = client_context(cfg.ca_file)
            except (OSError, ValueError) as exc:
                raise DeviceError(f"{cfg.url}: ca_file {cfg.ca_file}: cannot load it: "
                                  f"{getattr(exc, 'strerror', None) or exc}") from None
        auth = httpx.BasicAuth(cfg.username, self._password) if cfg.auth == "basic" else None
        self._client = httpx.AsyncClient(
            base_url=cfg.url, verify=verify, auth=auth, transport=self._transport,
            timeout=httpx.Timeout(cfg.timeout_s / 3), follow_redirects=False,
            headers={"Accept": "application/json", "OData-Version": "4.0"},
        )
        self.fresh = True
        return self._client

    async def _send(self, method: str, uri: str, **kw: Any) -> httpx.Response:
        """One request; transport failures become TargetUnreachable and drop the connection."""
        import httpx

        client = self._connect()
        headers = {"X-Auth-Token": self._token} if self._token else {}
        try:
            return await client.request(method, uri, headers=headers, **kw)
        except httpx.HTTPError as exc:
            await self._drop()
            raise self._unreachable(f"{method} {uri}", exc) from None

    def _unreachable(self, request: str, exc: Exception) -> TargetUnreachable:
        import httpx

        url = self._config.url
        err = tls_cause(exc)
        if err is not None:
            import ssl

            against = str(self._config.ca_file or "the system CA store")
            if isinstance(err, ssl.SSLCertVerificationError):
                reason = err.verify_message or err.reason or str(err)
                return TargetUnreachable(
                    f"{url}: certificate does not verify against {against}: {reason}")
            return TargetUnreachable(f"{url}: TLS handshake failed: {err.reason or err}")
        if isinstance(exc, httpx.TimeoutException):
            return TargetUnreachable(
                f"{url}: no answer to {request} within {self._config.timeout_s / 3:g} s")
        if isinstance(exc, httpx.ConnectError):
            return TargetUnreachable(f"{url}: cannot connect: {exc}")
        return TargetUnreachable(f"{url}: {type(exc).__name__}: {exc}")

    async def root(self) -> dict[str, Any]:
        """The service root (unauthenticated, DSP0266 §9.3); DeviceError if not Redfish."""
        url = self._config.url
        rsp = await self._send("GET", ROOT)
        body = _json(rsp)
        if rsp.status_code != 200 or body is None or "RedfishVersion" not in body:
            what = rsp.headers.get("content-type", "no content type").split(";")[0]
            raise DeviceError(
                f"{url}: not a Redfish service: GET {ROOT} answered HTTP {rsp.status_code}"
                f" ({what}) without a service root (no RedfishVersion): check url and port")
        return body

    async def login(self) -> None:
        """Create a session (auth = "session") unless one is held."""
        if self._config.auth != "session" or self._token is not None:
            return
        cfg = self._config
        rsp = await self._send("POST", self.sessions_uri,
                               json={"UserName": cfg.username, "Password": self._password})
        if rsp.status_code in (400, 401, 403):
            raise DeviceError(
                f"{cfg.url}: login refused (HTTP {rsp.status_code} from POST "
                f"{self.sessions_uri}): check username and password")
        token = rsp.headers.get("X-Auth-Token")
        if rsp.status_code not in (200, 201) or not token:
            raise DeviceError(
                f"{cfg.url}: POST {self.sessions_uri} answered HTTP {rsp.status_code} without "
                'an X-Auth-Token: the service has no session login; set auth = "basic"')
        self._token = token
        body = _json(rsp) or {}
        self._session_uri = rsp.headers.get("Location") or body.get("@odata.id")
        self.sessions_opened += 1
        self.fresh = True

    async def get(self, uri: str) -> dict[str, Any]:
        """GET a resource as JSON; a 401 on a kept session logs in again once."""
        rsp = await self._send("GET", uri)
        if rsp.status_code == 401 and self._config.auth == "session" and self._token:
            self._token = self._session_uri = None  # expired or forgotten by the BMC
            await self.login()
            rsp = await self._send("GET", uri)
        url = self._config.url
        if rsp.status_code in (401, 403):
            how = "username and password" if self._config.auth == "basic" else "the account"
            raise DeviceError(f"{url}: GET {uri} refused (HTTP {rsp.status_code}): check {how}"
                              " and that it may read the chassis")
        if rsp.status_code == 404:
            raise DeviceError(f"{url}: GET {uri}: HTTP 404, the service has no such resource")
        body = _json(rsp)
        if rsp.status_code != 200 or body is None:
            raise DeviceError(f"{url}: GET {uri} answered HTTP {rsp.status_code}, not a JSON "
                              "resource")
        return body

    async def close(self) -> None:
        """DELETE the session (best effort) and close the connection."""
        if self._client is not None and self._session_uri is not None:
            try:
                await self._client.delete(self._session_uri,
                                          headers={"X-Auth-Token": self._token or ""})
            except Exception as exc:  # closing: the BMC expires the session itself
                log.info("session not deleted", source=self._config.id,
                         reason=type(exc).__name__)
        await self._drop()

    async def _drop(self) -> None:
        client, self._client = self._client, None
        self._token = self._session_uri = None
        if client is not None:
            await client.aclose()


def _json(rsp: httpx.Response) -> dict[str, Any] | None:
    """The body as a JSON object, or None."""
    try:
        body = rsp.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None
