"""One LDAP connection for a connector: bind, TLS, reconnect, and ldap3's errors translated.

Both the source and the target talk to their server through :class:`LdapClient`, so the rules
live in one place: a dropped connection is reopened once before an operation is given up; every
failure leaves as one of the errors of :mod:`connectors.base` (the engine decides by the class
what to do); an operation's result code decides between "this object" (``ObjectError``),
"try again" (``TransientError``) and "nothing will work" (``CredentialsError``,
``UnreachableError``). The password lives only in :class:`LdapEndpoint` (hidden from its repr)
and in ldap3's connection object; no message built here contains it.
"""

from __future__ import annotations

import contextlib
import re
import ssl
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar
from urllib.parse import urlsplit

import attrs
import ldap3
from ldap3.core import exceptions as ldap_errors

from connectors.base import (
    ConnectorError,
    CredentialsError,
    ObjectError,
    TransientError,
    UnreachableError,
)
from connectors.ldap._ntlm import ntlm_bind

T = TypeVar("T")
SIMPLE, NTLM = "simple", "ntlm"

# RFC 4511 result codes by what the engine should do about them
_TRANSIENT = {3: "timeLimitExceeded", 11: "adminLimitExceeded", 51: "busy", 52: "unavailable"}
_CREDENTIALS = {7: "authMethodNotSupported", 8: "strongerAuthRequired", 48: "inappropriateAuth",
                49: "invalidCredentials"}  # fmt: skip
#: socket-level failures: the connection is gone (reopened once, then UnreachableError)
_DROPPED = (
    ldap_errors.LDAPSocketOpenError,
    ldap_errors.LDAPSocketSendError,
    ldap_errors.LDAPSocketReceiveError,
    ldap_errors.LDAPSessionTerminatedByServerError,
    ldap_errors.LDAPSocketCloseError,
    ldap_errors.LDAPCommunicationError,
    ConnectionError,
    BrokenPipeError,
)


@attrs.frozen(kw_only=True)
class LdapEndpoint:
    """Where and as whom to connect. ``url`` is ``ldap://host:port`` or ``ldaps://host:port``
    (a trailing ``/`` is accepted); ``start_tls`` upgrades an ``ldap://`` connection.
    Certificates are verified unless ``verify=False``, against ``ca_file`` when given, else
    the system's CAs, and must name the URL's host or ``tls_server_name`` (a DC reached by
    its address has a certificate issued to its DNS name). ``authentication`` is ``simple``
    (a DN, a UPN or ``DOMAIN\\user`` on AD) or ``ntlm`` (``bind_dn`` as ``DOMAIN\\user``)."""

    url: str
    bind_dn: str | None = None
    password: str | None = attrs.field(default=None, repr=False)
    ca_file: str | None = None
    start_tls: bool = False
    verify: bool = True
    connect_timeout: float = 10.0
    operation_timeout: float = 60.0
    tls_server_name: str | None = None
    authentication: str = attrs.field(
        default=SIMPLE, validator=attrs.validators.in_((SIMPLE, NTLM))
    )
    #: how errors name this directory ("source", "target"): LdapSource and LdapTarget set it,
    #: so "source bind as cn=sync,... to ldap://...: invalid credentials" says which side failed
    role: str = ""

    @property
    def shown_url(self) -> str:
        """The URL as messages show it: a ``user:password@`` in it masked."""
        return re.sub(r"(?<=://)[^\s/@]+@", "*****@", self.url)

    @property
    def host_port(self) -> tuple[str, int, bool]:
        """(host, port, use_ssl), or a ConnectorError naming what is wrong with the URL."""
        parts = urlsplit(self.url.strip().rstrip("/"))
        if parts.scheme not in ("ldap", "ldaps") or not parts.hostname:
            raise UnreachableError(
                f"invalid LDAP URL {self.shown_url!r}: use ldap://host:port or ldaps://host:port"
            )
        use_ssl = parts.scheme == "ldaps"
        try:
            port = parts.port or (636 if use_ssl else 389)
        except ValueError:
            raise UnreachableError(f"invalid port in LDAP URL {self.shown_url!r}") from None
        return parts.hostname, port, use_ssl


class LdapObjectError(ObjectError):
    """An ObjectError that keeps the LDAP result code, so a connector can react to one code
    (entryAlreadyExists, noSuchObject) without parsing the message; the engine sees an
    ObjectError like any other."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def _spoken(name: str) -> str:
    """An LDAP result name as words: invalidCredentials -> invalid credentials."""
    return re.sub(r"(?<=[a-z])(?=[A-Z])", " ", name).lower()


def bind_error(result: dict[str, Any], action: str) -> ConnectorError:
    """A refused bind: ``action`` (who binds to where) and what the server said, in words. A
    bind is never about one object, so any refusal but a busy server is a credentials one."""
    code = int(result.get("result", 80))
    name = result.get("description") or f"code {code}"
    message = (result.get("message") or "").strip()
    text = f"{action}: {_spoken(name)} (LDAP {code})" + (f": {message}" if message else "")
    return TransientError(text) if code in _TRANSIENT else CredentialsError(text)


def result_error(result: dict[str, Any], action: str) -> ConnectorError:
    """The connector error for a failed operation's LDAP result (RFC 4511 code)."""
    code = int(result.get("result", 80))
    name = result.get("description") or f"code {code}"
    message = (result.get("message") or "").strip()
    text = f"{action}: LDAP {code} {name}" + (f": {message}" if message else "")
    if code in _TRANSIENT:
        return TransientError(text)
    if code in _CREDENTIALS:
        return CredentialsError(text)
    return LdapObjectError(text, code)


class LdapClient:
    """An ldap3 connection opened on first use and reopened when it drops.

    Every method either returns the operation's outcome or raises a connector error; ldap3's
    own exceptions never leave this class.
    """

    def __init__(self, endpoint: LdapEndpoint) -> None:
        self.endpoint = endpoint
        self._connection: ldap3.Connection | None = None
        #: operations sent, by kind ("search", "modify", ...): what a cache saves is measurable
        self.operations: Counter[str] = Counter()

    def __repr__(self) -> str:
        return f"LdapClient({self.endpoint.shown_url!r}, bind_dn={self.endpoint.bind_dn!r})"

    # ---------------------------------------------------------------- connection
    def _server(self) -> ldap3.Server:
        host, port, use_ssl = self.endpoint.host_port
        tls = None
        if use_ssl or self.endpoint.start_tls:
            name = self.endpoint.tls_server_name
            tls = ldap3.Tls(
                validate=ssl.CERT_REQUIRED if self.endpoint.verify else ssl.CERT_NONE,
                ca_certs_file=self.endpoint.ca_file,
                # ldap3 accepts a certificate naming the host or any of valid_names
                valid_names=[name] if name else None,
                sni=name,
            )
        return ldap3.Server(
            host,
            port=port,
            use_ssl=use_ssl,
            tls=tls,
            get_info=ldap3.NONE,
            connect_timeout=self.endpoint.connect_timeout,
        )

    def connect(self) -> ldap3.Connection:
        """The open, bound connection (opened and bound now if needed)."""
        if self._connection is not None and not self._connection.closed:
            return self._connection
        where = self.endpoint.shown_url
        side = f"{self.endpoint.role} " if self.endpoint.role else ""
        try:
            ntlm = self.endpoint.authentication == NTLM
            connection = ldap3.Connection(
                self._server(),
                user=None if ntlm else self.endpoint.bind_dn,
                password=None if ntlm else self.endpoint.password,
                client_strategy=ldap3.SYNC,
                auto_referrals=False,
                auto_range=False,  # ranged values are read by connectors.ldap._ranges
                raise_exceptions=False,
                receive_timeout=max(1, int(self.endpoint.operation_timeout)),  # ldap3 packs an int
                return_empty_attributes=False,
            )
            connection.open()
            if self.endpoint.start_tls and not connection.start_tls():
                raise UnreachableError(f"{side}StartTLS with {where} failed: {connection.result}")
            if not (ntlm_bind(connection, self.endpoint) if ntlm else connection.bind()):
                who = self.endpoint.bind_dn or "the anonymous user"
                error = bind_error(connection.result, f"{side}bind as {who} to {where}")
                connection.unbind()
                raise error
        except ConnectorError:
            raise
        except (ldap_errors.LDAPSSLConfigurationError, ldap_errors.LDAPStartTLSError,
                ssl.SSLError) as exc:  # fmt: skip
            raise UnreachableError(f"{side}TLS with {where} failed: {_tls_reason(exc)}") from None
        except (*_DROPPED, OSError, ldap_errors.LDAPException) as exc:
            if _is_tls_failure(exc):
                raise UnreachableError(
                    f"{side}TLS with {where} failed: {_tls_reason(exc)}"
                ) from None
            raise UnreachableError(f"{side}cannot reach {where}: {_reason(exc)}") from None
        self._connection = connection
        return connection

    def close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            with contextlib.suppress(ldap_errors.LDAPException, OSError):
                connection.unbind()

    def call(self, action: str, operation: Callable[[ldap3.Connection], T]) -> T:
        """Run ``operation`` on the connection; reopen once if the connection dropped.

        ``operation`` returns whatever the caller needs (it checks ``connection.result``
        itself through :meth:`check`); a timeout is a TransientError, a connection that
        cannot be reopened an UnreachableError.
        """
        for attempt in (1, 2):
            connection = self.connect()
            try:
                return operation(connection)
            except ConnectorError:
                raise
            except (ldap_errors.LDAPResponseTimeoutError, TimeoutError) as exc:
                self.close()
                raise TransientError(
                    f"{action}: the server did not answer in time ({exc})"
                ) from None
            except (*_DROPPED, OSError) as exc:
                self.close()
                if attempt == 2:
                    side = f"{self.endpoint.role} " if self.endpoint.role else ""
                    where = self.endpoint.shown_url
                    raise UnreachableError(
                        f"{side}{action}: connection to {where} lost: {_reason(exc)}"
                    ) from None
            except ldap_errors.LDAPException as exc:
                raise ObjectError(f"{action}: {_reason(exc)}") from None
        raise AssertionError("unreachable")  # pragma: no cover

    @staticmethod
    def check(connection: ldap3.Connection, ok: bool, action: str,
              accept: Sequence[int] = ()) -> int:  # fmt: skip
        """The operation's result code if it succeeded (or is in ``accept``), else raises."""
        code = int(connection.result.get("result", 80)) if connection.result else 0
        if ok or code == 0 or code in accept:
            return code
        if code in (80, 81) and not connection.bound:  # other / serverDown: the link died
            raise ldap_errors.LDAPSessionTerminatedByServerError(action)
        raise result_error(connection.result, action)

    # ---------------------------------------------------------------- operations
    def search(
        self,
        base: str,
        search_filter: str,
        attributes: Sequence[str] | str,
        *,
        scope: str = ldap3.SUBTREE,
        accept: Sequence[int] = (),
        size_limit: int = 0,
        controls: Sequence[Any] = (),
    ) -> list[dict[str, Any]]:
        """Entries (``dn``, ``attributes``, ``raw_attributes``) of one non-paged search;
        noSuchObject (32) is an empty list. With ``size_limit``, at most that many entries
        and sizeLimitExceeded (4) is no error: the caller asked for a sample."""
        entries, _ = self.search_controls(
            base, search_filter, attributes, scope=scope, accept=accept,
            size_limit=size_limit, controls=controls,
        )  # fmt: skip
        return entries

    def search_controls(
        self,
        base: str,
        search_filter: str,
        attributes: Sequence[str] | str,
        *,
        scope: str = ldap3.SUBTREE,
        accept: Sequence[int] = (),
        size_limit: int = 0,
        controls: Sequence[Any] = (),
    ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """:meth:`search` with request ``controls``, and the response's controls by OID (as
        ldap3 decodes them: AD's DirSync cookie, for one)."""
        if size_limit:
            accept = (4, *accept)

        def run(connection: ldap3.Connection) -> tuple[list[dict[str, Any]], dict[str, Any]]:
            self.operations["search"] += 1
            ok = connection.search(
                base, search_filter, scope, attributes=attributes, size_limit=size_limit,
                controls=list(controls) or None,
            )  # fmt: skip
            code = self.check(connection, ok, f"search {base}", accept=(32, *accept))
            answered = dict((connection.result or {}).get("controls") or {})
            if code == 32:
                return [], answered
            entries = [e for e in connection.response or () if e.get("type") == "searchResEntry"]
            return entries, answered

        return self.call(f"search {base}", run)

    def paged_search(
        self,
        base: str,
        search_filter: str,
        attributes: Sequence[str] | str,
        page_size: int,
        cookie: bytes | None = None,
        *,
        scope: str = ldap3.SUBTREE,
        controls: Sequence[Any] = (),
    ) -> Iterator[tuple[list[dict[str, Any]], bytes | None]]:
        """Pages of a simple-paged-results search (RFC 2696) and the cookie after each; the
        last page's cookie is None. A cookie is only valid on the connection that got it, so
        a dropped connection restarts the search (the caller's own watermark decides where)."""
        action = f"paged search {base}"
        while True:

            def run(
                connection: ldap3.Connection, cookie: bytes | None = cookie
            ) -> tuple[list[dict[str, Any]], bytes | None]:
                self.operations["search"] += 1
                ok = connection.search(
                    base,
                    search_filter,
                    scope,
                    attributes=attributes,
                    paged_size=page_size,
                    paged_cookie=cookie,
                    controls=list(controls) or None,
                )
                if self.check(connection, ok, action, accept=(32,)) == 32:
                    return [], None
                entries = [
                    e for e in connection.response or () if e.get("type") == "searchResEntry"
                ]
                control = (connection.result.get("controls") or {}).get(
                    "1.2.840.113556.1.4.319", {}
                )
                next_cookie = control.get("value", {}).get("cookie") or None
                return entries, next_cookie

            entries, cookie = self.call(action, run)
            yield entries, cookie
            if not cookie:
                return

    def add(self, dn: str, object_classes: Sequence[str], attributes: dict[str, Any]) -> None:
        def run(connection: ldap3.Connection) -> None:
            self.operations["add"] += 1
            ok = connection.add(dn, list(object_classes), attributes)
            self.check(connection, ok, f"add {dn}")

        self.call(f"add {dn}", run)

    def modify(self, dn: str, changes: dict[str, list[tuple[str, list[Any]]]],
               controls: Sequence[Any] | None = None) -> None:  # fmt: skip
        def run(connection: ldap3.Connection) -> None:
            self.operations["modify"] += 1
            ok = connection.modify(dn, changes, controls=controls)
            self.check(connection, ok, f"modify {dn}")

        self.call(f"modify {dn}", run)

    def modify_dn(self, dn: str, new_rdn: str, new_superior: str | None = None) -> None:
        def run(connection: ldap3.Connection) -> None:
            self.operations["modify_dn"] += 1
            ok = connection.modify_dn(dn, new_rdn, delete_old_dn=True, new_superior=new_superior)
            self.check(connection, ok, f"rename {dn}")

        self.call(f"rename {dn}", run)

    def delete(self, dn: str) -> bool:
        """True if deleted, False if it was already gone."""

        def run(connection: ldap3.Connection) -> int:
            self.operations["delete"] += 1
            return self.check(connection, connection.delete(dn), f"delete {dn}", accept=(32,))

        return self.call(f"delete {dn}", run) != 32


def _reason(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text.replace("\n", " ")[:300]


def _is_tls_failure(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    while seen is not None:
        if (
            isinstance(seen, ssl.SSLError)
            or "SSL" in type(seen).__name__
            or "certificate" in str(seen).lower()
        ):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _tls_reason(exc: BaseException) -> str:
    text = _reason(exc)
    if "CERTIFICATE_VERIFY_FAILED" in text or "certificate verify failed" in text:
        return f"the server's certificate was not verified against the CA file ({text})"
    return text
