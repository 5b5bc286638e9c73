"""The console's static files: vendored htmx and uPlot, and the console's own script and
styles, served by the collector under a versioned path (no CDN; docs/VENDORED.md).

Only the files named in `FILES` are served: no path comes from the request. The version
(`ASSETS_VERSION`, of the vendored libraries and of the console's own files) is in the URL,
so browsers may keep them a year; a change of any file must change it.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from fastapi import APIRouter, HTTPException
from fastapi.responses import Response

HTMX_VERSION = "2.0.11"
UPLOT_VERSION = "1.6.32"
# Bump with any change of the files below (their URL changes, so no browser keeps an old one).
ASSETS_VERSION = f"1-htmx{HTMX_VERSION}-uplot{UPLOT_VERSION}"
STATIC = Path(__file__).parent.parent / "static"
PREFIX = f"/console/assets/{ASSETS_VERSION}"
JS = "text/javascript; charset=utf-8"
CSS = "text/css; charset=utf-8"
# name in the URL → (file under STATIC, content type)
FILES = {
    "htmx.min.js": ("htmx/htmx.min.js", JS),
    "uPlot.iife.min.js": ("uplot/uPlot.iife.min.js", JS),
    "uPlot.min.css": ("uplot/uPlot.min.css", CSS),
    "console.js": ("console/console.js", JS),
    "console.css": ("console/console.css", CSS),
}
CACHE = "public, max-age=31536000, immutable"


def asset_url(name: str) -> str:
    """The URL path of the asset `name` (a key of FILES)."""
    if name not in FILES:
        raise KeyError(name)
    return f"{PREFIX}/{name}"


@cache
def asset(name: str) -> tuple[bytes, str]:
    """The bytes and content type of the asset `name`, read once."""
    path, content_type = FILES[name]
    return (STATIC / path).read_bytes(), content_type


def asset_router() -> APIRouter:
    """GET /console/assets/<version>/<name>: no session needed (the files are public)."""
    router = APIRouter(include_in_schema=False)

    @router.get(PREFIX + "/{name}")
    def console_asset(name: str) -> Response:
        if name not in FILES:
            raise HTTPException(404, "no such console asset")
        body, content_type = asset(name)
        return Response(body, media_type=content_type, headers={
            "Cache-Control": CACHE, "X-Content-Type-Options": "nosniff"})

    return router
