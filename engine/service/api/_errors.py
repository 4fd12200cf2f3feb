"""Graph's error body, the one map from the engine's errors to HTTP, and bearer-token auth.

Graph clients read ``error.code`` and ``error.message`` whatever went wrong, so every refusal
(a bad body, an unknown id, a missing token, an unknown path) answers with the same shape.
"""

from __future__ import annotations

import hashlib
import hmac
import uuid
from collections.abc import Iterable

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from engine.clock import Clock
from engine.errors import (
    ConfigurationError,
    ConnectorError,
    CredentialsError,
    NotFoundError,
    SyncJobError,
    TransitionError,
    UnreachableError,
)
from engine.masking import mask_secrets
from engine.model.converter import format_datetime

#: the engine's error classes, most specific first, and the status each answers with
STATUS: tuple[tuple[type[SyncJobError], int], ...] = (
    (ConfigurationError, 400),  # ModelError, MappingError, ExpressionSyntaxError: names a field
    (NotFoundError, 404),
    (TransitionError, 409),  # the state machine refuses, or another runner holds the job
)

#: a connector's errors (validateCredentials, provisionOnDemand): status and Graph code; the
#: code names what failed. Refused credentials are the caller's to fix, so 400, not 409.
CONNECTOR_STATUS: tuple[tuple[type[ConnectorError], int, str], ...] = (
    (CredentialsError, 400, "CredentialsError"),  # the directory refused the bind or token
    (UnreachableError, 502, "UnreachableError"),  # no answer from the directory
    (ConnectorError, 502, "ConnectorError"),  # anything else the directory answered
)


class GraphError(Exception):
    """A refusal the API itself decides (malformed JSON, a missing token, an unknown path)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def error_response(
    clock: Clock, status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    """Graph's ``{"error": {"code", "message", "innerError": {"request-id", "date"}}}``."""
    request_id = str(uuid.uuid4())
    inner = {"request-id": request_id, "date": format_datetime(clock.now())}
    body = {"error": {"code": code, "message": message, "innerError": inner}}
    return JSONResponse(body, status, headers={"request-id": request_id, **(headers or {})})


def _clock(request: Request) -> Clock:
    clock: Clock = request.app.state.engine.clock
    return clock


async def on_graph_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, GraphError)
    return error_response(_clock(request), exc.status, exc.code, exc.message)


async def on_engine_error(request: Request, exc: Exception) -> Response:
    """The one place the engine's error tree becomes HTTP; the engine's message names the field."""
    assert isinstance(exc, SyncJobError)
    status = next((s for cls, s in STATUS if isinstance(exc, cls)), 500)
    message = str(exc) if status != 500 else "the request could not be completed"
    return error_response(_clock(request), status, exc.code, message)


def connector_error(exc: ConnectorError, secrets: Iterable[str] = ()) -> GraphError:
    """A connector's error as Graph's; any of ``secrets`` in its text is masked. The code
    names the kind of failure, so the message does not repeat it."""
    status, code = next((s, c) for cls, s, c in CONNECTOR_STATUS if isinstance(exc, cls))
    return GraphError(status, code, mask_secrets(str(exc), secrets))


async def on_connector_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ConnectorError)
    error = connector_error(exc)
    return error_response(_clock(request), error.status, error.code, error.message)


async def on_http_error(request: Request, exc: Exception) -> Response:
    """Starlette's own 404 (no such path) and 405 (no such method, with ``Allow``), in
    Graph's shape."""
    assert isinstance(exc, HTTPException)
    code = {404: "itemNotFound", 405: "methodNotAllowed"}.get(exc.status_code, "badRequest")
    headers = dict(exc.headers or {})  # a 405's Allow: the methods the path has
    return error_response(_clock(request), exc.status_code, code, str(exc.detail), headers)


async def on_unexpected(request: Request, exc: Exception) -> Response:
    """A bug: answer 500 without the exception's text, which could hold anything."""
    return error_response(
        _clock(request), 500, "generalException", "the request could not be completed"
    )


def digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8")).digest()


class BearerAuth:
    """Require ``Authorization: Bearer <token>`` on every path but ``/healthz`` and
    ``/openapi.json`` (the API's description holds nothing secret).

    Only sha256 digests of the tokens are kept, so a memory dump or a log of the app's state
    shows no usable token; digests are compared with hmac.compare_digest (constant time), all
    of them every time, so timing tells nothing about which token nearly matched.
    """

    OPEN = frozenset({"/healthz", "/openapi.json"})

    def __init__(self, app: ASGIApp, tokens: Iterable[bytes], clock: Clock) -> None:
        self.app = app
        self.digests = tuple(tokens)
        self.clock = clock

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.OPEN:
            await self.app(scope, receive, send)
            return
        header = dict(scope["headers"]).get(b"authorization", b"").decode("latin-1")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            response = self._refuse("the request has no bearer token")
        elif not self._known(token.strip()):
            response = self._refuse("the bearer token is not valid")
        else:
            await self.app(scope, receive, send)
            return
        await response(scope, receive, send)

    def _known(self, token: str) -> bool:
        presented = digest(token)
        found = False
        for known in self.digests:
            found |= hmac.compare_digest(presented, known)
        return found

    def _refuse(self, message: str) -> Response:
        return error_response(
            self.clock,
            401,
            "InvalidAuthenticationToken",
            message,
            headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
        )
