"""The LDAP connector: a source (:class:`LdapSource`: OpenLDAP accesslog deltas, or
modifyTimestamp deltas on any server) and a target (:class:`LdapTarget`), both on ldap3.

:mod:`connectors.ldap.syntax` is the sans-I/O part (filter and DN escaping, DN parsing,
accesslog ``reqMod`` parsing); :mod:`connectors.ldap.connection` the one place that talks to
ldap3 and turns its failures into the engine's errors; :mod:`connectors.ldap.config` says
where each object type lives; :class:`LdapSource` reads with entry anchors (entryUUID) and
references as anchors (its private parts: ``_entries``, entries to changes; ``_accesslog`` and
``_timestamps``, the two delta modes; ``_common``, a connection per thread and raw values);
:class:`LdapTarget` writes the engine's changes with DNs as refs.
"""

from connectors.ldap.config import LdapObjectType, groups, people
from connectors.ldap.connection import LdapEndpoint
from connectors.ldap.source import LdapSource
from connectors.ldap.target import LdapTarget

__all__ = ["LdapEndpoint", "LdapObjectType", "LdapSource", "LdapTarget", "groups", "people"]
