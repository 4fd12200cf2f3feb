"""The real servers the LDAP dialects need, shared with tests/ldap (one per session)."""

from tests.ldap.conftest import slapd_source, slapd_target

__all__ = ["slapd_source", "slapd_target"]
