"""LDAP connectors built from an application's secrets and a job's schema.

Secrets say where and as whom (ARCHITECTURE §6: target ``Url``, ``UserName``, ``Password``,
``BaseDn``, and for TLS ``CaFile``, ``StartTls``, ``VerifyCertificate``, ``TlsServerName``;
``Authentication`` ``simple`` or ``ntlm``; source the same names prefixed ``Source``, plus
``SourceDeltaMode``); the schema's
directory definitions say what each object type is in that directory, through an
objectDefinition's ``metadata`` (``Container`` relative to the base DN or ``BaseDn`` absolute,
``Filter``, ``ObjectClasses`` comma-separated, ``RdnAttribute``, ``RangeSize``: multi-valued
references asked for that many values at a time; for a target ``MatchScope``
``Directory`` to match existing entries anywhere under the base DN rather than in the container
only, or ``MatchBaseDn`` absolute; ``AccountControl`` true for Active Directory accounts,
which are created with a password through ``unicodePwd`` and enabled in one add, and disabled
by a soft delete) and its attribute definitions
(the ``anchor`` one, ``Reference``, ``Binary`` and ``multivalued`` attributes). So a user edits
one schema to point a job at another subtree; the connectors themselves know nothing of Graph.
"""

from __future__ import annotations

from collections.abc import Mapping

from connectors.ldap.config import LdapObjectType
from connectors.ldap.connection import LdapEndpoint
from connectors.ldap.source import LdapSource
from connectors.ldap.syntax import check_attribute_description
from connectors.ldap.target import LdapTarget
from engine.errors import ConfigurationError, MappingError
from engine.model import AttributeType, DirectoryDefinition, SynchronizationSchema

DELTA_MODES = ("accesslog", "timestamp", "dirsync", "usn")
AUTHENTICATIONS = ("simple", "ntlm")
_TRUE = ("true", "1", "yes")


def _endpoint(secrets: Mapping[str, str], prefix: str) -> tuple[LdapEndpoint, str]:
    def get(name: str, default: str = "") -> str:
        return (secrets.get(prefix + name) or default).strip()

    authentication = get("Authentication", "simple").lower()
    if authentication not in AUTHENTICATIONS:
        raise ConfigurationError(
            f"{prefix}Authentication must be one of {', '.join(AUTHENTICATIONS)}, "
            f"not {authentication[:40]!r}"
        )
    endpoint = LdapEndpoint(
        url=get("Url"),
        bind_dn=get("UserName") or None,
        password=secrets.get(prefix + "Password") or None,
        ca_file=get("CaFile") or None,
        start_tls=get("StartTls").lower() in _TRUE,
        verify=get("VerifyCertificate", "true").lower() in _TRUE,
        tls_server_name=get("TlsServerName") or None,
        authentication=authentication,
    )
    return endpoint, get("BaseDn")


def _directory(schema: SynchronizationSchema, source: bool) -> DirectoryDefinition:
    """The directory the schema's rules read from (source) or write to (target)."""
    names = {
        (rule.source_directory_name if source else rule.target_directory_name)
        for rule in schema.synchronization_rules
    }
    for directory in schema.directories:
        if directory.name in names or directory.id in names:
            return directory
    side = "source" if source else "target"
    raise ConfigurationError(f"the schema has no directory definition for the {side} directory")


def check_schema(schema: SynchronizationSchema, source: bool) -> None:
    """Refuse, when the schema is saved, what would keep the connector from ever being built:
    an attribute of the LDAP directory that is not an LDAP attribute description (it would
    be put into filters and DNs). No secrets and no I/O are needed for that."""
    try:
        directory = _directory(schema, source)
    except ConfigurationError:
        return  # no such directory: the schema's own validation speaks about its rules
    side = "source" if source else "target"
    for o, definition in enumerate(directory.objects):
        for a, attribute in enumerate(definition.attributes):
            try:
                check_attribute_description(attribute.name or "")
            except ValueError as exc:
                raise MappingError(
                    f"$.directories[{directory.name}].objects[{o}].attributes[{a}]: the LDAP "
                    f"{side} directory's {definition.name} has {exc}",
                    attribute=attribute.name,
                ) from None
    try:
        object_types(directory, "dc=check")
    except ValueError as exc:
        raise MappingError(f"the LDAP {side} directory {directory.name}: {exc}") from None


def object_types(directory: DirectoryDefinition, base_dn: str) -> list[LdapObjectType]:
    """Each objectDefinition as an LdapObjectType under ``base_dn``."""
    types = []
    for definition in directory.objects:
        meta = {m.key.lower(): (m.value or "").strip() for m in definition.metadata}
        name = definition.name or ""
        if meta.get("basedn"):
            container = meta["basedn"]
        elif meta.get("container"):
            container = f"{meta['container']},{base_dn}"
        else:
            container = base_dn
        attributes = definition.attributes
        anchor = next((a.name for a in attributes if a.anchor and a.name), "entryUUID")
        classes = tuple(c.strip() for c in meta.get("objectclasses", "").split(",") if c.strip())
        range_size = meta.get("rangesize") or "0"
        if not range_size.isdigit():
            raise ValueError(f"RangeSize of {name} must be a number of values, not {range_size!r}")
        types.append(
            LdapObjectType(
                name=name,
                base_dn=container,
                filter=meta.get("filter") or "(objectClass=*)",
                object_classes=classes,
                rdn_attribute=meta.get("rdnattribute") or "cn",
                anchor_attribute=anchor,
                references=tuple(
                    a.name for a in attributes if a.name and a.type is AttributeType.REFERENCE
                ),
                multivalued=tuple(a.name for a in attributes if a.name and a.multivalued),
                binary=tuple(
                    a.name for a in attributes if a.name and a.type is AttributeType.BINARY
                ),
                range_size=int(range_size),
                match_base_dn=meta.get("matchbasedn")
                or (base_dn if meta.get("matchscope", "").lower() == "directory" else ""),
                account_control=meta.get("accountcontrol", "").lower() in _TRUE,
            )
        )
    return types


def build_source(
    secrets: Mapping[str, str], schema: SynchronizationSchema, default_mode: str = "accesslog"
) -> LdapSource:
    """The source; ``default_mode`` is the delta mode without a SourceDeltaMode secret (the
    AD templates' is not OpenLDAP's accesslog)."""
    endpoint, base_dn = _endpoint(secrets, "Source")
    mode = (secrets.get("SourceDeltaMode") or default_mode).strip().lower()
    if mode not in DELTA_MODES:
        raise ConfigurationError(
            f"SourceDeltaMode must be one of {', '.join(DELTA_MODES)} (accesslog: OpenLDAP's "
            "accesslog; timestamp: any server; dirsync or usn: Active Directory, with the "
            f"objectGUID anchor), not {mode[:40]!r}"
        )
    try:
        return LdapSource(
            endpoint,
            object_types(_directory(schema, True), base_dn),
            delta_mode=mode,
            directory_base=base_dn or None,
            timestamp_hint="set the secret SourceDeltaMode=timestamp",
            usn_hint="set the secret SourceDeltaMode=usn",
        )
    except ValueError as exc:  # e.g. object types with different anchor attributes
        raise ConfigurationError(f"LDAP source: {exc}") from None


def build_target(secrets: Mapping[str, str], schema: SynchronizationSchema) -> LdapTarget:
    endpoint, base_dn = _endpoint(secrets, "")
    return LdapTarget(endpoint, object_types(_directory(schema, False), base_dn))
