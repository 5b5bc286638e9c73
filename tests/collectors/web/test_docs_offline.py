"""/docs works without the internet: the page names no URL off the collector, every file it
loads is served by the collector, and headless Chromium with every other host unreachable
renders the API's operations under the page's Content-Security-Policy."""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import httpx
import pytest
from conftest import Collector

from dcmeter.collectors.web.docs_ui import ASSETS, DOCS_CSP, SWAGGER_UI_VERSION

URL = re.compile(r"""(?:src|href|data-openapi-url)="([^"]*)\"""")


def test_docs_page_names_only_the_collector(collector: Collector) -> None:
    page = httpx.get(collector.url + "/docs", timeout=30)
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert page.headers["content-security-policy"] == DOCS_CSP
    assert "script-src 'self';" in DOCS_CSP and "unsafe-inline" not in DOCS_CSP
    # No absolute URL anywhere in the page (FastAPI's own page names cdn.jsdelivr.net).
    assert not re.search(r"https?://|//[a-z]", page.text.replace("<!doctype html>", "")), page.text
    assert "<script>" not in page.text  # no inline script: the CSP would refuse it
    urls = URL.findall(page.text)
    wanted = {f"{ASSETS}/swagger-ui-bundle.js": "text/javascript",
              f"{ASSETS}/docs-init.js": "text/javascript",
              f"{ASSETS}/swagger-ui.css": "text/css",
              f"{ASSETS}/favicon-32x32.png": "image/png",
              "/openapi.json": "application/json"}
    assert set(urls) == set(wanted)
    for url in urls:
        got = httpx.get(collector.url + url, timeout=30)  # no token: open routes
        assert got.status_code == 200, url
        assert got.headers["content-type"].split(";")[0] == wanted[url], url
        if url.startswith(ASSETS):
            assert got.headers["cache-control"] == "public, max-age=31536000, immutable"
    bundle = httpx.get(f"{collector.url}{ASSETS}/swagger-ui-bundle.js", timeout=30)
    assert len(bundle.content) > 1_000_000  # the real bundle, not a stub
    assert SWAGGER_UI_VERSION.count(".") == 2


def test_docs_assets_only_the_listed_files(collector: Collector) -> None:
    for name in ("LICENSE", "..%2Fdocs_ui.py", "swagger-ui.js", "index.html"):
        assert httpx.get(f"{collector.url}{ASSETS}/{name}", timeout=30).status_code == 404
    assert httpx.get(collector.url + "/redoc", timeout=30).status_code == 404
    assert httpx.get(collector.url + "/docs/assets/0.0.1/swagger-ui.css",
                     timeout=30).status_code == 404


def _refusing() -> socket.socket:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))  # bound, never listening: a proxy that refuses every request
    return s


@pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian's chromium not installed")
def test_docs_renders_offline_in_chromium(collector: Collector) -> None:
    port = collector.url.rsplit(":", 1)[1]
    with tempfile.TemporaryDirectory(prefix="dcmeter-chromium-") as profile, _refusing() as px:
        # Every request goes to a proxy that refuses it, but the collector's; every host
        # name resolves to nothing: the page gets what the collector serves, nothing else.
        cmd = ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
               f"--user-data-dir={profile}", "--disable-background-networking",
               "--disable-component-update", "--disable-extensions", "--disable-sync",
               f"--proxy-server=http://127.0.0.1:{px.getsockname()[1]}",
               f"--proxy-bypass-list=<-loopback>;127.0.0.1:{port}",
               "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
               "--enable-logging=stderr", "--v=0",
               "--virtual-time-budget=20000", "--dump-dom", collector.url + "/docs"]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=180, check=False)
    dom = done.stdout
    assert done.returncode == 0, done.stderr[-2000:]
    # The operations, as Swagger UI draws them from /openapi.json.
    for op in ("/api/v1/windows", "/api/v1/batches", "/api/v1/windows/{wid}/stop"):
        assert f'data-path="{op}"' in dom, op
    assert "dcmeter collector" in dom
    assert "Content Security Policy" not in done.stderr, done.stderr[-3000:]
    Path(tempfile.gettempdir(), "dcmeter-docs-dom.html").write_text(dom)
