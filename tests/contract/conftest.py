"""The real servers the LDAP and SCIM dialects need, shared with tests/ldap and tests/scim."""

from tests.ldap.conftest import slapd_source, slapd_target
from tests.scim.conftest import make_scim_server, scim_server

__all__ = ["make_scim_server", "scim_server", "slapd_source", "slapd_target"]
