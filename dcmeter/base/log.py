"""Structured logging: JSON lines, one event per line, to stdout (journald) or stderr."""

from __future__ import annotations

import logging
import sys
from typing import TextIO

import structlog


def setup(stream: TextIO | None = None, level: str = "info") -> None:
    """Send structlog events as JSON lines to `stream` (stderr unless given).

    Vendor libraries' own loggers are silenced: their failures reach our log once, translated
    by the source that met them.
    """
    for noisy in ("pymodbus", "pyipmi", "pysnmp"):
        logging.getLogger(noisy).setLevel(logging.CRITICAL)
    # Other libraries' warnings (APScheduler skipping an overrunning tick, uvicorn) come out
    # as JSON lines too, with the logger's name.
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processor=structlog.processors.JSONRenderer(),
            foreign_pre_chain=[
                structlog.stdlib.add_log_level,
                structlog.stdlib.add_logger_name,
                structlog.processors.TimeStamper(fmt="iso", utc=True),
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        logger_factory=structlog.PrintLoggerFactory(stream or sys.stderr),
        cache_logger_on_first_use=False,
    )
