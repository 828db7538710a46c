"""Structured logs that an operator can grep: tags, bound ids, masked phones.

Lifecycle lines start with ``[WA_BROADCAST]`` and per-message lines with
``[WA_SEND]`` (the seed's tags); every line about a broadcast carries
``broadcast_id``. Phone numbers are masked to their last 4 digits by the code
that logs them (``domain.phones.mask_phone``).
"""

from __future__ import annotations

import logging
import sys
from typing import Literal

import structlog

BROADCAST_TAG = "[WA_BROADCAST]"
SEND_TAG = "[WA_SEND]"


def configure_logging(
    fmt: Literal["console", "json"] = "console",
    level: Literal["debug", "info", "warning", "error"] = "info",
) -> None:
    """Route structlog and stdlib logging to stderr in the chosen format."""
    renderer: structlog.types.Processor
    if fmt == "json":
        renderer = structlog.processors.JSONRenderer()
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=False,
    )
    logging.basicConfig(stream=sys.stderr, level=level.upper(), format="%(message)s")
    # Alembic narrates every migration step at INFO; only its problems matter here.
    logging.getLogger("alembic").setLevel(logging.WARNING)


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    logger: structlog.stdlib.BoundLogger = structlog.get_logger(name)
    return logger
