"""Printing a report page with headless Chromium, sandboxed: to PDF or to a PNG screenshot.

The page is treated as hostile: it is printed from a private folder holding only itself,
with JavaScript off, every network fetch refused and a Content-Security-Policy that lets it
load nothing but inline styles and data: images and fonts (so no file: URL either).
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from dcmeter.collectors.reporting.report_html import CSP_META

CHROMIUM = ("chromium", "chromium-browser")


class ReportError(RuntimeError):
    """A report could not be made; the message says why and what to do."""


def chromium_binary() -> str:
    """The path of headless Chromium (`chromium` or `chromium-browser` on PATH)."""
    for name in CHROMIUM:
        found = shutil.which(name)
        if found:
            return found
    raise ReportError(
        "chromium not found (looked for 'chromium' and 'chromium-browser' on PATH): install"
        " the Debian package 'chromium' to render PDF reports, or use --format html"
    )


# Flags that leave the printed page nothing to fetch: every request goes to a proxy on a
# loopback port that refuses connections ("<-loopback>" sends even 127.0.0.1 and localhost
# through it) and every host name resolves to nothing. Background services stay off too.
SANDBOX_FLAGS = (
    "--proxy-bypass-list=<-loopback>",
    "--host-resolver-rules=MAP * ~NOTFOUND",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-domain-reliability",
    "--disable-extensions",
    "--disable-sync",
    "--no-default-browser-check",
)
_DOCTYPE = re.compile(r"\A\ufeff?\s*<!doctype[^>]*>", re.IGNORECASE)


def with_policy(html: str) -> str:
    """Put the report's Content-Security-Policy first in `html`, before anything it loads.

    It goes straight after the doctype (or first of all), so the parser places it in the
    head ahead of any markup the page brings; a second policy in the page can only narrow it.
    """
    m = _DOCTYPE.match(html)
    cut = m.end() if m else 0
    return html[:cut] + CSP_META + html[cut:]


# JavaScript off for every page, as a content setting of the fresh profile. (The flag
# --blink-settings=scriptEnabled=false does this too, but Chromium 156 then writes no PDF.)
PROFILE_PREFERENCES = {"profile": {"default_content_setting_values": {"javascript": 2}}}


@contextmanager
def _refusing_port() -> Iterator[int]:
    """Hold a loopback TCP port bound but never listening: connecting to it is refused."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))  # bound, so no other process can listen on it meanwhile
        yield int(s.getsockname()[1])


def _chromium(html: str, args: Sequence[str], out: Path, timeout_s: float) -> None:
    binary = chromium_binary()
    # The page lies alone in a fresh private folder; the profile gets a folder of its own.
    with (tempfile.TemporaryDirectory(prefix="dcmeter-report-") as tmp,
          tempfile.TemporaryDirectory(prefix="dcmeter-chromium-") as profile,
          _refusing_port() as port):
        (Path(profile) / "Default").mkdir()
        (Path(profile) / "Default" / "Preferences").write_text(json.dumps(PROFILE_PREFERENCES))
        page_file = Path(tmp) / "report.html"
        page_file.write_text(with_policy(html), encoding="utf-8")
        cmd = [binary, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
               f"--user-data-dir={profile}", "--no-pdf-header-footer",
               f"--proxy-server=http://127.0.0.1:{port}", *SANDBOX_FLAGS, *args,
               page_file.as_uri()]
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s,
                                  check=False)
        except subprocess.TimeoutExpired as e:
            raise ReportError(f"chromium did not finish within {timeout_s:g} s") from e
    if done.returncode != 0 or not out.exists() or out.stat().st_size == 0:
        tail = (done.stderr or "").strip().splitlines()[-1:] or ["no output"]
        raise ReportError(f"chromium failed (exit {done.returncode}) writing {out}: {tail[0]}")


def render_pdf(html: str, out: Path, timeout_s: float = 120.0) -> None:
    """Print `html` to the PDF file `out` with headless Chromium (A4, backgrounds kept)."""
    out = out.resolve()
    out.unlink(missing_ok=True)
    _chromium(html, [f"--print-to-pdf={out}"], out, timeout_s)


def render_png(html: str, out: Path, width: int = 1200, height: int = 3000,
               timeout_s: float = 120.0) -> None:
    """Screenshot `html` to the PNG file `out` with headless Chromium (width x height px)."""
    out = out.resolve()
    out.unlink(missing_ok=True)
    _chromium(html, [f"--screenshot={out}", f"--window-size={width},{height}",
                     "--hide-scrollbars"], out, timeout_s)
