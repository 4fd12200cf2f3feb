"""Schema checks at the door: what compiles may still be wrong in ways a cycle would hide.

``compile_mapping`` refuses what cannot run (a bad expression in an enabled mapping, no
matching attribute). This module refuses what would run wrongly or silently: names no
directory defines, duplicates where the last one would win, two mappings sharing one
watermark, a Reference as the matching attribute, and expressions anywhere in the schema
(disabled mappings and Attribute or Constant sources included) that do not parse. Every
message starts with the JSON path of the offending part.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TypeVar

from engine.errors import MappingError
from engine.expressions import compile_expression, from_mapping_source, parse
from engine.expressions.syntax import Attribute, Call, Compare, Literal, Node
from engine.mapping import mapping_key
from engine.model import (
    AttributeDefinition,
    AttributeMappingSource,
    AttributeType,
    ObjectDefinition,
    SourceType,
    SynchronizationRule,
    SynchronizationSchema,
)
from engine.scoping import compile_scope

T = TypeVar("T")


def validate_schema(schema: SynchronizationSchema) -> None:
    """Raise MappingError naming the first problem of ``schema``; return when there is none."""
    _unique("$.directories", "directory", schema.directories, lambda d: d.name)
    for d, directory in enumerate(schema.directories):
        _unique(f"$.directories[{d}].objects", "object", directory.objects, lambda o: o.name)
        for o, obj in enumerate(directory.objects):
            _unique(
                f"$.directories[{d}].objects[{o}].attributes",
                "attribute",
                obj.attributes,
                lambda a: (a.name or "").lower() or None,
            )
    rules = schema.synchronization_rules
    _unique("$.synchronizationRules", "rule id", rules, lambda r: r.id)
    keys: dict[str, str] = {}
    for r, rule in enumerate(rules):
        _names_tell_apart(rule, f"$.synchronizationRules[{r}]")
        for m, mapping in enumerate(rule.object_mappings):
            path = f"$.synchronizationRules[{r}].objectMappings[{m}]"
            _check_mapping(schema, rule, m, path)
            key = mapping_key(rule, mapping)
            if key in keys:
                raise MappingError(
                    f"{path}: shares its state (watermark, links) with {keys[key]}: give each "
                    f"object mapping from {mapping.source_object_name} to "
                    f"{mapping.target_object_name} in one rule its own name"
                )
            keys[key] = path


def _names_tell_apart(rule: SynchronizationRule, path: str) -> None:
    """Mappings of one rule between the same object types need distinct, non-empty names:
    the names key their watermarks apart (see ``mapping_key``)."""
    seen: dict[tuple[str | None, str | None], set[str]] = {}
    for m, mapping in enumerate(rule.object_mappings):
        pair = (mapping.source_object_name, mapping.target_object_name)
        names = seen.get(pair)
        if names is not None and (not mapping.name or mapping.name in names):
            raise MappingError(
                f"{path}.objectMappings[{m}]: a second object mapping from {pair[0]} to "
                f"{pair[1]} in one rule needs its own name (it keys the mapping's watermark "
                "and links apart)"
            )
        seen.setdefault(pair, set()).add(mapping.name or "")


def _check_mapping(
    schema: SynchronizationSchema, rule: SynchronizationRule, index: int, path: str
) -> None:
    mapping = rule.object_mappings[index]
    source = _object(schema, rule.source_directory_name, mapping.source_object_name, path, "source")
    target = _object(schema, rule.target_directory_name, mapping.target_object_name, path, "target")
    for side, obj in (("source", source), ("target", target)):
        if obj is not None and obj.attributes:
            anchors = [a.name for a in obj.attributes if a.anchor]
            if len(anchors) != 1:
                raise MappingError(
                    f"{path}: the {side} object {obj.name} must define exactly one anchor "
                    f"attribute (anchor: true), it defines {len(anchors)}"
                )
    targets = {(a.name or "").lower(): a for a in target.attributes} if target else {}
    sources = {(a.name or "").lower(): a for a in source.attributes} if source else {}
    _unique(
        f"{path}.attributeMappings",
        "targetAttributeName",
        mapping.attribute_mappings,
        lambda am: (am.target_attribute_name or "").lower() or None,
    )
    for a, am in enumerate(mapping.attribute_mappings):
        where = f"{path}.attributeMappings[{a}]"
        name = (am.target_attribute_name or "").lower()
        if targets and name and name not in targets:
            raise MappingError(
                f"{where}: the target object {mapping.target_object_name} defines no attribute "
                f"{am.target_attribute_name!r}",
                attribute=am.target_attribute_name,
            )
        if am.source is not None:
            _check_source(am.source, f"{where}.source", am.target_attribute_name)
            if sources:
                for used in attributes_read(am.source):
                    if used.lower() not in sources:
                        raise MappingError(
                            f"{where}.source: the source object {mapping.source_object_name} "
                            f"defines no attribute {used!r}",
                            attribute=am.target_attribute_name,
                        )
        if am.matching_priority > 0:
            direct = am.source.name if am.source and am.source.type is SourceType.ATTRIBUTE else ""
            for definition in (targets.get(name), sources.get((direct or "").lower())):
                if _is_reference(definition):
                    raise MappingError(
                        f"{where}: {am.target_attribute_name} is a Reference and cannot be a "
                        "matching attribute (its values are anchors, not the target's values)",
                        attribute=am.target_attribute_name,
                    )
    try:
        compile_scope(mapping.scope)
    except MappingError as exc:
        raise MappingError(f"{path}.scope: {exc}") from None
    if sources and mapping.scope is not None:
        for g, group in enumerate(mapping.scope.groups):
            for c, clause in enumerate(group.clauses):
                if clause.source_operand_name.lower() not in sources:
                    raise MappingError(
                        f"{path}.scope.groups[{g}].clauses[{c}].sourceOperandName: the source "
                        f"object {mapping.source_object_name} defines no attribute "
                        f"{clause.source_operand_name!r}"
                    )


def attributes_read(source: AttributeMappingSource) -> Iterator[str]:
    """The names of the source attributes a mapping's source reads (what the source object
    must define), without recursion."""
    stack: list[Node] = [from_mapping_source(source)]
    while stack:
        node = stack.pop()
        if isinstance(node, Attribute):
            yield node.name
        elif isinstance(node, Call):
            stack.extend(node.args)
        elif isinstance(node, Compare):
            stack.extend((node.left, node.right))


def _object(
    schema: SynchronizationSchema,
    directory_name: str | None,
    object_name: str | None,
    path: str,
    side: str,
) -> ObjectDefinition | None:
    """The object definition a mapping names, or None when its directory defines no objects;
    a name the directory does not define is refused (with the right case when only that
    differs)."""
    for directory in schema.directories:
        if directory.name != directory_name or not directory.objects:
            continue
        for obj in directory.objects:
            if obj.name == object_name:
                return obj
        known = sorted(o.name or "" for o in directory.objects)
        same = [n for n in known if n.lower() == (object_name or "").lower()]
        hint = f" (did you mean {same[0]}? names are case-sensitive)" if same else ""
        raise MappingError(
            f"{path}.{side}ObjectName: the directory {directory_name!r} defines no object "
            f"{object_name!r}{hint}; it defines {', '.join(known)}"
        )
    return None


def _check_source(source: AttributeMappingSource, path: str, attribute: str | None) -> None:
    """Every expression in the source tree parses, and the tree compiles; an Attribute or
    Constant source whose expression says something else than its name is refused (the
    engine would silently use the name)."""
    for where, node in _sources(source, path):
        if not node.expression:
            continue
        try:
            tree = parse(node.expression)
        except MappingError as exc:
            message = f"{where}.expression: {attribute}: {exc}"
            raise MappingError(message, attribute=attribute) from None
        expected = {
            SourceType.ATTRIBUTE: Attribute(node.name or ""),
            SourceType.CONSTANT: Literal(node.name or ""),
        }.get(node.type)
        if expected is not None and _folded(tree) != _folded(expected):
            raise MappingError(
                f"{where}: a {node.type.value} source named {node.name!r} has the expression "
                f"{node.expression!r}; make them agree or use a Function source",
                attribute=attribute,
            )
    try:
        compile_expression(from_mapping_source(source), target_attribute=attribute)
    except MappingError as exc:
        raise MappingError(f"{path}: {attribute}: {exc}", attribute=attribute) from None


def _folded(node: object) -> object:
    if isinstance(node, Attribute):
        return Attribute(node.name.lower())
    if isinstance(node, Literal):
        return node.value  # "True" and True are one constant
    return node


def _sources(
    source: AttributeMappingSource, path: str
) -> Iterator[tuple[str, AttributeMappingSource]]:
    """Every node of a parameter tree with its path, without recursion."""
    stack = [(path, source)]
    while stack:
        where, node = stack.pop()
        yield where, node
        for p, parameter in enumerate(node.parameters):
            if parameter.value is not None:
                stack.append((f"{where}.parameters[{p}].value", parameter.value))


def _is_reference(definition: AttributeDefinition | None) -> bool:
    return definition is not None and definition.type is AttributeType.REFERENCE


def _unique(path: str, what: str, items: Iterable[T], name: object) -> None:
    """Refuse two items with one name (the last would silently win); None names are free."""
    seen: dict[object, int] = {}
    for index, item in enumerate(items):
        key = name(item)  # type: ignore[operator]
        if key is None:
            continue
        if key in seen:
            raise MappingError(
                f"{path}[{index}]: duplicate {what} {key!r} (also at {path}[{seen[key]}])"
            )
        seen[key] = index
