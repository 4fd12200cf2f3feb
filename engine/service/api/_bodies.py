"""Request bodies: bounded in size, and parsed without stalling the event loop.

A body over :data:`MAX_BODY` is refused with 413 before it is all read: by its Content-Length
up front, else (a chunked body has none) by counting the bytes as they arrive, so no more than
the limit and one chunk is ever held. The largest built-in template's schema is ~23 kB and a
discovered directory adds a few hundred bytes an attribute, so 4 MiB leaves room for any real
schema.

JSON up to :data:`SMALL_BODY` is parsed on the loop by json's C scanner: a few ms at most.
A larger body is parsed in a worker thread, and by json's pure-Python scanner, because the C
one holds the GIL for its whole call (half a second for 4 MB of nested lists) and a thread
holding the GIL stalls the loop as surely as the loop itself; Python code gives the GIL up
every few ms, so ``/healthz`` and the other requests keep being answered. Such bodies are
parsed one at a time (a limiter of one thread), which also bounds the memory they expand to.
"""

from __future__ import annotations

import json
import json.scanner
import re
from collections.abc import Callable
from typing import Any, TypeVar

import anyio
import anyio.to_thread
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from engine.clock import Clock
from engine.service.api._errors import GraphError, error_response

T = TypeVar("T")

MAX_BODY = 4 * 1024 * 1024
SMALL_BODY = 64 * 1024
_TOO_LARGE = f"the request body is larger than {MAX_BODY} bytes"
#: a \u escape of a UTF-16 surrogate; without one, parsed JSON cannot hold a lone surrogate
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def too_large() -> GraphError:
    return GraphError(413, "requestEntityTooLarge", _TOO_LARGE)


class BodyLimit:
    """Refuse a body over ``limit`` bytes with Graph's 413, reading no more than it."""

    def __init__(self, app: ASGIApp, clock: Clock, limit: int = MAX_BODY) -> None:
        self.app = app
        self.clock = clock
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.limit:
            response = error_response(self.clock, 413, "requestEntityTooLarge", _TOO_LARGE)
            await response(scope, receive, send)
            return
        seen = 0

        async def counted() -> Message:
            """The body as it arrives; past the limit, a 413 raised in the handler that reads
            it (Starlette's exception handlers answer it)."""
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise too_large()
            return message

        await self.app(scope, counted, send)


class _PythonDecoder(json.JSONDecoder):
    """json's decoder with its pure-Python scanner, which lets other threads run."""

    def __init__(self) -> None:
        super().__init__()
        self.scan_once = json.scanner.py_make_scanner(self)  # type: ignore[attr-defined]


_PYTHON = _PythonDecoder()


def _text(raw: bytes) -> str:
    """As json.loads reads bytes: UTF-8, -16 or -32, whichever the first bytes show."""
    return raw.decode(json.detect_encoding(raw), "surrogatepass")


def load_json(raw: bytes) -> Any:
    """The body's JSON; malformed JSON, or a string escaping a lone UTF-16 surrogate such as
    ``"\\ud800"`` (no Unicode text: it could be neither stored nor answered as UTF-8), is a
    400. A large body is decoded and checked by pure-Python code (see the module's doc)."""
    small = len(raw) <= SMALL_BODY
    try:
        data = json.loads(raw) if small else _PYTHON.decode(_text(raw))
        if _SURROGATE_ESCAPE.search(raw):
            if small:
                json.dumps(data, ensure_ascii=False).encode("utf-8")
            else:  # iterencode, not one-shot, is json's pure-Python encoder
                for chunk in json.JSONEncoder(ensure_ascii=False).iterencode(data):
                    chunk.encode("utf-8")
    except (ValueError, RecursionError):  # UnicodeError is a ValueError
        raise GraphError(400, "invalidRequest", "the body is not valid JSON") from None
    return data


def new_limiter() -> anyio.CapacityLimiter:
    """The one worker thread large bodies are parsed in (one per app)."""
    return anyio.CapacityLimiter(1)


def dump_json(content: Any) -> bytes:
    """``content`` as Starlette's JSONResponse writes it, by json's pure-Python encoder (see
    the module's doc): for answers that may be large, built in the worker thread."""
    encoder = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    return "".join(encoder.iterencode(content)).encode("utf-8")


async def answer_off_loop(
    limiter: anyio.CapacityLimiter, build: Callable[[], Any], status: int = 200
) -> Response:
    """A JSON answer whose content (``build()``, converting the engine's objects) may be
    large, built and encoded in the worker thread ``limiter`` allows: a job's schema may be
    4 MiB, so the list of eight such jobs (35 MB of JSON) kept ``/healthz`` waiting 3.9 s
    while it was encoded on the loop."""
    body = await anyio.to_thread.run_sync(lambda: dump_json(build()), limiter=limiter)
    return Response(body, status, media_type="application/json")


async def off_loop(raw: bytes, limiter: anyio.CapacityLimiter, work: Callable[[], T]) -> T:
    """``work()`` (parsing ``raw``) on the loop when the body is small, else in the worker
    thread ``limiter`` allows."""
    if len(raw) <= SMALL_BODY:
        return work()
    return await anyio.to_thread.run_sync(work, limiter=limiter)
