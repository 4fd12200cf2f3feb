"""Object mapping: from a source object to the attributes the target should have. Pure.

A schema's object mapping is compiled once (scoping filter, attribute evaluators, matching
order) and then applied to every object. ``diff`` turns desired values and the values last
exported into the smallest update, honouring each attribute's flowType and caseExact.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import attrs

from connectors.base import Attributes, Scalar, Value, ValueDelta, as_list
from engine.directory_values import check_value
from engine.errors import ConfigurationError, MappingError
from engine.expressions import IGNORE, Env, compile_expression, from_mapping_source
from engine.expressions.values import DEFAULT_REGEX_SECONDS
from engine.model import (
    AttributeDefinition,
    AttributeMapping,
    AttributeType,
    FlowBehavior,
    FlowType,
    ObjectMapping,
    SourceType,
    SynchronizationRule,
    SynchronizationSchema,
)
from engine.scoping import Predicate, compile_scope

Evaluator = Callable[[Attributes, Env], Any]


def _no_clock() -> Any:
    raise MappingError("this evaluation has no clock: pass an Env to map_object")


#: For mappings used outside a cycle (tests, tools): no time, no target to check.
PURE_ENV = Env(now=_no_clock)


def _attribute(name: str) -> Evaluator:
    lowered = name.lower()

    def read(source: Attributes, env: Env) -> Value | None:
        value = source.get(name)
        if value is None:
            for key, candidate in source.items():
                if key.lower() == lowered:
                    return candidate
        return value

    return read


@attrs.frozen(kw_only=True)
class CompiledAttribute:
    target: str
    evaluate: Evaluator
    source_attribute: str | None  # set for direct attribute sources: read without a call
    flow_type: FlowType
    flow_always: bool
    default_value: str | None
    case_exact: bool
    references: str | None = None  # the object type a Reference attribute points to
    multivalued: bool = False


@attrs.frozen(kw_only=True)
class CompiledMapping:
    """One object mapping, ready to apply; ``key`` names its state in the store."""

    key: str
    source_type: str
    target_type: str
    attributes: tuple[CompiledAttribute, ...]
    matching: tuple[str, ...]
    scope: Predicate | None
    flows: frozenset[str]
    #: (target attribute, key of the mapping whose links resolve it), set by link_references
    references: tuple[tuple[str, str], ...] = ()
    plan: tuple[tuple[str, str | None, Evaluator, str | None, bool], ...] = attrs.field(init=False)
    has_create_only: bool = attrs.field(init=False)
    may_ignore: bool = attrs.field(init=False)
    #: lower-cased views of source key layouts seen so far (objects of one directory share a
    #: few layouts), so a missing attribute costs a lookup instead of a scan of every key
    layouts: dict[tuple[str, ...], dict[str, str]] = attrs.field(
        init=False, factory=dict, eq=False, repr=False
    )

    def __attrs_post_init__(self) -> None:
        # the hot loop of map_object reads plain tuples, not attrs objects
        plan = tuple(
            (
                a.target,
                a.source_attribute,
                a.evaluate,
                a.default_value,
                a.flow_type is FlowType.OBJECT_ADD_ONLY,
            )
            for a in self.attributes
        )
        object.__setattr__(self, "plan", plan)
        object.__setattr__(self, "has_create_only", any(p[4] for p in plan))
        object.__setattr__(self, "may_ignore", any(p[1] is None for p in plan))

    def in_scope(self, source: Attributes) -> bool:
        return self.scope is None or self.scope(source)


def mapping_key(rule: SynchronizationRule, mapping: ObjectMapping) -> str:
    """The name of a mapping's state (watermark, links, escrows) in the store.

    The first mapping of a rule from one object type to another keeps the historical key
    ``rule:source:target`` (stored watermarks stay valid); a later one between the same types
    adds its own name, so two mappings never share a watermark (validation refuses a schema
    where the names do not tell them apart).
    """
    rule_id = rule.id or rule.name or "rule"
    key = f"{rule_id}:{mapping.source_object_name}:{mapping.target_object_name}"
    pair = (mapping.source_object_name, mapping.target_object_name)
    for sibling in rule.object_mappings:
        if (sibling.source_object_name, sibling.target_object_name) == pair:
            return key if sibling is mapping else f"{key}:{mapping.name or ''}"
    return key


def _definitions(
    schema: SynchronizationSchema, directory: str | None, object_name: str | None
) -> Mapping[str, AttributeDefinition]:
    for candidate in schema.directories:
        if candidate.name != directory:
            continue
        for obj in candidate.objects:
            if obj.name == object_name:
                return {a.name.lower(): a for a in obj.attributes if a.name}
    return {}


def compile_mapping(
    schema: SynchronizationSchema,
    rule: SynchronizationRule,
    mapping: ObjectMapping,
    *,
    regex_timeout: float = DEFAULT_REGEX_SECONDS,
) -> CompiledMapping:
    """Compile one object mapping; raises MappingError naming what cannot work.

    ``regex_timeout`` (the job's RegexTimeout, seconds) is bound into the scoping filter.
    """
    if not mapping.source_object_name or not mapping.target_object_name:
        raise MappingError(f"object mapping {mapping.name!r} needs source and target object names")
    targets = _definitions(schema, rule.target_directory_name, mapping.target_object_name)
    sources = _definitions(schema, rule.source_directory_name, mapping.source_object_name)
    flows = frozenset(f.strip().lower() for f in mapping.flow_types.split(",") if f.strip())
    unknown = flows - {"add", "update", "delete"}
    if unknown:
        raise MappingError(f"unknown flowTypes {sorted(unknown)} in {mapping.name!r}")
    compiled: list[CompiledAttribute] = []
    matching: list[tuple[int, str]] = []
    for am in mapping.attribute_mappings:
        name = am.target_attribute_name
        if not name:
            raise MappingError("an attribute mapping has no targetAttributeName")
        evaluate = _evaluator(am)
        definition = targets.get(name.lower())
        direct = am.source is not None and am.source.type is SourceType.ATTRIBUTE
        source_definition = (
            sources.get((am.source.name or "").lower()) if direct and am.source else None
        )
        compiled.append(
            CompiledAttribute(
                target=name,
                evaluate=evaluate,
                source_attribute=am.source.name if direct and am.source else None,
                flow_type=am.flow_type,
                flow_always=am.flow_behavior is FlowBehavior.FLOW_ALWAYS,
                default_value=am.default_value,
                case_exact=bool(definition and definition.case_exact),
                references=_referenced(definition) or _referenced(source_definition),
                multivalued=bool(definition and definition.multivalued),
            )
        )
        if am.matching_priority > 0:
            matching.append((am.matching_priority, name))
    if "add" in flows and not matching:
        raise MappingError(
            f"object mapping {mapping.source_object_name}->{mapping.target_object_name} has no "
            "matching attribute (matchingPriority > 0): without one a replayed create would "
            "duplicate the object"
        )
    return CompiledMapping(
        key=mapping_key(rule, mapping),
        source_type=mapping.source_object_name,
        target_type=mapping.target_object_name,
        attributes=tuple(compiled),
        matching=tuple(name for _, name in sorted(matching)),
        scope=compile_scope(mapping.scope, regex_timeout),
        flows=flows,
    )


def _referenced(definition: AttributeDefinition | None) -> str | None:
    if definition is None or definition.type is not AttributeType.REFERENCE:
        return None
    for referenced in definition.referenced_objects:
        if referenced.referenced_object_name:
            return referenced.referenced_object_name
    return None


def link_references(mappings: list[CompiledMapping]) -> list[CompiledMapping]:
    """Point each Reference attribute at the mapping whose links translate its values."""
    linked = []
    for mapping in mappings:
        references = []
        for attribute in mapping.attributes:
            if attribute.references is None:
                continue
            owners = [m for m in mappings if m.target_type == attribute.references]
            if not owners:
                raise MappingError(
                    f"{attribute.target} refers to {attribute.references} objects, but no "
                    "enabled object mapping provisions them",
                    attribute=attribute.target,
                )
            references.append((attribute.target, owners[0].key))
        linked.append(
            attrs.evolve(mapping, references=tuple(references)) if references else mapping
        )
    return linked


def _evaluator(am: AttributeMapping) -> Evaluator:
    source = am.source
    target = am.target_attribute_name
    if source is None:
        return lambda _source, _env: None  # the defaultValue, if any, acts as a constant
    if source.type is SourceType.ATTRIBUTE:
        if not source.name:
            raise MappingError(f"{target}: Attribute source has no name", attribute=target)
        return _attribute(source.name)
    if source.type is SourceType.CONSTANT:
        constant = source.name
        return lambda _source, _env: constant
    try:
        expression = compile_expression(from_mapping_source(source), target_attribute=target)
    except MappingError as exc:
        raise MappingError(f"{target}: {exc}", attribute=target) from None
    return expression.run


def map_object(
    mapping: CompiledMapping,
    source: Attributes,
    env: Env = PURE_ENV,
    *,
    creating: bool = True,
    ignored: list[str] | None = None,
) -> dict[str, Value]:
    """The attributes the target object should have; attributes without a value are left out.

    Direct attribute sources are read inline (the hot path of every cycle); a name missing in
    the exact case is looked up again ignoring case, through one lower-cased copy per object.
    ``creating=False`` skips ObjectAddOnly attributes (they flow only on create). Attributes
    that IgnoreFlowIfNullOrEmpty drops are left out and named in ``ignored``. A value outside
    the connector contract (a dict, a float, a nested list, an over-long or 65-bit value)
    raises ValueRefused, so the object is escrowed, never exported as a repr.
    """
    desired: dict[str, Value] = {}
    get = source.get
    lowered: dict[str, str] | None = None
    for target, name, evaluate, default, create_only in mapping.plan:
        if create_only and not creating:
            continue
        if name is None:
            value = evaluate(source, env)
            if value is IGNORE:
                if ignored is not None:
                    ignored.append(target)
                continue
        else:
            value = get(name)
            if value is None:
                if lowered is None:
                    lowered = _layout(mapping, source)
                key = lowered.get(name.lower())
                value = None if key is None else get(key)
        if value is None or value in ("", []):
            if default is None:
                continue
            value = default
        elif value.__class__ is not str:
            check_value(target, value)  # sources may hand over anything: refuse what is odd
        desired[target] = value
    return desired


def _layout(mapping: CompiledMapping, source: Attributes) -> dict[str, str]:
    """Lower-cased name -> actual key, cached per key layout."""
    keys = tuple(source)
    layout = mapping.layouts.get(keys)
    if layout is None:
        if len(mapping.layouts) > 256:
            mapping.layouts.clear()
        layout = mapping.layouts[keys] = {k.lower(): k for k in keys}
    return layout


def _normal(value: Value | None, case_exact: bool) -> list[Scalar]:
    values = as_list(value)
    if not case_exact:
        values = [v.lower() if isinstance(v, str) else v for v in values]
    try:
        return sorted(values)  # of one type: natural order
    except TypeError:  # mixed types (str and bytes)
        return sorted(values, key=repr)


def value_delta(want: Value | None, had: Value | None, case_exact: bool) -> ValueDelta:
    """The values to add and remove to go from ``had`` to ``want`` (order kept; case-only
    differences are no change unless the attribute is case-exact)."""

    def key(v: Scalar) -> Scalar:
        return v if case_exact or not isinstance(v, str) else v.lower()

    wanted, held = as_list(want), as_list(had)
    lower: Any = str.lower
    try:  # the common case, text compared without case: str.lower runs in C
        wanted_keys = wanted if case_exact else list(map(lower, wanted))
        held_keys = held if case_exact else list(map(lower, held))
    except TypeError:  # not all text
        wanted_keys, held_keys = list(map(key, wanted)), list(map(key, held))
    have, keep = set(held_keys), set(wanted_keys)
    if have == keep:
        return ValueDelta()
    added = tuple(dict.fromkeys(v for v, k in zip(wanted, wanted_keys, strict=True)
                                if k not in have))  # fmt: skip
    removed = tuple(v for v, k in zip(held, held_keys, strict=True) if k not in keep)
    return ValueDelta(add=added, remove=removed)


def diff(
    mapping: CompiledMapping,
    desired: Mapping[str, Value],
    exported: Mapping[str, Value] | None,
    *,
    value_deltas: bool = False,
) -> dict[str, Value | ValueDelta | None]:
    """The smallest update from what was exported to what is desired (None clears).

    ``exported=None`` means the target object's values are unknown: an object joined by its
    matching value (never written by us, or back in scope after we stopped managing it) or one
    whose last write a crash left in doubt. Then every desired value is sent and every mapped
    attribute without a desired value is cleared, so nothing stale survives a (re-)join;
    add-only flows only ever add.

    With ``value_deltas`` (the target declares ``VALUE_DELTAS``), a change of a multi-valued
    attribute that was exported as a list is sent as the values to add and to remove, so one
    new member of a large group is one value on the wire.
    """
    delta: dict[str, Value | ValueDelta | None] = {}
    for attribute in mapping.attributes:
        name = attribute.target
        flow = attribute.flow_type
        if flow is FlowType.OBJECT_ADD_ONLY:
            continue
        want = desired.get(name)
        if exported is None:
            adds_only = flow in (FlowType.VALUE_ADD_ONLY, FlowType.MULTI_VALUE_ADD_ONLY)
            if value_deltas and adds_only and isinstance(want, list):
                delta[name] = ValueDelta(add=tuple(want))  # add to what the target has
            elif want is not None:
                delta[name] = want
            elif flow is FlowType.ALWAYS:
                delta[name] = None
            continue
        had = exported.get(name)
        if value_deltas and isinstance(had, list) and isinstance(want, list):
            if flow is FlowType.ATTRIBUTE_ADD_ONLY:
                continue  # it has a value: never updated (as below)
            change = value_delta(want, had, attribute.case_exact)
            if flow in (FlowType.VALUE_ADD_ONLY, FlowType.MULTI_VALUE_ADD_ONLY):
                if change.add:  # add-only: never a removal, nor a shorter list in its place
                    delta[name] = change._replace(remove=())
                elif attribute.flow_always:
                    delta[name] = ValueDelta(add=tuple(want))
                continue
            if change.add or change.remove:
                delta[name] = change
            elif attribute.flow_always:
                delta[name] = want
            continue
        same = _normal(want, attribute.case_exact) == _normal(had, attribute.case_exact)
        if same and not attribute.flow_always:
            continue
        if flow is FlowType.ATTRIBUTE_ADD_ONLY and had is not None:
            continue
        if flow in (FlowType.VALUE_ADD_ONLY, FlowType.MULTI_VALUE_ADD_ONLY):
            if want is None:
                continue
            merged = list(as_list(had))
            merged += [v for v in as_list(want) if v not in merged]
            if merged == as_list(had) and not attribute.flow_always:
                continue
            delta[name] = merged if isinstance(want, list) or len(merged) > 1 else merged[0]
            continue
        delta[name] = want
    return delta


def compile_schema(schema: SynchronizationSchema, regex_seconds: float) -> list[CompiledMapping]:
    """The enabled object mappings in rule priority order, references linked; a schema with
    none is a ConfigurationError."""
    compiled = []
    for rule in sorted(schema.synchronization_rules, key=lambda r: r.priority):
        for mapping in rule.object_mappings:
            if mapping.enabled:
                compiled.append(compile_mapping(schema, rule, mapping, regex_timeout=regex_seconds))
    if not compiled:
        raise ConfigurationError("the schema has no enabled object mapping")
    return link_references(compiled)
