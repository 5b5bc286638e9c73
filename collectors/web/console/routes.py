"""The console's routes: sign in and out, the windows list, start and stop, the live page.

Server-rendered pages (Jinja2, console/templates/) with htmx polling the live fragment and
uPlot drawing the chart, both served by the collector (static/, docs/VENDORED.md): no CDN.
Every page carries a Content-Security-Policy allowing scripts, styles and requests from the
collector only; the page's own script is a file (static/console/console.js), never inline.

Security (docs/console.md): a session cookie holding a random id (console/sessions.py), never
the token; every POST checks the session's CSRF token before it does anything; the role is
checked by the server for every start and stop, whatever the page showed. The windows work
itself (open, stop and freeze, result, report) is the API's (`WindowOps`, built in api.py),
so a window started here is the same as one started with `dcmeter window start`.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qs

import anyio
from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from jinja2 import Environment, PackageLoader, select_autoescape

from dcmeter.base.ratelimit import LogLimiter
from dcmeter.collectors.evaluation.site import Site
from dcmeter.collectors.reporting.report_html import CSP as REPORT_CSP
from dcmeter.collectors.reporting.report_print import render_pdf, with_policy
from dcmeter.collectors.storage import audit
from dcmeter.collectors.storage.deadline import Deadline
from dcmeter.collectors.storage.store import Store
from dcmeter.collectors.web.auth import Auth, Principal, token_hash
from dcmeter.collectors.web.console import i18n, live
from dcmeter.collectors.web.console.assets import asset_router, asset_url
from dcmeter.collectors.web.console.sessions import COOKIE, Session, Sessions
from dcmeter.collectors.web.metrics import StoreTotals
from dcmeter.collectors.web.offloop import Reads

CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:;"
       " connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'self';"
       " frame-ancestors 'none'")
HEADERS = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff",
           "Referrer-Policy": "same-origin", "Cache-Control": "no-store",
           "X-Frame-Options": "DENY"}
KINDS = ("infrastructure", "general", "ai")
# How far back the newest sample of each source is looked for, s (a source silent longer
# shows "no data" on the live page).
LAST_SAMPLE_S = 900.0


@dataclass(frozen=True, slots=True)
class WindowOps:
    """The API's window work, shared with the console (built in api.py's create_app).

    open_: (kind, note, scope, who, client) → the window's summary (HTTPException: refused);
    stop: (wid, who, client, deadline) → the summary; result: (wid, deadline) → the result
    (open: as of now; closed: its latest revision); report: (wid, lang, "html"|"json",
    deadline) → HTML text or {"result", "series"}.
    """

    open_: Callable[[str, str | None, list[str] | None, Principal, str | None], dict[str, Any]]
    stop: Callable[[int, Principal, str | None, Deadline], dict[str, Any]]
    result: Callable[[int, Deadline], dict[str, Any]]
    report: Callable[[int, str, str, Deadline], str | dict[str, Any]]


_env = Environment(loader=PackageLoader("dcmeter.collectors.web.console", "templates"),
                   autoescape=select_autoescape(default=True), trim_blocks=True,
                   lstrip_blocks=True)
_env.globals["asset"] = asset_url
_env.filters["hms"] = live.hms
_env.filters["num"] = live.num
_env.filters["utc"] = lambda s: _when(int(s * 1e9))


def console_router(
    store: Store, site: Site, auth: Auth, reads: Reads, ops: WindowOps,
    clock: Callable[[], int] = time.time_ns, sessions: Sessions | None = None,
) -> APIRouter:
    """The console's routes (not in the API schema); `clock`: the collector's, ns."""
    router = APIRouter(include_in_schema=False)
    router.include_router(asset_router())
    sessions = sessions or Sessions()
    totals = StoreTotals(store)
    # Refusal lines: one per (reason, client) a minute (audit.py).
    quiet_none = LogLimiter()

    def lang_of(request: Request) -> i18n.Lang:
        return i18n.choose(request.cookies.get(i18n.COOKIE),
                           request.headers.get("accept-language"))

    def page(request: Request, name: str, status: int = 200, **ctx: Any) -> HTMLResponse:
        lang = lang_of(request)
        body = _env.get_template(name).render(
            lang=lang, t=i18n.WORDS[lang], path=request.url.path, **ctx)
        return HTMLResponse(body, status_code=status, headers=HEADERS)

    def session(request: Request) -> Session | None:
        """The request's live session whose token is still in the store (revoking a token
        ends its sessions); reads the store: call off the loop."""
        s = sessions.get(request.cookies.get(COOKIE))
        if s is None:
            return None
        if auth.enabled and auth.store.token(s.token_sha256) is None:
            sessions.end(request.cookies.get(COOKIE))
            return None
        return s

    async def signed_in(request: Request) -> Session | None:
        return await anyio.to_thread.run_sync(session, request)

    async def need(request: Request) -> Session:
        s = await signed_in(request)
        if s is None:
            raise HTTPException(401, "not signed in: sign in at /login")
        return s

    async def form(request: Request) -> dict[str, str]:
        ctype = request.headers.get("content-type", "").split(";")[0].strip()
        if ctype != "application/x-www-form-urlencoded":
            return {}  # no form, so no CSRF token: refused by the check that follows
        raw = (await request.body()).decode("utf-8", "replace")
        return {k: v[-1] for k, v in parse_qs(raw, keep_blank_values=True).items()}

    async def checked_post(
        request: Request, role: str = "reader"
    ) -> tuple[Session, dict[str, str]]:
        """The session and form of a state-changing POST: 401 no session, 403 a missing or
        wrong CSRF token or (role "engineer") a reader's session. Nothing is done before."""
        s = await need(request)
        f = await form(request)
        if not s.csrf_ok(f.get("csrf_token")):
            audit.refused(quiet_none, 403, "csrf", request.method, request.url.path,
                          audit.client_of(request.scope), s.name)
            raise HTTPException(403, "missing or wrong CSRF token: reload the page")
        if role == "engineer" and s.role != "engineer":
            audit.refused(quiet_none, 403, "role_too_weak", request.method, request.url.path,
                          audit.client_of(request.scope), s.name)
            raise HTTPException(403, f"{s.name!r} is a reader: starting and stopping windows"
                                " needs an engineer's token")
        return s, f

    @router.get("/login")
    async def login_page(request: Request) -> HTMLResponse:
        return page(request, "login.html", error=False)

    @router.post("/login")
    async def login(request: Request) -> Response:
        f = await form(request)
        token = f.get("token", "").strip()

        def check() -> Principal | None:
            try:
                return auth.principal(token or None, "reader")
            except HTTPException:
                return None

        who = await anyio.to_thread.run_sync(check)
        if who is None:
            audit.refused(quiet_none, 401, "console_bad_token", "POST", "/login",
                          audit.client_of(request.scope))
            return page(request, "login.html", status=401, error=True)
        sid, _ = sessions.start(who.name, who.role, token_hash(token))
        audit.console_signed_in(who.name, who.role, audit.client_of(request.scope))
        out = RedirectResponse("/", status_code=303)
        out.set_cookie(COOKIE, sid, httponly=True, samesite="strict", path="/",
                       secure=request.url.scheme == "https")
        return out

    @router.post("/logout")
    async def logout(request: Request) -> Response:
        s, _ = await checked_post(request)
        sessions.end(request.cookies.get(COOKIE))
        audit.console_signed_out(s.name, audit.client_of(request.scope))
        out = RedirectResponse("/login", status_code=303)
        out.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
        return out

    @router.get("/lang")
    async def set_lang(request: Request, to: Literal["en", "zh"] = "en",
                       back: str = "/") -> Response:
        # Only a path on this collector: never a redirect elsewhere.
        target = back if back.startswith("/") and not back.startswith("//") else "/"
        out = RedirectResponse(target, status_code=303)
        out.set_cookie(i18n.COOKIE, to, max_age=365 * 86400, path="/", samesite="strict",
                       secure=request.url.scheme == "https")
        return out

    @router.get("/", response_model=None)
    async def windows(request: Request, kind: str = "", state: str = "") -> Response:
        s = await signed_in(request)
        if s is None:
            return RedirectResponse("/login", status_code=303)
        rows = await anyio.to_thread.run_sync(store.windows)
        shown = [w for w in rows
                 if (kind not in KINDS or w.kind == kind)
                 and (state not in ("open", "closed") or (w.end_ns is None) == (state == "open"))]
        return page(request, "windows.html", s=s, windows=shown, kinds=KINDS, kind=kind,
                    state=state, when=_when)

    @router.post("/windows")
    async def start(request: Request) -> Response:
        s, f = await checked_post(request, "engineer")
        kind = f.get("kind", "")
        if kind not in KINDS:
            raise HTTPException(422, f"kind {kind!r} is not one of {', '.join(KINDS)}")
        scope = [x.strip() for x in f.get("scope", "").replace(";", ",").split(",") if x.strip()]
        note = f.get("note", "").strip() or None
        w = await anyio.to_thread.run_sync(
            ops.open_, kind, note, scope or None, Principal(s.name, s.role),
            audit.client_of(request.scope))
        return RedirectResponse(f"/windows/{w['id']}", status_code=303)

    @router.post("/windows/{wid}/stop")
    async def stop(wid: int, request: Request) -> Response:
        s, _ = await checked_post(request, "engineer")
        who, client = Principal(s.name, s.role), audit.client_of(request.scope)
        await reads.run(request, lambda d: ops.stop(wid, who, client, d),
                        f"the stop of window {wid}")
        return RedirectResponse(f"/windows/{wid}", status_code=303)

    def live_view(wid: int, d: Deadline) -> dict[str, Any]:
        """Everything the live fragment prints, read off the loop."""
        result = ops.result(wid, d)
        w = store.window(wid)
        if w is None:
            raise HTTPException(404, f"no window {wid}")
        now_ns = clock()
        agents, _ = totals.refresh()
        end_ns = w.end_ns if w.end_ns is not None else now_ns
        sources = sorted({str(x.get("source")) for x in result["quality"].get("sources") or ()})
        d.check()
        series = store.series(sources, end_ns - int(LAST_SAMPLE_S * 1e9), end_ns, deadline=d)
        now_s = now_ns / 1e9
        d.check()
        runs = failure_runs(store, w.start_ns, w.scope)
        return {
            "w": w, "result": result, "open": w.end_ns is None, "updated": int(now_s),
            "elapsed": (end_ns - w.start_ns) / 1e9, "ind": live.indicator(result),
            "runs": list(result.get("runs") or ()) if w.kind == "ai" else [],
            "agents": live.agent_rows(
                result, {a: t.last_received_ns / 1e9 for a, t in agents.items()
                         if t.last_received_ns}, {a: t.breaks for a, t in agents.items()},
                now_s),
            "sources": live.source_rows(result, live.last_samples(series), now_s,
                                        w.end_ns is None, runs),
        }

    @router.get("/windows/{wid}", response_model=None)
    async def window_page(wid: int, request: Request) -> Response:
        s = await signed_in(request)
        if s is None:
            return RedirectResponse("/login", status_code=303)
        view = await reads.run(request, lambda d: live_view(wid, d), f"window {wid}")
        return page(request, "window.html", s=s, **view)

    @router.get("/windows/{wid}/live")
    async def live_fragment(wid: int, request: Request) -> HTMLResponse:
        await need(request)
        view = await reads.run(request, lambda d: live_view(wid, d), f"window {wid}")
        return page(request, "live.html", **view)

    @router.get("/windows/{wid}/series.json")
    async def series_json(wid: int, request: Request) -> JSONResponse:
        await need(request)

        def work(d: Deadline) -> dict[str, Any]:
            out = ops.report(wid, "en", "json", d)
            assert isinstance(out, dict)
            still_open = (out["result"].get("window") or {}).get("state") == "open"
            return live.chart_series(out["series"], int(clock() / 1e9), still_open)

        body = await reads.run(request, work, f"the chart of window {wid}")
        return JSONResponse(body, headers={"Cache-Control": "no-store"})

    @router.get("/windows/{wid}/result.json")
    async def result_json(wid: int, request: Request) -> JSONResponse:
        await need(request)
        body = await reads.run(request, lambda d: ops.result(wid, d), f"the result of {wid}")
        return JSONResponse(body, headers={
            "Cache-Control": "no-store",
            "Content-Disposition": f'attachment; filename="window-{wid}-result.json"'})

    @router.get("/windows/{wid}/report")
    async def report(wid: int, request: Request, lang: Literal["en", "zh"] = "en",
                     format: Literal["html", "pdf"] = "html") -> Response:
        await need(request)

        def work(d: Deadline) -> Response:
            html = ops.report(wid, lang, "html", d)
            assert isinstance(html, str)
            if format == "html":
                return HTMLResponse(html, headers={
                    "Content-Security-Policy": REPORT_CSP, "X-Content-Type-Options": "nosniff",
                    "Cache-Control": "no-store"})
            with tempfile.TemporaryDirectory(prefix="dcmeter-report-") as tmp:
                out = Path(tmp) / "report.pdf"
                render_pdf(with_policy(html), out)
                pdf = out.read_bytes()
            return Response(pdf, media_type="application/pdf", headers={
                "Cache-Control": "no-store",
                "Content-Disposition": f'attachment; filename="window-{wid}-{lang}.pdf"'})

        return await reads.run(request, work, f"the report of window {wid}")

    return router


def _when(ns: int | None) -> str:
    """An RFC 3339 UTC time of `ns`, or an em dash."""
    if ns is None:
        return "—"
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ns / 1e9))


def failure_runs(
    store: Store, start_ns: int, scope: tuple[str, ...] | None
) -> dict[str, live.FailureRun]:
    """Per source (of `scope`, None: all), the failing run its agent reported last, if that
    run's last failure is not older than the window's start (`start_ns`); where two agents
    report one source (a move), the run with the newer last failure."""
    out: dict[str, tuple[int, live.FailureRun]] = {}
    for f in store.source_failures(scope):
        if f.last_ns < start_ns or (f.source in out and out[f.source][0] >= f.last_ns):
            continue
        out[f.source] = (f.last_ns, live.FailureRun(
            f.first_ns / 1e9, f.last_ns / 1e9, f.count, f.reason,
            None if f.recovered_ns is None else f.recovered_ns / 1e9))
    return {s: run for s, (_, run) in out.items()}
