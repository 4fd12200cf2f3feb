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
    # Tracebacks as plain text, never with their frames' local variables (the default console
    # formatter, rich, shows them when installed): a frame may hold the job's secrets.
    processors: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    if json:
        processors += [structlog.processors.format_exc_info, structlog.processors.JSONRenderer()]
    else:
        processors.append(
            structlog.dev.ConsoleRenderer(
                colors=False, exception_formatter=structlog.dev.plain_traceback
            )
        )
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
