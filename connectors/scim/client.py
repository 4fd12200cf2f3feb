"""One SCIM 2.0 service over HTTP for a connector: the bearer token, TLS, timeouts, and every
failure translated into the errors of :mod:`connectors.base`.

Both the SCIM source and the SCIM target talk through :class:`ScimClient`, so the rules live
in one place. Its surface is deliberately small and stable:

``get(path, params=None) -> dict``
    ``GET base+path``; the parsed JSON body.
``post(path, body) -> dict``
    ``POST`` of a JSON body; the created resource.
``patch(path, body) -> dict | None``
    ``PATCH``; the resource when the service answers 200 with one, else None (204).
``put(path, body) -> dict``
    ``PUT``; the replaced resource.
``delete(path) -> None``
``close()``
    Closes every thread's connection.

``path`` is relative to the base address (``/Users``, ``/Groups/{id}``): the base address is
what a job's ``BaseAddress`` secret holds, e.g. ``https://host/scim/v2``.

What the engine does depends on the error's class, so the mapping is the contract:

* connection refused, DNS failure, TLS failure, connect timeout, a body that is not JSON:
  :class:`UnreachableError` (nothing will work until someone fixes the address);
* a read timeout or a connection dropped mid-request: :class:`TransientError`;
* 401 and 403: :class:`CredentialsError` (it names the token; never shows it);
* 429 and 503: :class:`TransientError` with ``retry_after`` from ``Retry-After`` (delta
  seconds, or an HTTP date measured against the response's own ``Date`` header, so the local
  clock is never read); other 5xx: :class:`TransientError`;
* 404: :class:`ScimNotFound` (an :class:`ObjectGone`: a target's linked object was deleted);
  on a resource collection itself (``/Users``, ``/Groups``): :class:`ScimEndpointMissing`,
  an :class:`UnreachableError` (a wrong ``BaseAddress`` path: no object of it can be
  written, and a read of it must never look like an empty directory);
  other 4xx: :class:`ScimRefused` (an :class:`ObjectError`) carrying the status and the SCIM
  error body's ``scimType`` and ``detail`` (``uniqueness`` on a 409, ``noTarget``, ...).

The engine calls connectors from a worker pool: each thread gets its own ``requests.Session``
(a Session's connection pool is not meant to be shared across threads), kept alive between
calls. A GET whose pooled connection turns out dead is sent once more on a fresh one; other
methods are not repeated, since the first attempt may have been applied.
"""

from __future__ import annotations

import email.utils
import json
import re
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

import requests

from connectors.base import (
    ConnectorError,
    CredentialsError,
    ObjectError,
    ObjectGone,
    TransientError,
    UnreachableError,
)

SCIM_JSON = "application/scim+json"


class ScimRefused(ObjectError):
    """The service refused a request about one resource (4xx other than 401/403/429)."""

    def __init__(self, message: str, status: int, scim_type: str | None, detail: str | None):
        super().__init__(message)
        self.status = status
        self.scim_type = scim_type
        self.detail = detail


class ScimNotFound(ScimRefused, ObjectGone):
    """404: the resource does not exist (any more)."""


class ScimEndpointMissing(UnreachableError):
    """404 on a resource collection: the service has no such endpoint at this address."""


#: the resource collections whose 404 means a wrong address, not a missing resource
_COLLECTIONS = ("Users", "Groups")


class ScimClient:
    """A SCIM service at ``base_address`` with a bearer ``token`` (never shown in reprs,
    messages or logs). TLS certificates are verified unless ``verify=False``, against
    ``ca_file`` when given, else the system's CAs; ``timeout`` bounds connecting and each
    read."""

    def __init__(
        self,
        base_address: str,
        token: str,
        *,
        ca_file: str | None = None,
        verify: bool = True,
        timeout: float = 30.0,
        user_agent: str = "syncjob-scim",
        role: str = "",
    ) -> None:
        address = base_address.strip().rstrip("/")
        if not address.startswith(("http://", "https://")):
            raise UnreachableError(
                f"invalid SCIM base address {_without_userinfo(base_address)!r}: use "
                "https://host/path"
            )
        self.base_address = address
        #: the address as messages show it: a ``user:password@`` in it masked
        self.shown_address = _without_userinfo(address)
        #: how errors name this service ("source", "target"; the connectors set it)
        self.role = role
        self.timeout = timeout
        self._verify: bool | str = (ca_file or True) if verify else False
        self._headers = {
            "Authorization": f"Bearer {token}",
            "Accept": SCIM_JSON,
            "User-Agent": user_agent,
        }
        #: sessions not in use, taken by whichever thread sends next: the export pool's
        #: threads are made per page, so a session a thread owned would outlive its thread
        self._idle: list[requests.Session] = []
        self._sessions: list[requests.Session] = []
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"ScimClient({self.shown_address!r})"

    # ------------------------------------------------------------------ the surface
    def get(self, path: str, params: Mapping[str, str | int] | None = None) -> dict[str, Any]:
        return self._json("GET", path, self._send("GET", path, params=params))

    def post(self, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        return self._json("POST", path, self._send("POST", path, body=body))

    def put(self, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        return self._json("PUT", path, self._send("PUT", path, body=body))

    def patch(self, path: str, body: Mapping[str, Any]) -> dict[str, Any] | None:
        response = self._send("PATCH", path, body=body)
        if response.status_code == 204 or not response.content:
            return None
        return self._json("PATCH", path, response)

    def delete(self, path: str) -> None:
        self._send("DELETE", path)

    def close(self) -> None:
        with self._lock:
            sessions, self._sessions, self._idle = self._sessions, [], []
        for session in sessions:
            session.close()

    @property
    def session_count(self) -> int:
        """Sessions (each with its pooled connections) this client holds: at most as many as
        requests were ever in flight at once, however many threads sent them."""
        with self._lock:
            return len(self._sessions)

    # ------------------------------------------------------------------ internals
    @contextmanager
    def _session(self) -> Iterator[requests.Session]:
        """A session for one request, given back once its answer is read (requests reads the
        whole body unless asked to stream): one session is never used by two threads at once."""
        with self._lock:
            session = self._idle.pop() if self._idle else None
        if session is None:
            session = requests.Session()
            session.headers.update(self._headers)
            session.verify = self._verify
            with self._lock:
                self._sessions.append(session)
        try:
            yield session
        finally:
            with self._lock:
                if any(kept is session for kept in self._sessions):  # not closed meanwhile
                    self._idle.append(session)

    def _send(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str | int] | None = None,
        body: Mapping[str, Any] | None = None,
    ) -> requests.Response:
        what = f"{self.role} {method} {self.shown_address}{path}".lstrip()
        data = None if body is None else json.dumps(body).encode()
        headers = {} if body is None else {"Content-Type": SCIM_JSON}
        for attempt in (1, 2):
            try:
                with self._session() as session:
                    response = session.request(
                        method,
                        self.base_address + path,
                        params=params,
                        data=data,
                        headers=headers,
                        timeout=self.timeout,
                    )
            except requests.RequestException as error:
                failure = _transport_error(what, error)
                if attempt == 1 and method == "GET" and isinstance(failure, _Dropped):
                    continue
                raise failure from None
            _raise_for_status(what, response)
            return response
        raise AssertionError("unreachable")  # pragma: no cover

    @staticmethod
    def _json(method: str, path: str, response: requests.Response) -> dict[str, Any]:
        try:
            parsed = response.json()
        except ValueError:
            parsed = None
        if not isinstance(parsed, dict):
            raise UnreachableError(
                f"{method} {path}: the answer ({response.status_code}, "
                f"{response.headers.get('Content-Type', 'no content type')}) is not SCIM JSON; "
                "is the base address the SCIM endpoint?"
            )
        return parsed


_USERINFO = re.compile(r"(?<=://)[^\s/@]+@")


def _without_userinfo(address: str) -> str:
    """``address`` with a ``user:password@`` masked: an error message may be shown anywhere."""
    return _USERINFO.sub("*****@", address)


class _Dropped(TransientError):
    """The connection broke after it was made (a GET is retried once on a new one)."""


def _transport_error(what: str, error: requests.RequestException) -> ConnectorError:
    if isinstance(error, requests.exceptions.SSLError):
        return UnreachableError(f"{what}: TLS failed: {_reason(error)}")
    if isinstance(error, requests.exceptions.ConnectTimeout):
        return UnreachableError(f"{what}: no connection within the timeout")
    if isinstance(error, requests.Timeout):
        return TransientError(f"{what}: no answer within the timeout")
    if isinstance(error, requests.ConnectionError):
        # requests wraps a failed connect (refused, DNS) in urllib3's MaxRetryError, which has
        # a ``reason``; a connection that broke after it was made is a bare ProtocolError
        if hasattr(error.args[0] if error.args else None, "reason"):
            return UnreachableError(f"{what}: cannot connect: {_reason(error)}")
        return _Dropped(f"{what}: the connection was dropped: {_reason(error)}")
    return UnreachableError(f"{what}: {_reason(error)}")


def _reason(error: requests.RequestException) -> str:
    """The innermost cause's message, without the URL repeated."""
    inner: Any = error.args[0] if error.args else error
    inner = getattr(inner, "reason", inner)
    # urllib3 starts with the connection's repr: "HTTPConnection(host='h', port=1): Failed..."
    return re.sub(r"^HTTPS?Connection\([^)]*\): ", "", str(inner))


def _raise_for_status(what: str, response: requests.Response) -> None:
    status = response.status_code
    if status < 400:
        return
    scim_type, detail = _error_body(response)
    message = f"{what}: {status}" + (f" {scim_type}" if scim_type else "")
    message += f": {detail}" if detail else ""
    if status in (401, 403):
        raise CredentialsError(f"{message}; the bearer token was refused (check the SecretToken)")
    if status in (429, 503):
        raise TransientError(message, retry_after=_retry_after(response))
    if status >= 500:
        raise TransientError(message)
    if status == 404:
        if urlsplit(response.url).path.rstrip("/").rpartition("/")[2] in _COLLECTIONS:
            raise ScimEndpointMissing(
                f"{message}: the endpoint does not exist at this address (check the "
                "BaseAddress: it ends where /Users and /Groups begin, e.g. https://host/scim/v2)"
            )
        raise ScimNotFound(message, status, scim_type, detail)
    raise ScimRefused(message, status, scim_type, detail)


def _error_body(response: requests.Response) -> tuple[str | None, str | None]:
    """``scimType`` and ``detail`` of a SCIM error body (RFC 7644 §3.12), when there is one."""
    try:
        body = response.json()
    except ValueError:
        return None, (response.text[:200] or None)
    if not isinstance(body, dict):
        return None, None
    scim_type, detail = body.get("scimType"), body.get("detail")
    return (
        scim_type if isinstance(scim_type, str) else None,
        detail if isinstance(detail, str) else None,
    )


def _retry_after(response: requests.Response) -> float | None:
    """``Retry-After`` in seconds: delta seconds, or an HTTP date minus the ``Date`` header."""
    value = response.headers.get("Retry-After", "").strip()
    if not value:
        return None
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
        now = email.utils.parsedate_to_datetime(response.headers.get("Date", ""))
    except (TypeError, ValueError):
        return None
    return max((when - now).total_seconds(), 0.0)
