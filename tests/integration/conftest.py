"""Real servers of both kinds, for jobs that cross them (LDAP -> SCIM)."""

from collections.abc import Callable

import pytest

from tests.ldap.conftest import make_slapd, slapd_source, slapd_target
from tests.ldap.ldap_jobs import Tree, make_tree
from tests.ldap.slapd import Slapd
from tests.scim.conftest import make_scim_server, scim_server
from tests.scim.server import ScimServer

__all__ = ["make_scim_server", "make_slapd", "scim_server", "slapd_source", "slapd_target"]


@pytest.fixture
def scim(make_scim_server: Callable[[str], ScimServer]) -> ScimServer:
    """A SCIM server of the test's own (the target)."""
    return make_scim_server("scim")


@pytest.fixture
def tree(slapd_source: Slapd, slapd_target: Slapd) -> Tree:
    """A fresh base on the source (and target) slapd."""
    return make_tree(slapd_source, slapd_target)
