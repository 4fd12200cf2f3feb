"""Real servers of both kinds, for jobs that cross them (LDAP -> SCIM)."""

from tests.ldap.conftest import make_slapd, slapd_source, slapd_target
from tests.scim.conftest import make_scim_server, scim_server

__all__ = ["make_scim_server", "make_slapd", "scim_server", "slapd_source", "slapd_target"]
