"""`dcmeter collector serve`: verify and store batches, serve windows and results."""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from pathlib import Path

import structlog
import uvicorn

from dcmeter.base import log, sdnotify
from dcmeter.collectors import config
from dcmeter.collectors.evaluation.site import Site, load_site
from dcmeter.collectors.intake.ingest import Ingest
from dcmeter.collectors.results.frozen import file_sha256, unknown_sources
from dcmeter.collectors.storage.db import masked
from dcmeter.collectors.storage.series_table import SeriesLimits
from dcmeter.collectors.storage.store import Store
from dcmeter.collectors.web.api import create_app
from dcmeter.collectors.web.http_server import uvicorn_limits
from dcmeter.collectors.web.limits import AppLimits


def build(path: Path) -> tuple[uvicorn.Server, Store]:
    """Load the config, open the store, and make (not start) the HTTP server."""
    cfg = config.load(path)
    c = cfg.collector
    site = load_site(c.site)
    # Kept with every frozen result: the site file these results were computed with.
    site_sha256 = file_sha256(c.site)
    keyring = config.keyring(cfg, path)
    # Per-window folds use the site's interval limit as their margin
    # (collectors/results/windows.py).
    store = Store(c.store, fold_gap_s=site.quality.max_gap_s,
                  limits=SeriesLimits(c.max_series_per_agent, c.max_series_per_source))
    unknown_site_sources(store, site, c.site)
    for conflict in store.bind_sources(config.source_bindings(cfg), time.time_ns()):
        structlog.get_logger("dcmeter.collector").warning("source binding kept", detail=conflict)
    ingest = Ingest(store, keyring, int(c.max_batch_mb * 2**20),
                    reload=lambda: config.keyring(cfg, path))
    app = create_app(store, ingest, site, auth=c.auth, limits=AppLimits.of(c),
                     site_sha256=site_sha256)
    server = uvicorn.Server(
        uvicorn.Config(app, host=c.host, port=c.port, log_config=None, access_log=False,
                       **config.uvicorn_tls(c.tls), **uvicorn_limits(c))
    )
    structlog.get_logger("dcmeter.collector").info(
        "collector starting", host=c.host, port=c.port, store=masked(c.store),
        agents=sorted(keyring), site=site.site.name, site_sha256=site_sha256, auth=c.auth,
        tls="mutual" if c.tls and c.tls.client_ca_file else "on" if c.tls else "off",
    )
    return server, store


def unknown_site_sources(store: Store, site: Site, path: Path | str) -> None:
    """Log one line per source id the site file names that the store has never seen (no
    agent reported it, none owns it): a typo there would quietly empty a window's figures."""
    unknown = unknown_sources(store, site)
    # A store no agent has delivered to yet knows no source: that is expected, not a fault.
    fresh = not store.seen_sources()
    logger = structlog.get_logger("dcmeter.collector")
    for source in unknown:
        (logger.info if fresh else logger.warning)(
            "site file names a source the store has never seen", source=source,
            site_file=str(path),
            hint="no agent has reported it yet" if fresh else
            "check the id against the agents' configs: windows read nothing from it",
        )


async def tell_systemd(server: uvicorn.Server, notifier: sdnotify.Notifier) -> None:
    """READY=1 once uvicorn listens, WATCHDOG=1 from its loop, STOPPING=1 when told to stop."""
    interval = sdnotify.watchdog_interval()
    watchdog = None
    try:
        # uvicorn polls `should_exit` every 0.1 s in its own main loop; so does this.
        while not server.started and not server.should_exit:
            await asyncio.sleep(0.05)
        if server.started and not server.should_exit:
            c = server.config
            notifier.notify("READY=1", f"STATUS=serving on {c.host}:{c.port}")
            if interval:
                watchdog = asyncio.create_task(sdnotify.watchdog(notifier, interval))
        while not server.should_exit:
            await asyncio.sleep(0.1)
        notifier.notify("STOPPING=1", "STATUS=stopping")
    finally:
        if watchdog:
            watchdog.cancel()


async def serve_notifying(server: uvicorn.Server) -> None:
    """Run `server`, telling systemd its state through sd_notify (a no-op outside systemd)."""
    notifier = sdnotify.Notifier()
    side = asyncio.create_task(tell_systemd(server, notifier))
    try:
        await server.serve()
    finally:
        side.cancel()
        await asyncio.gather(side, return_exceptions=True)
        notifier.close()


def cmd_serve(path: Path) -> int:
    """Run the collector until SIGTERM or SIGINT; a SIGTERM stop exits 0."""
    log.setup(sys.stdout)
    server, store = build(path)
    # uvicorn restores the handler it found and raises the signal again once it has shut
    # down: with the default handler SIGTERM would kill the process before the store is
    # closed. A handler that does nothing lets the store close and the process exit 0.
    signal.signal(signal.SIGTERM, lambda signum, frame: None)
    try:
        with asyncio.Runner(loop_factory=server.config.get_loop_factory()) as runner:
            runner.run(serve_notifying(server))
    finally:
        store.close()
    return 0
