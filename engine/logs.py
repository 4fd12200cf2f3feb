"""structlog set-up: key/value logs with job, cycle and anchor bound; never attribute values.

The engine calls :func:`configure_logging` only if the host application has not configured
structlog itself, so embedding applications keep control of their logging.
"""

from __future__ import annotations

import logging
import sys

import structlog


def configure_logging(level: str = "INFO", *, json: bool = False, force: bool = False) -> None:
    """Log to stderr at ``level``; debug-level per-object events cost nothing when filtered."""
    if structlog.is_configured() and not force:
        return
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
