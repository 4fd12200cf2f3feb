"""Graph's directoryDefinition ``discover``: what a connector found, merged into the schema.

Pure: the engine does the I/O (builds the directory's connector, calls ``discover``) and
stores the result. Discovery only ADDS, as Entra's does for a SCIM app ("discovery only adds
attributes"): an object or attribute the schema already defines is kept exactly as it is
(anchor, flags, metadata, a type the user corrected), because the schema is what the
mappings and the connectors were configured with; what the directory has and the schema lacks
is appended, objects and attributes in the order the directory gave them. Names compare
case-insensitively, as both LDAP and SCIM names do.

Every discovery refreshes the directory's ``discoverabilities``, ``discoveryDateTime`` and
``version`` (a digest of what was found, so the same directory schema always gives the same
version). The schema's own ``version`` is bumped only when objects or attributes were added:
discovering twice gives the same schema the second time, apart from the discovery time.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime

import attrs

from connectors.discovery import DiscoveredAttribute, DiscoveredSchema, check_bounds
from engine.errors import DiscoveryNotSupported, NotFoundError
from engine.model import (
    AttributeDefinition,
    AttributeType,
    DirectoryDefinition,
    Mutability,
    ObjectDefinition,
    ReferencedObject,
    SynchronizationSchema,
)


def find_directory(schema: SynchronizationSchema, directory_id: str) -> DirectoryDefinition:
    """The directory with that id (or, as Graph's examples also address it, that name)."""
    for directory in schema.directories:
        if directory.id == directory_id:
            return directory
    for directory in schema.directories:
        if directory.name is not None and directory.name.lower() == directory_id.lower():
            return directory
    raise NotFoundError(f"the job's schema has no directory {directory_id!r}")


def side_of(schema: SynchronizationSchema, directory: DirectoryDefinition) -> str:
    """``source`` or ``target``: which of the job's connectors reads that directory. The
    templates' factories pick directories the same way (a rule's directory name, or id)."""
    names = {directory.name, directory.id} - {None}
    for rule in schema.synchronization_rules:
        if rule.source_directory_name in names:
            return "source"
    for rule in schema.synchronization_rules:
        if rule.target_directory_name in names:
            return "target"
    raise DiscoveryNotSupported(
        f"directory {directory.id!r} ({directory.name}) is neither the source nor the target "
        "of a synchronization rule: no connector reads it, so it cannot be discovered"
    )


def version_of(found: DiscoveredSchema) -> str:
    """A digest of what was discovered: equal schemas give equal versions."""
    text = json.dumps(attrs.asdict(found), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def bump(version: str | None) -> str:
    """The schema's next version: a whole number counts up; anything else (an opaque text, or
    none) starts again at 1, since nothing orders it."""
    text = (version or "").strip()
    return str(int(text) + 1) if text.isdigit() else "1"


def definition(attribute: DiscoveredAttribute) -> AttributeDefinition:
    return AttributeDefinition(
        name=attribute.name,
        type=AttributeType(attribute.type),
        anchor=attribute.anchor,
        multivalued=attribute.multivalued,
        required=attribute.required,
        mutability=Mutability(attribute.mutability),
        referenced_objects=tuple(
            ReferencedObject(referenced_object_name=name) for name in attribute.referenced_objects
        ),
    )


def merge(
    directory: DirectoryDefinition, found: DiscoveredSchema, now: datetime
) -> DirectoryDefinition:
    """``directory`` with what it lacks of ``found`` appended, and the discovery's facts."""
    discovered = {o.name.lower(): o for o in found.objects}
    objects = []
    for existing in directory.objects:
        match = discovered.pop((existing.name or "").lower(), None)
        if match is None:
            objects.append(existing)
            continue
        known = {(a.name or "").lower() for a in existing.attributes}
        added = tuple(definition(a) for a in match.attributes if a.name.lower() not in known)
        objects.append(attrs.evolve(existing, attributes=existing.attributes + added))
    for new in found.objects:
        if new.name.lower() in discovered:  # not in the schema yet: the whole object
            objects.append(
                ObjectDefinition(
                    name=new.name, attributes=tuple(definition(a) for a in new.attributes)
                )
            )
    return attrs.evolve(
        directory,
        objects=tuple(objects),
        discoverabilities=", ".join(found.discoverabilities) or "None",
        discovery_date_time=now,
        version=version_of(found),
    )


def apply(
    schema: SynchronizationSchema, directory_id: str, found: DiscoveredSchema, now: datetime
) -> tuple[SynchronizationSchema, DirectoryDefinition]:
    """The schema with that directory merged (version bumped when objects or attributes
    were added), and the merged directory. What any connector found is bounded again here
    (connectors.discovery.check_bounds: DiscoveryError, a ConnectorError, 502 at the API),
    since a Discoverable need not be one of ours; nothing is stored when it is refused."""
    check_bounds(found)
    old = find_directory(schema, directory_id)
    new = merge(old, found, now)
    directories = tuple(new if d is old else d for d in schema.directories)
    version = bump(schema.version) if new.objects != old.objects else schema.version
    return attrs.evolve(schema, directories=directories, version=version), new
