"""The API's documentation page, /docs, served whole by the collector: no CDN, no internet.

FastAPI's own /docs page loads Swagger UI from a CDN, which an air-gapped site cannot reach
(a blank page). Here the Swagger UI files are vendored from the npm package `swagger-ui-dist`
(version `SWAGGER_UI_VERSION`, Apache-2.0; static/swagger-ui/LICENSE and docs/VENDORED.md)
and served from `ASSETS` with the version in the path, so a browser may cache them for a year
and a new version is a new URL. The page's starter is a file of its own (static/docs-init.js)
rather than an inline script, so the page's Content-Security-Policy (`DOCS_CSP`) allows
scripts and styles from the collector only. No token is needed: the page and the assets are
the same for everyone, and the API schema at /openapi.json was open already. ReDoc is off
(`redoc_url=None` in api.py): one documentation page to keep offline.
"""

from __future__ import annotations

import html
from functools import cache
from pathlib import Path

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, Response

SWAGGER_UI_VERSION = "5.35.0"
STATIC = Path(__file__).parent / "static"
# URL prefix of the assets, the version in it: a cached file is never stale.
ASSETS = f"/docs/assets/{SWAGGER_UI_VERSION}"
# name in the URL → (file under STATIC, content type). Only these are served: no file path
# comes from the request.
FILES = {
    "swagger-ui-bundle.js": ("swagger-ui/swagger-ui-bundle.js", "text/javascript; charset=utf-8"),
    "swagger-ui.css": ("swagger-ui/swagger-ui.css", "text/css; charset=utf-8"),
    "favicon-32x32.png": ("swagger-ui/favicon-32x32.png", "image/png"),
    "docs-init.js": ("docs-init.js", "text/javascript; charset=utf-8"),
}
# Scripts and styles from the collector only; images also as data: URLs (swagger-ui.css has
# its icons inline); requests (the schema, "Try it out") to the collector only; no framing.
DOCS_CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:;"
            " connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'self';"
            " frame-ancestors 'none'")
# A year (s): the version is in the asset's URL.
ASSET_CACHE = "public, max-age=31536000, immutable"


@cache
def asset(name: str) -> tuple[bytes, str]:
    """The bytes and content type of the asset `name` (a key of FILES), read once."""
    path, content_type = FILES[name]
    return (STATIC / path).read_bytes(), content_type


def docs_page(root_path: str, openapi_url: str, title: str) -> str:
    """The /docs HTML: the vendored Swagger UI over `openapi_url`, every URL on the collector.

    `root_path`: the ASGI root path (behind a proxy that serves the collector under a
    prefix), put before every URL the page uses.
    """
    a = html.escape(root_path + ASSETS, quote=True)
    spec = html.escape(root_path + openapi_url, quote=True)
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)} — API</title>
<link rel="icon" type="image/png" href="{a}/favicon-32x32.png">
<link rel="stylesheet" href="{a}/swagger-ui.css">
</head>
<body>
<div id="swagger-ui" data-openapi-url="{spec}"></div>
<script src="{a}/swagger-ui-bundle.js"></script>
<script src="{a}/docs-init.js"></script>
</body>
</html>
"""


def docs_router(title: str, openapi_url: str) -> APIRouter:
    """GET /docs (the page) and GET /docs/assets/<version>/<name> (its files); no token."""
    router = APIRouter(include_in_schema=False)

    @router.get("/docs")
    def docs(request: Request) -> HTMLResponse:
        page = docs_page(request.scope.get("root_path", ""), openapi_url, title)
        return HTMLResponse(page, headers={
            "Content-Security-Policy": DOCS_CSP, "X-Content-Type-Options": "nosniff",
            "Cache-Control": "no-cache", "Referrer-Policy": "no-referrer"})

    @router.get(ASSETS + "/{name}")
    def docs_asset(name: str) -> Response:
        if name not in FILES:
            raise HTTPException(404, "no such documentation asset")
        body, content_type = asset(name)
        return Response(body, media_type=content_type, headers={
            "Cache-Control": ASSET_CACHE, "X-Content-Type-Options": "nosniff"})

    return router
