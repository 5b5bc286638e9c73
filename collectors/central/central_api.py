"""The central's HTTP API: pulled windows and results with a `site` label, site health,
the pulled gauges re-exposed on /metrics. Reader tokens as on a site collector."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from fastapi import Depends, FastAPI, HTTPException, Query, Request, Response
from fastapi.responses import PlainTextResponse
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from dcmeter.collectors.central.central_pull import SITE_GAUGES
from dcmeter.collectors.central.central_store import CentralStore, SiteState
from dcmeter.collectors.evaluation.jsonl import rfc3339
from dcmeter.collectors.web.auth import Auth


def _time(ns: int | None) -> str | None:
    return None if ns is None else rfc3339(ns / 1e9)


def site_view(name: str, url: str, state: SiteState | None) -> dict[str, Any]:
    """A site's health as GET /api/v1/sites shows it: `pending` until its first pull."""
    if state is None:
        return {"site": name, "url": url, "state": "pending", "last_ok": None,
                "down_since": None, "last_error": None, "failures": 0}
    return {
        "site": name, "url": url, "state": "down" if state.failures else "ok",
        "last_ok": _time(state.last_ok_ns), "down_since": _time(state.down_since_ns),
        "last_error": state.last_error, "failures": state.failures,
    }


class CentralCollector(Collector):
    """The central's metrics at scrape time: per site up, last pull time, and its gauges."""

    def __init__(self, store: CentralStore, sites: Sequence[str]) -> None:
        """Read `store` for the configured `sites`."""
        self.store = store
        self.sites = list(sites)

    def collect(self) -> Iterator[Metric]:
        """Build every family afresh."""
        states = {s: self.store.site(s) for s in self.sites}
        up = GaugeMetricFamily("dcmeter_central_site_up",
                               "1 when the last pull of the site succeeded, else 0.",
                               labels=["site"])
        last = GaugeMetricFamily("dcmeter_central_last_pull_timestamp_seconds",
                                 "When the site was last pulled successfully (Unix s).",
                                 labels=["site"])
        fails = GaugeMetricFamily("dcmeter_central_site_failed_pulls",
                                  "Consecutive failed pulls of the site (0 when up).",
                                  labels=["site"])
        for s, st in states.items():
            up.add_metric([s], 1.0 if st is not None and st.failures == 0 else 0.0)
            fails.add_metric([s], float(st.failures if st else 0))
            if st is not None and st.last_ok_ns is not None:
                last.add_metric([s], st.last_ok_ns / 1e9)
        yield from (up, last, fails)
        live = {s for s, st in states.items() if st is not None and st.failures == 0}
        families: dict[str, GaugeMetricFamily] = {}
        for site, g, _ in self.store.gauges():
            spec = SITE_GAUGES.get(g.name)
            if spec is None or site not in live:
                continue
            fam = families.get(g.name)
            if fam is None:
                fam = families[g.name] = GaugeMetricFamily(
                    g.name, spec[0], labels=["site", *spec[1]])
            fam.add_metric([site, *(g.labels.get(k, "") for k in spec[1])], g.value)
        yield from families.values()


def _choice(name: str, value: str | None, valid: Sequence[str]) -> str | None:
    if value is not None and value not in valid:
        raise HTTPException(422, f"{name} {value!r} is not one of {', '.join(valid)}")
    return value


def create_central_app(
    store: CentralStore, sites: Sequence[tuple[str, str]], auth: bool = True
) -> FastAPI:
    """Build the central's API over its store; `sites` are the configured (name, url) pairs."""
    app = FastAPI(title="dcmeter central", version="1")
    read = Depends(Auth(store, auth).require("reader"))
    names = [n for n, _ in sites]

    @app.get("/api/v1/windows", dependencies=[read])
    def list_windows(
        site: str | None = Query(None, description="a configured site name"),
        kind: str | None = Query(None, description="infrastructure, general or ai"),
        state: str | None = Query(None, description="open or closed"),
    ) -> list[dict[str, Any]]:
        """Pulled windows of every site, by site then newest first, each with its `site`."""
        s = _choice("site", site, names)
        k = _choice("kind", kind, ("infrastructure", "general", "ai"))
        st = _choice("state", state, ("open", "closed"))
        return [w.summary() for w in store.windows(s)
                if (k is None or w.kind == k) and (st is None or w.state == st)]

    @app.get("/api/v1/sites/{site}/windows/{wid}", dependencies=[read])
    def get_window(site: str, wid: int) -> dict[str, Any]:
        """A window's result as last pulled from its site, with `site` and `pulled`; the
        result's own `site` becomes `site_name`."""
        w = store.window(site, wid)
        if w is None or w.result is None:
            raise HTTPException(404, f"no window {wid} pulled from site {site!r}")
        # The result's own `site` (the site file's descriptive name) would be shadowed by the
        # label: it is kept as `site_name`.
        own = {"site_name": w.result["site"]} if "site" in w.result else {}
        return {**w.result, **own, "site": site, "pulled": _time(w.pulled_ns)}

    @app.get("/api/v1/sites", dependencies=[read])
    def list_sites() -> list[dict[str, Any]]:
        """Each configured site's health: ok, down (with why and since when) or pending."""
        return [site_view(n, u, store.site(n)) for n, u in sites]

    @app.get("/api/v1/health")
    def health() -> dict[str, Any]:
        """Liveness and how many sites are up."""
        up = sum(1 for n in names if (st := store.site(n)) is not None and st.failures == 0)
        return {"status": "ok", "sites": len(names), "sites_up": up}

    registry = CollectorRegistry(auto_describe=False)
    registry.register(CentralCollector(store, names))

    @app.get("/metrics", response_class=PlainTextResponse, summary="Prometheus metrics",
             responses={200: {"content": {"text/plain": {}}}})
    def metrics(request: Request) -> Response:
        """Per site up and last pull time, and the sites' gauges with a `site` label."""
        encode, content_type = choose_encoder(request.headers.get("accept", ""))
        return Response(encode(registry), media_type=content_type)

    return app
