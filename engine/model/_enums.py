"""Graph's enumerations, spelled as Graph writes them; parsing forgives case."""

from __future__ import annotations

import enum
from typing import Any


class GraphEnum(enum.Enum):
    """An enum whose values are Graph's strings; lookup ignores case ("string" -> String)."""

    @classmethod
    def _missing_(cls, value: Any) -> GraphEnum | None:
        if isinstance(value, str):
            wanted = value.strip().lower()
            for member in cls:
                if str(member.value).lower() == wanted:
                    return member
        return None


class StatusCode(GraphEnum):
    NOT_CONFIGURED = "NotConfigured"
    NOT_RUN = "NotRun"
    ACTIVE = "Active"
    PAUSED = "Paused"
    QUARANTINE = "Quarantine"


class ScheduleState(GraphEnum):
    ACTIVE = "Active"
    DISABLED = "Disabled"
    PAUSED = "Paused"


class QuarantineReason(GraphEnum):
    ENCOUNTERED_BASE_ESCROW_THRESHOLD = "EncounteredBaseEscrowThreshold"
    ENCOUNTERED_TOTAL_ESCROW_THRESHOLD = "EncounteredTotalEscrowThreshold"
    ENCOUNTERED_ESCROW_PROPORTION_THRESHOLD = "EncounteredEscrowProportionThreshold"
    ENCOUNTERED_QUARANTINE_EXCEPTION = "EncounteredQuarantineException"
    UNKNOWN = "Unknown"
    QUARANTINED_ON_DEMAND = "QuarantinedOnDemand"
    TOO_MANY_DELETES = "TooManyDeletes"
    INGESTION_INTERRUPTED = "IngestionInterrupted"


class TaskExecutionResult(GraphEnum):
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    ENTRY_LEVEL_ERRORS = "EntryLevelErrors"


class RestartScope(GraphEnum):
    NONE = "None"
    CONNECTOR_DATA_STORE = "ConnectorDataStore"
    ESCROWS = "Escrows"
    WATERMARK = "Watermark"
    QUARANTINE_STATE = "QuarantineState"
    FULL = "Full"
    FORCE_DELETES = "ForceDeletes"


class AttributeType(GraphEnum):
    STRING = "String"
    INTEGER = "Integer"
    REFERENCE = "Reference"
    BINARY = "Binary"
    BOOLEAN = "Boolean"
    DATE_TIME = "DateTime"


class Mutability(GraphEnum):
    READ_WRITE = "ReadWrite"
    READ_ONLY = "ReadOnly"
    IMMUTABLE = "Immutable"
    WRITE_ONLY = "WriteOnly"


class SourceType(GraphEnum):
    ATTRIBUTE = "Attribute"
    CONSTANT = "Constant"
    FUNCTION = "Function"


class FlowType(GraphEnum):
    ALWAYS = "Always"
    OBJECT_ADD_ONLY = "ObjectAddOnly"
    MULTI_VALUE_ADD_ONLY = "MultiValueAddOnly"
    VALUE_ADD_ONLY = "ValueAddOnly"
    ATTRIBUTE_ADD_ONLY = "AttributeAddOnly"


class FlowBehavior(GraphEnum):
    FLOW_WHEN_CHANGED = "FlowWhenChanged"
    FLOW_ALWAYS = "FlowAlways"
