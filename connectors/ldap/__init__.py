"""The LDAP connector (OpenLDAP source with accesslog deltas, LDAP target): being built.

So far only :mod:`connectors.ldap.syntax` exists: the sans-I/O part (filter and DN escaping,
DN parsing, accesslog ``reqMod`` parsing), pure functions that need no server to test. The
connector itself (``Source``/``Target`` on ldap3) will be exported from here once it exists.
"""
