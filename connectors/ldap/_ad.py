"""What Active Directory's delta modes (``dirsync`` and ``usn``) share.

Both learn *which* objects changed, by objectGUID, from a search of the whole naming context
(neither DirSync nor a uSNChanged filter can follow a type's base and filter: an entry moved
out of the base, or changed so that the filter no longer matches, must still be seen). The
source then reads those objects as they are now, by objectGUID, under the type's base and
filter, as its full read fetches them (:meth:`connectors.ldap.source.LdapSource`): one found
is an upsert with its current DN (a rename or a move keeps its anchor), one not found was
deleted or left the type and is a delete of its anchor, which the engine ignores for an
anchor it never linked (so every change in the domain outside the type costs one such
delete, as the accesslog mode does for types that share a base).

Not seen by either: the children of a renamed or moved OU (AD changes their DN without
changing them), until they change themselves or the next full read.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

import ldap3

from connectors.base import Change, ConnectorError
from connectors.ldap._common import Channel, Entry
from connectors.ldap._entries import ReadState, normal_dn, split_extended_dn
from connectors.ldap.config import LdapObjectType

#: the objects of a type with these anchors as they are now: an upsert for each one found
#: under the type's base and filter, a delete for each one not found
Resolve = Callable[[LdapObjectType, list[str], ReadState], list[Change]]


def root_dse(channel: Channel, attributes: list[str]) -> dict[str, list[bytes]]:
    found = channel.search("", "(objectClass=*)", attributes, scope=ldap3.BASE)
    raw: dict[str, list[bytes]] = found[0]["raw_attributes"] if found else {}
    return raw


def naming_context(channel: Channel, base_dn: str) -> str:
    """The naming context (a partition: the domain, usually) that holds ``base_dn``."""
    raw = root_dse(channel, ["namingContexts"])
    contexts = [v.decode("utf-8", "replace") for k, vs in raw.items() for v in vs
                if k.lower() == "namingcontexts"]  # fmt: skip
    base = normal_dn(base_dn)
    holding = [c for c in contexts if base == normal_dn(c) or base.endswith("\x00" + normal_dn(c))]
    if not holding:
        raise ConnectorError(
            f"no naming context of the server holds the base DN {base_dn!r} (the root DSE "
            f"names {', '.join(contexts) or 'none'}): is this an Active Directory server?"
        )
    return max(holding, key=len)


def guid_of(entry: Entry) -> str | None:
    """An entry's objectGUID in AD's text form, from the attribute or an extended DN."""
    raw = entry.get("raw_attributes") or {}
    values = next((v for k, v in raw.items() if k.lower() == "objectguid"), None)
    if values and len(values[0]) == 16:
        return str(uuid.UUID(bytes_le=bytes(values[0])))
    return split_extended_dn(str(entry.get("dn") or ""))[0]
