"""Real servers for the daemon's end-to-end tests (the same fixtures as tests/integration)."""

from tests.ldap.conftest import make_slapd, slapd_source
from tests.scim.conftest import make_scim_server

__all__ = ["make_scim_server", "make_slapd", "slapd_source"]
