"""Pull windows, results and gauges from site collectors into the central's store.

One task per site, each with its own HTTP client and per-request timeout: a site that is down
(unreachable, slow, 5xx, refusing the token) is one failed site, logged once when it goes
down and once when it recovers, retried every interval; the others are never delayed.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
import structlog
from prometheus_client.parser import text_string_to_metric_families
from pydantic import BaseModel, ConfigDict, ValidationError

from dcmeter.collectors.central.central_config import SiteTarget
from dcmeter.collectors.central.central_store import CentralStore, Gauge, PulledWindow

log = structlog.get_logger("dcmeter.central")

# The site gauges the central keeps (docs/metrics.md), with the labels each may carry: a fixed
# set, so whatever a site serves, the central's label sets stay bounded.
SITE_GAUGES: dict[str, tuple[str, tuple[str, ...]]] = {
    "dcmeter_site_total_power_watts": ("Site total power, mean of the last 15 min, W.", ()),
    "dcmeter_site_it_power_watts": ("Site IT power, mean of the last 15 min, W.", ()),
    "dcmeter_pue_last_hour": ("PUE of the site's last hour.", ()),
    "dcmeter_pue_last_hour_valid": ("1 when the site's last-hour PUE is valid, else 0.", ()),
    "dcmeter_load_last_hour_ratio": ("Load U (0..1) per device kind over the last hour.",
                                     ("kind",)),
    "dcmeter_windows_open": ("Measurement windows open at the site, by kind.", ("kind",)),
}
DETAIL_CONCURRENCY = 4  # window results fetched at once from one site


class SiteDown(Exception):
    """A site could not be pulled; str() is the reason, one line, never the token."""


class _Summary(BaseModel):
    """A window as a site collector lists it (GET /api/v1/windows)."""

    model_config = ConfigDict(extra="ignore")

    id: int
    kind: str
    state: str
    start: str
    end: str | None
    note: str | None
    # A closed window's latest stored revision (collectors/results/frozen.py).
    revision: int | None = None


@dataclass(frozen=True, slots=True)
class Outcome:
    """One site's pull: ok or not, windows listed and results fetched, the reason if down."""

    site: str
    ok: bool
    windows: int = 0
    fetched: int = 0
    error: str | None = None

    def line(self) -> str:
        """The one-line summary `dcmeter central pull --once` prints."""
        if self.ok:
            return f"{self.site}: ok: {self.windows} windows ({self.fetched} results pulled)"
        return f"{self.site}: down: {self.error}"


def _detail(r: httpx.Response) -> str:
    try:
        body = r.json()
        detail = body.get("detail") if isinstance(body, dict) else None
    except ValueError:
        detail = None
    text = str(detail) if detail is not None else r.text
    return " ".join(text.split())[:200] or r.reason_phrase


class SiteClient:
    """The GETs the central makes to one site collector; every failure becomes SiteDown."""

    def __init__(self, target: SiteTarget, timeout_s: float,
                 transport: httpx.AsyncBaseTransport | None = None,
                 verify: ssl.SSLContext | bool = True) -> None:
        """Talk to `target` with its reader token; `timeout_s` bounds each request; `verify`:
        the TLS context (the Puller shares one among its sites), or True for httpx's own."""
        self.target = target
        self.timeout_s = timeout_s
        self.http = httpx.AsyncClient(
            base_url=target.url, timeout=timeout_s, transport=transport, verify=verify,
            headers={"Authorization": f"Bearer {target.token}"},
        )

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self.http.aclose()

    async def get(self, path: str) -> httpx.Response:
        """GET `path`: the 200 answer, or SiteDown naming why not."""
        try:
            r = await self.http.get(path)
        except httpx.TimeoutException:
            raise SiteDown(f"no answer within {self.timeout_s:g} s (GET {path})") from None
        except httpx.HTTPError as exc:
            raise SiteDown(f"unreachable: {exc or type(exc).__name__}") from None
        if r.status_code in (401, 403):
            raise SiteDown(
                f"refused the token ({r.status_code}): {_detail(r)}: put a reader token of this"
                f" site's collector in {self.target.token_file}"
            )
        if r.status_code >= 500:
            raise SiteDown(f"server error ({r.status_code}) on GET {path}: {_detail(r)}")
        if r.status_code != 200:
            raise SiteDown(f"GET {path} answered {r.status_code}: {_detail(r)}")
        return r

    async def json(self, path: str) -> Any:
        """GET `path` as JSON."""
        r = await self.get(path)
        try:
            return r.json()
        except ValueError:
            raise SiteDown(f"GET {path}: the answer is not JSON") from None


def parse_gauges(text: str) -> list[Gauge]:
    """The site gauges the central keeps, from a Prometheus text exposition."""
    out = []
    try:
        for family in text_string_to_metric_families(text):
            spec = SITE_GAUGES.get(family.name)
            if spec is None:
                continue
            for s in family.samples:
                if s.name != family.name:
                    continue
                out.append(Gauge(s.name, {k: s.labels.get(k, "") for k in spec[1]},
                                 float(s.value)))
    except ValueError as exc:
        raise SiteDown(f"GET /metrics: not the Prometheus text format: {exc}") from None
    return out


def _revision(result: dict[str, Any] | None) -> int | None:
    """The revision number of a pulled result (None before a site stored revisions)."""
    block = (result or {}).get("revision")
    return block.get("number") if isinstance(block, dict) else None


async def fetch_site(
    client: SiteClient, store: CentralStore, clock: Callable[[], int] = time.time_ns
) -> tuple[list[PulledWindow], list[Gauge], int]:
    """Everything one pull of a site brings: the windows to store (open ones, and closed ones
    not pulled since they closed or since their latest re-evaluation, with their results),
    its gauges, and how many it lists."""
    name = client.target.name
    raw = await client.json("/api/v1/windows")
    try:
        listed = [_Summary.model_validate(w) for w in raw]
    except (TypeError, ValidationError) as exc:
        raise SiteDown(f"GET /api/v1/windows: not a list of windows: {exc}".splitlines()[0]) \
            from None
    stored = {w.id: w for w in store.windows(name)}
    todo = [w for w in listed if w.state != "closed" or w.id not in stored
            or stored[w.id].state != "closed" or stored[w.id].result is None
            or _revision(stored[w.id].result) != w.revision]
    gate = asyncio.Semaphore(DETAIL_CONCURRENCY)

    async def one(w: _Summary) -> PulledWindow:
        async with gate:
            result = await client.json(f"/api/v1/windows/{w.id}")
        if not isinstance(result, dict):
            raise SiteDown(f"GET /api/v1/windows/{w.id}: the result is not a JSON object")
        return PulledWindow(name, w.id, w.kind, w.state, w.start, w.end, w.note, result,
                            clock())

    windows = list(await asyncio.gather(*(one(w) for w in todo)))
    gauges = parse_gauges((await client.get("/metrics")).text)
    return windows, gauges, len(listed)


class Puller:
    """Pull a set of sites into a store, each on its own, logging each site's ups and downs."""

    def __init__(
        self, store: CentralStore, targets: Sequence[SiteTarget], timeout_s: float = 10.0,
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        """Pull `targets` into `store`; `timeout_s` bounds each request to a site."""
        self.store = store
        # One TLS context for every site: httpx builds one per client by default, loading the
        # CA bundle each time (23 ms of CPU a site here: 23 s at start for 1,000 sites,
        # bench/central_pull.py). The context is read-only once made, so sharing is safe.
        tls = httpx.create_ssl_context()
        self.clients = [SiteClient(t, timeout_s, verify=tls) for t in targets]
        self.clock = clock

    async def aclose(self) -> None:
        """Close every site's connection pool."""
        for c in self.clients:
            await c.aclose()

    async def pull(self, client: SiteClient) -> Outcome:
        """Pull one site once and record how it went; never raises for a site's fault."""
        t = client.target
        before = self.store.site(t.name)
        was_down = before is not None and before.failures > 0
        try:
            windows, gauges, listed = await fetch_site(client, self.store, self.clock)
        except SiteDown as exc:
            state = self.store.record_failure(t.name, t.url, str(exc), self.clock())
            if not was_down:
                log.warning("site down", site=t.name, url=t.url, reason=str(exc))
            return Outcome(t.name, False, error=f"{exc} (failed pulls: {state.failures})")
        now = self.clock()
        self.store.save_pull(t.name, t.url, windows, gauges, now)
        if was_down and before is not None:
            down_s = (now - (before.down_since_ns or now)) / 1e9
            log.info("site recovered", site=t.name, url=t.url, failed_pulls=before.failures,
                     down_for_s=round(down_s, 3))
        return Outcome(t.name, True, listed, len(windows))

    async def pull_all(self) -> list[Outcome]:
        """Pull every site once, concurrently; outcomes in the configured order."""
        return list(await asyncio.gather(*(self.pull(c) for c in self.clients)))

    async def run(self, interval_s: float, stop: asyncio.Event) -> None:
        """Pull every site every `interval_s` seconds, each in its own task, until `stop`."""

        async def loop(client: SiteClient) -> None:
            due = time.monotonic()
            while not stop.is_set():
                try:
                    await self.pull(client)
                except Exception:  # a fault of ours (the store): keep the other sites going
                    log.exception("pull failed", site=client.target.name)
                due += interval_s
                now = time.monotonic()
                if due < now:  # a pull that overran its interval: skip the missed ticks
                    due += (now - due) // interval_s * interval_s + interval_s
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), due - now)

        await asyncio.gather(*(loop(c) for c in self.clients))


async def pull_once(
    store: CentralStore, targets: Sequence[SiteTarget], timeout_s: float = 10.0,
    clock: Callable[[], int] = time.time_ns,
) -> list[Outcome]:
    """Pull every site once (concurrently) into `store`."""
    puller = Puller(store, targets, timeout_s, clock)
    try:
        return await puller.pull_all()
    finally:
        await puller.aclose()
