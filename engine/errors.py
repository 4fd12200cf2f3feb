"""Errors grouped by what the engine or the API does with them.

::

    SyncJobError
    ├── ConfigurationError        bad input from a caller: 400 at the API, nothing changed
    │   ├── DiscoveryNotSupported a directory whose connector cannot discover its schema
    │   ├── ModelError            JSON that does not fit Graph's model (names the field)
    │   └── MappingError          a mapping or expression that cannot work (names attribute)
    │       └── RegexTimeoutError a regular expression ran past RegexTimeout (object escrowed)
    ├── NotFoundError             unknown job, application or template: 404 at the API
    └── TransitionError           a command the job's state refuses (e.g. pause a NotRun job)
        └── JobRunningElsewhere   another runner holds the job's lease: 409 at the API
            └── LeaseLost         this runner's lease was taken over; its commit is refused
    connectors.base.ConnectorError  (re-exported here; raised by connectors)
    ├── TransientError            retried with backoff, then escrowed
    ├── ObjectError               the object is escrowed, the cycle goes on
    ├── CredentialsError          the cycle fails, the job is quarantined
    └── UnreachableError          the cycle fails, quarantined after successive failures
"""

from __future__ import annotations

from connectors.base import (
    ConnectorError,
    CredentialsError,
    ObjectError,
    TransientError,
    UnreachableError,
)

__all__ = [
    "ConfigurationError",
    "ConnectorError",
    "CredentialsError",
    "DiscoveryNotSupported",
    "JobRunningElsewhere",
    "LeaseLost",
    "MappingError",
    "ModelError",
    "NotFoundError",
    "ObjectError",
    "RegexTimeoutError",
    "SyncJobError",
    "TransientError",
    "TransitionError",
    "UnreachableError",
]


class SyncJobError(Exception):
    """Root of the engine's own errors; ``code`` is the Graph error code the API answers with."""

    code = "generalException"


class ConfigurationError(SyncJobError, ValueError):
    """The caller asked for something that cannot work; nothing was changed."""

    code = "invalidRequest"


class DiscoveryNotSupported(ConfigurationError):
    """The directory's connector cannot read its schema (Graph's discover): nothing changed."""

    code = "DiscoveryNotSupported"


class ModelError(ConfigurationError):
    """Input that does not fit the Graph model; the message names the offending field."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class MappingError(ConfigurationError):
    """A mapping or expression that cannot be evaluated; names the target attribute."""

    def __init__(self, message: str, attribute: str | None = None) -> None:
        super().__init__(message)
        self.attribute = attribute


class RegexTimeoutError(MappingError):
    """A regular expression ran past its time limit for one value.

    A MappingError, so a cycle escrows the object being processed (and retries it later)
    while every other object goes on; parse_expression reports it as an evaluation error.
    """


class NotFoundError(SyncJobError, LookupError):
    """No such job, application or template."""

    code = "itemNotFound"


class TransitionError(SyncJobError):
    """The job's current state does not allow the command."""

    code = "notAllowed"


class JobRunningElsewhere(TransitionError):
    """Another runner (process, thread or engine) is running this job's cycle now."""

    code = "conflict"


class LeaseLost(JobRunningElsewhere):
    """This runner's lease was taken over: what it would commit now could be stale."""


class SourceContractError(ConnectorError):
    """The source broke the contract for a whole read (a watermark that cannot be stored)."""


class CycleFailed(ConnectorError):
    """An unexpected error ended a cycle: recorded on the job like an unreachable directory
    (``lastExecution.error``, quarantine after ``QuarantineUnreachableCycles``)."""
