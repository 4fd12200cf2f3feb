"""Dialect: what the contract suite needs to know about one directory."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any


@dataclasses.dataclass(slots=True)
class Dialect:
    """One connector under test, and how to shape and read its directory.

    The suite speaks of users with ``userName``, ``mail`` and so on, and names objects by keys
    it chooses (``a1``). Directories differ: an LDAP server assigns its own anchors
    (entryUUID), calls the user name ``uid`` and refuses an inetOrgPerson without ``sn``. A
    dialect bridges that and nothing more: it seeds objects the way the directory's own tools
    would and returns the anchor the directory gave, translates the suite's attribute names,
    adds what the directory requires, and reads a target object back in the suite's names. The
    assertions stay the same for every connector.

    ``put`` and ``remove`` are used by the source tests only, ``read`` by the target tests
    only: a dialect of a target-only connector may pass functions that raise for the first
    two. The suite seeds a source with ``userName``, ``cn``, ``mail`` and the multi-valued
    ``proxyAddresses``; it writes ``userName``, ``mail``, ``department`` and the multi-valued
    ``emails`` to a target, and expects a soft-deleted object to read back with ``active``
    False. Map in ``names`` those your directory calls otherwise. Every object is a ``User``.
    """

    connector: Any
    #: (type, key, attributes in the suite's names) -> the anchor: creates or replaces
    put: Callable[[str, str, dict[str, Any]], str]
    #: (type, key): deletes what put made under that key
    remove: Callable[[str, str], None]
    #: reads a target object by ref (None if gone)
    read: Callable[[str, str], Mapping[str, Any] | None]
    #: the suite's name -> the directory's
    names: dict[str, str] = dataclasses.field(default_factory=dict)
    #: per type, attributes the directory requires, added on create
    required: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    #: what close() calls, last first (connections, the connector itself)
    closers: list[Callable[[], None]] = dataclasses.field(default_factory=list)

    def name(self, suite_name: str) -> str:
        """The directory's name for one of the suite's attribute names."""
        return self.names.get(suite_name, suite_name)

    def attributes(self, object_type: str, values: Mapping[str, Any]) -> dict[str, Any]:
        """The suite's attributes in the directory's names, with what it requires."""
        translated = {self.name(k): v for k, v in values.items()}
        return {**self.required.get(object_type, {}), **translated}

    def get(self, object_type: str, ref: str) -> dict[str, Any] | None:
        """A target object in the suite's names, without the attributes the dialect added."""
        found = self.read(object_type, ref)
        if found is None:
            return None
        back = {v.lower(): k for k, v in self.names.items()}
        added = {k.lower() for k in self.required.get(object_type, {})}
        return {
            back.get(k.lower(), k): v
            for k, v in found.items()
            if k.lower() in back or k.lower() not in added | {"dn"}
        }

    def close(self) -> None:
        """Runs the closers, last added first (the fixture calls it after the test)."""
        for close in reversed(self.closers):
            close()
