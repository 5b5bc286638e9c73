"""The PDF renderer as a hostile page would meet it: script, network and local files.

Each test hands `render_pdf` a hostile HTML page directly (as if an escaping slip had let agent
text become markup), prints it with the real headless Chromium and reads the PDF back with
poppler's `pdftotext`.
"""

from __future__ import annotations

import secrets
import shutil
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from dcmeter.collectors.reporting.report_print import render_pdf, render_png


def need(tool: str) -> str:
    """A Debian tool the tests require (installed by .ci/run): fail, never skip, without it."""
    found = shutil.which(tool)
    if found is None:
        pytest.fail(f"{tool} is not installed: the sandbox tests need it (apt-get install"
                    " chromium poppler-utils; .ci/run does)")
    return found


def pdf_text(html: str, tmp_path: Path) -> str:
    """Print `html` to PDF with the renderer and return the PDF's text."""
    if shutil.which("chromium-browser") is None:
        need("chromium")
    pdftotext = need("pdftotext")
    pdf = tmp_path / "hostile.pdf"
    render_pdf(html, pdf)
    assert pdf.read_bytes()[:5] == b"%PDF-"
    return subprocess.run([pdftotext, "-layout", str(pdf), "-"], check=True, timeout=60,
                          capture_output=True, text=True).stdout


class Recorder(ThreadingHTTPServer):
    """A loopback HTTP server that records the path of every request it is sent."""

    daemon_threads = True

    def __init__(self) -> None:
        self.paths: list[str] = []
        self.marker = "SERVED-" + secrets.token_hex(6)
        super().__init__(("127.0.0.1", 0), Handler)

    @property
    def url(self) -> str:
        """The server's base URL."""
        return f"http://127.0.0.1:{self.server_address[1]}"


class Handler(BaseHTTPRequestHandler):
    """Record the request; answer with a small HTML page carrying the server's marker."""

    server: Recorder

    def do_GET(self) -> None:
        self.server.paths.append(self.path)
        body = f"<html><body><p>{self.server.marker}</p></body></html>".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Keep the test's output quiet."""


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    """A running `Recorder` on 127.0.0.1."""
    server = Recorder()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def page(body: str) -> str:
    """A whole HTML document around `body`, as the report's own pages are laid out."""
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>t</title>'
            f"</head><body><p>visible text</p>{body}</body></html>\n")


def test_a_script_in_the_page_does_not_run(tmp_path: Path) -> None:
    marker = "SCRIPT-RAN-" + secrets.token_hex(6)
    text = pdf_text(page(
        f"<script>document.body.insertAdjacentText('beforeend', '{marker}')</script>"
        f"<p><noscript>no script</noscript></p>"
        f"<img src=x onerror=\"document.body.append('{marker}-onerror')\">"
    ), tmp_path)
    assert "visible text" in text, "the page itself must still print"
    assert marker not in text


def test_the_page_reaches_no_network(tmp_path: Path, recorder: Recorder) -> None:
    url = recorder.url
    text = pdf_text(page(
        f'<link rel="stylesheet" href="{url}/style.css">'
        f'<img src="{url}/image.png">'
        f'<iframe src="{url}/frame"></iframe>'
        f'<iframe src="http://localhost:{recorder.server_address[1]}/by-name"></iframe>'
        f'<object data="{url}/object"></object>'
        f'<video src="{url}/video"></video>'
        f'<div style="background: url({url}/background.png)">x</div>'
        f'<style>@import url("{url}/import.css");</style>'
    ), tmp_path)
    assert "visible text" in text
    assert recorder.paths == [], f"the renderer fetched {recorder.paths}"
    assert recorder.marker not in text


def test_the_page_reads_no_other_local_file(tmp_path: Path) -> None:
    secret_dir = tmp_path / "private"
    secret_dir.mkdir()
    secret = secret_dir / "secret.txt"
    marker = "LOCAL-FILE-" + secrets.token_hex(6)
    secret.write_text(f"{marker}\n")
    hostname = Path("/etc/hostname")
    host_text = hostname.read_text().strip() if hostname.exists() else ""
    text = pdf_text(page(
        f'<iframe src="{secret.as_uri()}"></iframe>'
        f'<object data="{secret.as_uri()}"></object>'
        f'<iframe src="file:///etc/hostname"></iframe>'
        f'<iframe src="{secret_dir.as_uri()}/"></iframe>'
        f'<iframe src="report.html"></iframe>'  # the page's own folder: the file itself only
    ), tmp_path)
    assert "visible text" in text
    assert marker not in text
    assert "secret.txt" not in text, "a directory listing of a local folder was printed"
    if len(host_text) >= 6:  # a name short enough to occur by chance proves nothing
        assert host_text not in text


def test_the_screenshot_is_sandboxed_too(tmp_path: Path, recorder: Recorder) -> None:
    if shutil.which("chromium-browser") is None:
        need("chromium")
    png = tmp_path / "hostile.png"
    render_png(page(f'<img src="{recorder.url}/image.png"><script>fetch("{recorder.url}/js")'
                    f"</script>"), png, width=400, height=300)
    assert png.stat().st_size > 0
    assert recorder.paths == [], f"the renderer fetched {recorder.paths}"
