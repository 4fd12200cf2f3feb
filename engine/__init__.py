"""syncjob: a directory synchronization (provisioning) engine with Graph's job model.

The public surface is what ``__all__`` lists; everything else may change without notice.
"""

from engine.clock import Clock, ManualClock, SystemClock
from engine.cycle import CycleProgress
from engine.errors import (
    ConfigurationError,
    ConnectorError,
    CredentialsError,
    JobRunningElsewhere,
    LeaseLost,
    MappingError,
    ModelError,
    NotFoundError,
    ObjectError,
    SyncJobError,
    TransientError,
    TransitionError,
    UnreachableError,
)
from engine.expressions import (
    ExpressionSyntaxError,
    ParseExpressionResult,
    filter_operators,
    functions,
    parse_expression,
)
from engine.jobs import SyncEngine
from engine.lifecycle import Command, transition
from engine.logs import configure_logging
from engine.model import (
    QuarantineReason,
    RestartScope,
    StatusCode,
    SynchronizationJob,
    SynchronizationJobRestartCriteria,
    SynchronizationSchema,
    SynchronizationTaskExecution,
    from_graph,
    to_graph,
)
from engine.store import LogRecord, MemoryStateStore, SqliteStateStore, StateStore
from engine.templates import Template

__all__ = [
    "Clock",
    "Command",
    "ConfigurationError",
    "ConnectorError",
    "CredentialsError",
    "CycleProgress",
    "ExpressionSyntaxError",
    "JobRunningElsewhere",
    "LeaseLost",
    "LogRecord",
    "ManualClock",
    "MappingError",
    "MemoryStateStore",
    "ModelError",
    "NotFoundError",
    "ObjectError",
    "ParseExpressionResult",
    "QuarantineReason",
    "RestartScope",
    "SqliteStateStore",
    "StateStore",
    "StatusCode",
    "SyncEngine",
    "SyncJobError",
    "SynchronizationJob",
    "SynchronizationJobRestartCriteria",
    "SynchronizationSchema",
    "SynchronizationTaskExecution",
    "SystemClock",
    "Template",
    "TransientError",
    "TransitionError",
    "UnreachableError",
    "configure_logging",
    "filter_operators",
    "from_graph",
    "functions",
    "parse_expression",
    "to_graph",
    "transition",
]
