"""Provision on demand's subject: the source object an operator names, by what they know.

Graph's provisionOnDemand names the subject by its objectId, which for our sources is the
anchor (an entryUUID, a SCIM id): not what an operator has at hand. So the subject is taken
as the anchor, else as a DN, else a uid, else a userName, each a cheap lookup the source
offers (``lookup(object_type, attribute, value)``: LDAP one search, SCIM a filter ``eq``,
memory a scan). Several objects answering one name is an error naming how many, never a
guess; none is an error naming what was tried.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from connectors.base import Source
from engine.errors import NotFoundError, TransitionError
from engine.mapping import CompiledMapping
from engine.store import StateStore

#: what the subject may be, after the anchor, in this order
_NAMES = ("dn", "uid", "userName")


class SubjectAmbiguous(TransitionError):
    """The subject's name finds several source objects: name one by its anchor."""

    code = "SubjectAmbiguous"


def resolve_subject(
    source: Source,
    store: StateStore,
    job_id: str,
    mappings: Sequence[CompiledMapping],
    subject: str,
) -> str:
    """The anchor ``subject`` names in the source (in the source type ``mappings`` read, as
    the source spells it). An anchor linked in the job but gone from the source is kept as
    is: provisioning it deprovisions the object."""
    object_type = mappings[0].source_type
    if source.get(object_type, subject) is not None:
        return subject
    lookup: Callable[[str, str, str], list[str]] | None = getattr(source, "lookup", None)
    tried = ["anchor"]
    if callable(lookup):
        for attribute in _NAMES:
            if attribute == "dn" and "=" not in subject:
                continue  # no DN: do not send it to a server as one
            tried.append("DN" if attribute == "dn" else attribute)
            found = lookup(object_type, attribute, subject)
            if len(found) == 1:
                return found[0]
            if found:
                raise SubjectAmbiguous(
                    f"{len(found)} {object_type} objects in the source have {tried[-1]} "
                    f"{subject!r}: name one by its anchor"
                )
    if any(store.get_links(job_id, m.key, [subject]) for m in mappings):
        return subject  # linked, gone from the source: its deprovisioning
    raise NotFoundError(
        f"no {object_type} in the source has {', '.join(tried[:-1]) or 'anchor'}"
        f"{' or ' + tried[-1] if len(tried) > 1 else ''} {subject!r}"
    )
