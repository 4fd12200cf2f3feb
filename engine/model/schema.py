"""Graph's synchronizationSchema: directories (what exists) and rules (what flows where)."""

from __future__ import annotations

from datetime import datetime

import attrs

from engine.model._enums import AttributeType, FlowBehavior, FlowType, Mutability, SourceType


@attrs.frozen(kw_only=True)
class MetadataEntry:
    """Graph's many ``{key, value}`` metadata entries (string to string)."""

    key: str
    value: str | None = None


@attrs.frozen(kw_only=True)
class ReferencedObject:
    referenced_object_name: str | None = None
    referenced_property: str | None = None


@attrs.frozen(kw_only=True)
class AttributeDefinition:
    name: str | None = None
    type: AttributeType = AttributeType.STRING
    anchor: bool = False
    case_exact: bool = False
    default_value: str | None = None
    flow_null_values: bool = False
    multivalued: bool = False
    mutability: Mutability = Mutability.READ_WRITE
    required: bool = False
    referenced_objects: tuple[ReferencedObject, ...] = ()
    api_expressions: tuple[MetadataEntry, ...] = ()
    metadata: tuple[MetadataEntry, ...] = ()


@attrs.frozen(kw_only=True)
class ObjectDefinition:
    name: str | None = None
    attributes: tuple[AttributeDefinition, ...] = ()
    metadata: tuple[MetadataEntry, ...] = ()
    supported_apis: tuple[str, ...] = ()


@attrs.frozen(kw_only=True)
class DirectoryDefinition:
    id: str | None = None
    name: str | None = None
    objects: tuple[ObjectDefinition, ...] = ()
    discoverabilities: str | None = None
    discovery_date_time: datetime | None = None
    read_only: bool = False
    version: str | None = None
    metadata: tuple[MetadataEntry, ...] = ()


@attrs.frozen(kw_only=True)
class FilterOperand:
    values: tuple[str, ...] = ()


@attrs.frozen(kw_only=True)
class FilterClause:
    operator_name: str
    source_operand_name: str
    target_operand: FilterOperand | None = None


@attrs.frozen(kw_only=True)
class FilterGroup:
    name: str | None = None
    clauses: tuple[FilterClause, ...] = ()


@attrs.frozen(kw_only=True)
class Filter:
    """Scoping: in scope when ANY group holds; a group holds when ALL its clauses hold."""

    groups: tuple[FilterGroup, ...] = ()
    input_filter_groups: tuple[FilterGroup, ...] = ()
    category_filter_groups: tuple[FilterGroup, ...] = ()


@attrs.frozen(kw_only=True)
class AttributeMappingParameter:
    key: str
    value: AttributeMappingSource | None = None


@attrs.frozen(kw_only=True)
class AttributeMappingSource:
    type: SourceType = SourceType.ATTRIBUTE
    name: str | None = None
    expression: str | None = None
    parameters: tuple[AttributeMappingParameter, ...] = ()


@attrs.frozen(kw_only=True)
class AttributeMapping:
    target_attribute_name: str | None = None
    source: AttributeMappingSource | None = None
    default_value: str | None = None
    flow_behavior: FlowBehavior = FlowBehavior.FLOW_WHEN_CHANGED
    flow_type: FlowType = FlowType.ALWAYS
    matching_priority: int = 0
    export_missing_references: bool = False


@attrs.frozen(kw_only=True)
class ObjectMapping:
    name: str | None = None
    enabled: bool = True
    flow_types: str = "Add, Update, Delete"
    scope: Filter | None = None
    source_object_name: str | None = None
    target_object_name: str | None = None
    attribute_mappings: tuple[AttributeMapping, ...] = ()
    metadata: tuple[MetadataEntry, ...] = ()


@attrs.frozen(kw_only=True)
class SynchronizationRule:
    id: str | None = None
    name: str | None = None
    editable: bool = True
    metadata: tuple[MetadataEntry, ...] = ()
    object_mappings: tuple[ObjectMapping, ...] = ()
    priority: int = 0
    source_directory_name: str | None = None
    target_directory_name: str | None = None


@attrs.frozen(kw_only=True)
class SynchronizationSchema:
    id: str | None = None
    directories: tuple[DirectoryDefinition, ...] = ()
    synchronization_rules: tuple[SynchronizationRule, ...] = ()
    version: str | None = None


@attrs.frozen(kw_only=True)
class AttributeMappingParameterSchema:
    name: str
    required: bool = False
    allow_multiple_occurrences: bool = False
    type: AttributeType = AttributeType.STRING


@attrs.frozen(kw_only=True)
class AttributeMappingFunctionSchema:
    name: str
    parameters: tuple[AttributeMappingParameterSchema, ...] = ()


@attrs.frozen(kw_only=True)
class FilterOperatorSchema:
    name: str
    arity: str = "Binary"  # Binary | Unary
    multivalued_comparison_type: str = "All"  # All | Any
    supported_attribute_types: tuple[AttributeType, ...] = ()
