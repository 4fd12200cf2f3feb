"""result_error: which connector error an LDAP result code becomes (a pure function; a real
slapd cannot be made to answer busy or unavailable on demand)."""

from __future__ import annotations

import pytest

from connectors.base import CredentialsError, ObjectError, TransientError
from connectors.ldap.connection import LdapObjectError, bind_error, result_error


@pytest.mark.parametrize(
    ("code", "name", "kind"),
    [
        (51, "busy", TransientError),
        (52, "unavailable", TransientError),
        (3, "timeLimitExceeded", TransientError),
        (49, "invalidCredentials", CredentialsError),
        (65, "objectClassViolation", ObjectError),
        (68, "entryAlreadyExists", ObjectError),
        (32, "noSuchObject", ObjectError),
    ],
)
def test_code_decides_the_error(code: int, name: str, kind: type[Exception]) -> None:
    error = result_error({"result": code, "description": name, "message": "  said  "}, "op x")
    assert type(error) is kind or (kind is ObjectError and isinstance(error, LdapObjectError))
    assert str(error) == f"op x: LDAP {code} {name}: said"


def test_object_errors_keep_the_code() -> None:
    error = result_error({"result": 68, "description": "entryAlreadyExists"}, "add")
    assert isinstance(error, LdapObjectError) and error.code == 68
    assert str(error) == "add: LDAP 68 entryAlreadyExists"


def test_a_result_without_a_code_is_other() -> None:
    assert str(result_error({}, "op")) == "op: LDAP 80 code 80"


def test_a_refused_bind_is_said_in_words() -> None:
    """A bind is never about one object: a refusal is a credentials error in words, a busy
    server a transient one."""
    error = bind_error({"result": 49, "description": "invalidCredentials"}, "source bind as x")
    assert type(error) is CredentialsError
    assert str(error) == "source bind as x: invalid credentials (LDAP 49)"
    assert type(bind_error({"result": 51, "description": "busy"}, "bind")) is TransientError
    assert type(bind_error({"result": 50}, "bind")) is CredentialsError
