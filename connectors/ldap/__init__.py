"""The LDAP connector: an LDAP target on ldap3 (an OpenLDAP source with accesslog deltas is
being built).

:mod:`connectors.ldap.syntax` is the sans-I/O part (filter and DN escaping, DN parsing,
accesslog ``reqMod`` parsing); :mod:`connectors.ldap.connection` the one place that talks to
ldap3 and turns its failures into the engine's errors; :mod:`connectors.ldap.config` says
where each object type lives; :class:`LdapTarget` writes the engine's changes with DNs as refs.
"""

from connectors.ldap.config import LdapObjectType, groups, people
from connectors.ldap.connection import LdapEndpoint
from connectors.ldap.target import LdapTarget

__all__ = ["LdapEndpoint", "LdapObjectType", "LdapTarget", "groups", "people"]
