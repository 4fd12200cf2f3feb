"""How a plan shows values: what the target holds and would hold, with secrets masked.

A plan is read by people and kept in files, so no credential leaves in it: an attribute
whose name says it is one (userPassword, a token) is shown as ``*****``, any value that
holds one of the job's secrets has it masked, and binary values (a photo, a certificate)
are shown by their size only.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Any

from connectors.base import ValueDelta
from engine.masking import MASK, credential_values, mask_secrets
from engine.model.plan import AttributeChange

#: attributes a person's name is read from, in this order, for "create User Ada Lovelace"
_NAMES = ("displayName", "cn", "userName", "uid", "name", "mail", "sAMAccountName")


@functools.lru_cache(maxsize=1024)
def is_credential(name: str) -> bool:
    """Whether an attribute's name says it holds a credential (engine.masking's rule for
    secret keys: pass, pwd, secret, token, key, ...)."""
    return bool(credential_values({name: ""}))


def shown(name: str, value: Any, secrets: Sequence[str]) -> Any:
    """``value`` as a plan may show it."""
    if value is None:
        return None
    if is_credential(name):
        return MASK
    if isinstance(value, list | tuple):
        return [shown(name, v, secrets) for v in value]
    if isinstance(value, bytes):
        return f"<binary, {len(value)} bytes>"
    if isinstance(value, str):
        return mask_secrets(value, secrets)
    return value


def masked_changes(
    action: str,
    old: Mapping[str, Any],
    new: Mapping[str, Any],
    deltas: Mapping[str, Sequence[ValueDelta]],
    secrets: Sequence[str],
) -> tuple[AttributeChange, ...]:
    """One AttributeChange per attribute written: a create's values, an update's old -> new
    (a delete or disable writes no attribute)."""
    if action in {"delete", "disable"}:
        return ()
    changes = []
    for name, value in new.items():
        was = None if action == "create" else lookup(old, name)
        added = tuple(v for d in deltas.get(name, ()) for v in d.add)
        removed = tuple(v for d in deltas.get(name, ()) for v in d.remove)
        changes.append(
            AttributeChange(
                name=name,
                old=shown(name, was, secrets),
                new=shown(name, value, secrets),
                added=_each(name, added, secrets),
                removed=_each(name, removed, secrets),
            )
        )
    return tuple(changes)


def _each(name: str, values: Sequence[Any], secrets: Sequence[str]) -> tuple[Any, ...]:
    return tuple(shown(name, v, secrets) for v in values)


def name_of(values: Mapping[str, Any] | None) -> str | None:
    """A readable name for an object from its values (displayName, cn, userName, ...)."""
    if not values:
        return None
    for name in _NAMES:
        value = lookup(values, name)
        if isinstance(value, list):
            value = value[0] if value else None
        if isinstance(value, str) and value and not is_credential(name):
            return value
    return None


def lookup(values: Mapping[str, Any], name: str) -> Any:
    """An attribute's value by name, as LDAP and SCIM compare names: without case."""
    if name in values:
        return values[name]
    folded = name.lower()
    return next((v for k, v in values.items() if k.lower() == folded), None)
