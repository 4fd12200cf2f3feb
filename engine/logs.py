"""Logging: structlog events (job, cycle and anchor bound; never attribute values) carried by
the standard ``logging`` module, so the engine is a quiet library.

Embedded, a ``SyncEngine`` routes its events to the stdlib loggers ``syncjob.*``
(:func:`use_standard_logging`): a host that configures ``logging`` gets them as records whose
message reads ``event key=value ...`` and whose attributes hold the same fields (``job_id``,
``cycle_id``, ``anchor``...); a host that configures nothing sees nothing, as the library's
top loggers carry a ``NullHandler`` (the Python logging HOWTO's advice for libraries; without
it stdlib's last-resort handler would print warnings to stderr). The CLI and the daemon, which
own their process, call :func:`configure_logging` for console or JSON lines on stderr.
A host that configured structlog itself keeps its configuration.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

#: the loggers this package logs under (events use ``syncjob.*``); each gets a NullHandler
LIBRARY_LOGGERS = ("syncjob", "engine", "connectors")
#: names a record's ``extra`` may not take (logging refuses to overwrite them)
_RESERVED = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime"}

for _name in LIBRARY_LOGGERS:
    logging.getLogger(_name).addHandler(logging.NullHandler())


class _BoundLogger(structlog.stdlib.BoundLogger):
    """structlog's stdlib logger whose ``debug`` costs one level check when debug is off:
    the cycle logs a debug event per object."""

    def debug(self, event: str | None = None, *args: Any, **kw: Any) -> Any:
        if not self._logger.isEnabledFor(logging.DEBUG):
            return None
        return super().debug(event, *args, **kw)


def _to_record(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> dict[str, Any]:
    """An event as a stdlib record's arguments: the fields written into the message (a host's
    plain formatter shows them) and kept as the record's attributes (``extra``)."""
    event = str(event_dict.pop("event", ""))
    kwargs: dict[str, Any] = {
        k: event_dict.pop(k) for k in ("exc_info", "stack_info") if k in event_dict
    }
    fields = " ".join(f"{k}={_shown(v)}" for k, v in event_dict.items())
    extra = {(f"{k}_" if k in _RESERVED else k): v for k, v in event_dict.items()}
    return {"msg": f"{event} {fields}" if fields else event, "extra": extra, **kwargs}


def _shown(value: object) -> str:
    text = str(value)
    return text if text and not any(c.isspace() or c in "\"'=" for c in text) else repr(text)


def use_standard_logging() -> None:
    """Route the engine's events to stdlib ``logging`` unless structlog was configured
    already (by the host, or by :func:`configure_logging`); SyncEngine calls this."""
    if structlog.is_configured():
        return
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            structlog.contextvars.merge_contextvars,
            _to_record,
        ],
        wrapper_class=_BoundLogger,
        logger_factory=structlog.stdlib.LoggerFactory(),
        cache_logger_on_first_use=True,
    )


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is when a record comes (a test's capture too)."""

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


def configure_logging(level: str = "INFO", *, json: bool = False, force: bool = False) -> None:
    """For a process the engine owns (the CLI, the daemon): the library's events at ``level``
    and above as console or JSON lines on stderr. Does nothing if structlog is configured
    already, unless ``force``."""
    if structlog.is_configured() and not force:
        return
    # Tracebacks as plain text, never with their frames' local variables (the default console
    # formatter, rich, shows them when installed): a frame may hold the job's secrets.
    renderer: list[structlog.typing.Processor] = (
        [structlog.processors.format_exc_info, structlog.processors.JSONRenderer()]
        if json
        else [
            structlog.dev.ConsoleRenderer(
                colors=False, exception_formatter=structlog.dev.plain_traceback
            )
        ]
    )
    stamps: list[structlog.typing.Processor] = [
        structlog.stdlib.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    formatter = structlog.stdlib.ProcessorFormatter(
        processors=[*stamps, structlog.stdlib.ProcessorFormatter.remove_processors_meta, *renderer],
        foreign_pre_chain=stamps,
    )
    handler = _StderrHandler()
    handler.setFormatter(formatter)
    number = logging.getLevelNamesMapping()[level.upper()]
    for name in LIBRARY_LOGGERS:
        logger = logging.getLogger(name)
        for old in [h for h in logger.handlers if isinstance(h, _StderrHandler)]:
            logger.removeHandler(old)
        logger.addHandler(handler)
        logger.setLevel(number)
        logger.propagate = False  # the process's one output for these events: never twice
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            structlog.contextvars.merge_contextvars,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        wrapper_class=_BoundLogger,
        logger_factory=structlog.stdlib.LoggerFactory(),
        cache_logger_on_first_use=True,
    )
