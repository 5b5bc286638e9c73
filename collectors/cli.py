"""`dcmeter collector serve`: verify and store batches, serve windows and results."""

from __future__ import annotations

import sys
from pathlib import Path

import structlog
import uvicorn

from collectors import config
from collectors.api import create_app
from collectors.evaluation.site import load_site
from collectors.ingest import Ingest
from collectors.store import Store
from dcmeter import log


def build(path: Path) -> tuple[uvicorn.Server, Store]:
    """Load the config, open the store, and make (not start) the HTTP server."""
    cfg = config.load(path)
    c = cfg.collector
    site = load_site(c.site)
    keyring = config.keyring(cfg, path)
    # Per-window folds use the site's interval limit as their margin (collectors/windows.py).
    store = Store(c.store, fold_gap_s=site.quality.max_gap_s)
    ingest = Ingest(store, keyring, int(c.max_batch_mb * 2**20))
    app = create_app(store, ingest, site, auth=c.auth)
    server = uvicorn.Server(
        uvicorn.Config(app, host=c.host, port=c.port, log_config=None, access_log=False)
    )
    structlog.get_logger("dcmeter.collector").info(
        "collector starting", host=c.host, port=c.port, store=str(c.store),
        agents=sorted(keyring), site=site.site.name, auth=c.auth,
    )
    return server, store


def cmd_serve(path: Path) -> int:
    """Run the collector until SIGTERM or SIGINT."""
    log.setup(sys.stdout)
    server, store = build(path)
    try:
        server.run()
    finally:
        store.close()
    return 0
