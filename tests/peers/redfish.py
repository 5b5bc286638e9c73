"""Redfish peers: sushy-tools' `sushy-static` serving the mockup in redfish_mockup/, and a
small session-keeping service over the same mockup.

sushy-static (sushy-tools 2.x) serves a DMTF mockup directory as live GETs (each resource a
folder with index.json, over HTTP or HTTPS with -c/-k) but has no authentication: POST
answers 204 with no token, DELETE 501. Session login, token checks, expiry and DELETE are
therefore tested against `SessionService` below, a FastAPI app on a real socket that serves
the same files and enforces DSP0266 §13.3.4 session auth (and basic auth).
"""

from __future__ import annotations

import json
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

MOCKUP = Path(__file__).with_name("redfish_mockup")
SUSHY_STATIC = Path(sys.executable).with_name("sushy-static")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def sushy_static(
    mockup: Path = MOCKUP, cert: Path | None = None, key: Path | None = None
) -> Iterator[str]:
    """Run sushy-static on a free loopback port; yield its base URL (http or https)."""
    port = _free_port()
    cmd = [str(SUSHY_STATIC), "-i", "127.0.0.1", "-p", str(port), "-m", str(mockup)]
    if cert is not None and key is not None:
        cmd += ["-c", str(cert), "-k", str(key)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, f"sushy-static exited: {proc.stderr.read()!r}"  # type: ignore[union-attr]
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "sushy-static did not listen in 30 s"
                time.sleep(0.1)
        yield f"{'https' if cert else 'http'}://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)


class SessionService:
    """A Redfish service over the mockup with real session (and basic) authentication."""

    def __init__(self, username: str, password: str, mockup: Path = MOCKUP) -> None:
        self.username, self.password, self.mockup = username, password, mockup
        self.tokens: dict[str, str] = {}  # token -> session id
        self.logins = 0
        self.deleted: list[str] = []
        self.requests: list[tuple[str, str, str]] = []  # (method, path, how authenticated)
        self.app = self._build()

    def expire_all(self) -> None:
        """Forget every session, as a BMC does on timeout or reset."""
        self.tokens.clear()

    def _auth(self, request: Request) -> str | None:
        token = request.headers.get("x-auth-token")
        if token is not None:
            return "token" if token in self.tokens else None
        import base64

        basic = request.headers.get("authorization", "")
        if basic.startswith("Basic "):
            user, _, pw = base64.b64decode(basic[6:]).decode().partition(":")
            if (user, pw) == (self.username, self.password):
                return "basic"
        return None

    def _build(self) -> FastAPI:
        app = FastAPI()

        @app.post("/redfish/v1/SessionService/Sessions")
        async def login(request: Request) -> Response:
            body: dict[str, Any] = await request.json()
            self.requests.append(("POST", request.url.path, "none"))
            if (body.get("UserName"), body.get("Password")) != (self.username, self.password):
                return JSONResponse({"error": {"code": "Base.1.8.NoValidSession"}}, 401)
            self.logins += 1
            sid, token = str(self.logins), secrets.token_hex(16)
            self.tokens[token] = sid
            uri = f"/redfish/v1/SessionService/Sessions/{sid}"
            return JSONResponse({"@odata.id": uri, "Id": sid, "UserName": self.username}, 201,
                                headers={"X-Auth-Token": token, "Location": uri})

        @app.delete("/redfish/v1/SessionService/Sessions/{sid}")
        async def logout(sid: str, request: Request) -> Response:
            token = request.headers.get("x-auth-token", "")
            if self.tokens.get(token) != sid:
                return Response(status_code=401)
            del self.tokens[token]
            self.deleted.append(sid)
            return Response(status_code=204)

        @app.get("/redfish/v1/{path:path}")
        async def resource(path: str, request: Request) -> Response:
            path = path.strip("/")
            how = self._auth(request) if path else "root"
            self.requests.append(("GET", request.url.path, how or "refused"))
            if how is None:
                return JSONResponse({"error": {"code": "Base.1.8.NoValidSession"}}, 401)
            file = self.mockup / path / "index.json"
            if not file.is_file():
                return JSONResponse({"error": {"code": "Base.1.8.ResourceMissingAtURI"}}, 404)
            return JSONResponse(json.loads(file.read_text()))

        return app
