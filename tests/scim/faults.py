"""A fault-injecting HTTP proxy in front of a real SCIM server, for the faults a real server
cannot be made to produce on demand: throttling (429), a busy server (503), an answer too slow
for the client's timeout, a connection dropped mid-request.

``FaultProxy(server.url)`` listens on ``http://127.0.0.1:<free port>`` with the same path
layout as the upstream (``proxy.url`` ends in ``/v2`` when the upstream does) and forwards
everything else untouched, one upstream connection per request. Faults are armed for the
next N requests, in the order they are armed: ``fail(429, 2, retry_after=3)`` answers the
next two requests with 429 and ``Retry-After: 3`` without forwarding them. A fault armed with
``method=``/``path=`` waits for the first request that matches (the path as a substring), and
lets others through. ``lose`` and ``fail_after`` forward the request first: the server applies
it, and the client gets no answer, or an error instead of the server's answer.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections import deque
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import attrs

_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "proxy-connection", "upgrade"}


@attrs.frozen
class _Fault:
    kind: str  # "fail", "delay", "drop", "lose" or "fail_after"
    status: int = 0
    retry_after: str | None = None
    seconds: float = 0.0
    method: str | None = None  # only requests of this method
    path: str | None = None  # only requests whose path contains this
    skip: int = 0  # let this many matching requests through first
    then: Callable[[], None] | None = attrs.field(default=None, eq=False)  # after forwarding

    def matches(self, method: str, path: str) -> bool:
        return (self.method is None or self.method == method) and (
            self.path is None or self.path in path
        )


class FaultProxy:
    """A threaded proxy on 127.0.0.1; :attr:`seen` counts the requests it received."""

    def __init__(self, upstream_url: str, port: int = 0) -> None:
        parts = urlsplit(upstream_url)
        self.upstream_host = parts.hostname or "127.0.0.1"
        self.upstream_port = parts.port or 80
        self.prefix = parts.path.rstrip("/")
        self.seen = 0
        #: time.monotonic() of every fault answered (a test adds up the Retry-After windows)
        self.faulted_at: list[float] = []
        #: resource ids left out of every listing (a write the server stamped, not yet visible:
        #: a slow transaction), until the test takes them out again
        self.hidden: set[str] = set()
        self._faults: deque[_Fault] = deque()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        # port: a proxy started again where a stopped one listened (the target is back)
        self._server = ThreadingHTTPServer(("127.0.0.1", port), _handler(self))
        self._server.daemon_threads = True
        self.port: int = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def __repr__(self) -> str:
        return f"FaultProxy({self.url!r} -> {self.upstream_port})"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.prefix}"

    def fail(
        self,
        status: int,
        times: int = 1,
        retry_after: str | float | None = None,
        *,
        method: str | None = None,
        path: str | None = None,
        every: int = 1,
    ) -> None:
        """Answer the next ``times`` requests with ``status`` (and ``Retry-After``); with
        ``every`` n, only every n-th matching request (the others go through)."""
        self._arm_status("fail", status, times, retry_after, method, path, every)

    def delay(self, seconds: float, times: int = 1) -> None:
        """Hold the next ``times`` requests for ``seconds`` before forwarding them."""
        self._arm(_Fault("delay", seconds=seconds), times)

    def drop(self, times: int = 1, *, method: str | None = None, path: str | None = None) -> None:
        """Close the connection of the next ``times`` requests without answering."""
        self._arm(_Fault("drop", method=method, path=path), times)

    def lose(
        self,
        times: int = 1,
        *,
        method: str | None = None,
        path: str | None = None,
        skip: int = 0,
        then: Callable[[], None] | None = None,
    ) -> None:
        """Forward the next ``times`` requests (after ``skip`` matching ones), then close the
        connection without answering: the server applied the write, the client never learns
        it did. ``then`` runs between the two (a test kills the client there)."""
        self._arm(_Fault("lose", method=method, path=path, skip=skip, then=then), times)

    def fail_after(
        self,
        status: int,
        times: int = 1,
        retry_after: str | float | None = None,
        *,
        method: str | None = None,
        path: str | None = None,
        every: int = 1,
    ) -> None:
        """Forward the next ``times`` requests, then answer ``status`` instead of the server's
        answer (a 503 or 429 from a gateway after the app wrote)."""
        self._arm_status("fail_after", status, times, retry_after, method, path, every)

    def _arm_status(
        self,
        kind: str,
        status: int,
        times: int,
        retry_after: str | float | None,
        method: str | None,
        path: str | None,
        every: int,
    ) -> None:
        header = None if retry_after is None else str(retry_after)
        fault = _Fault(kind, status, header, method=method, path=path, skip=every - 1)
        self._arm(fault, times)

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def stop(self) -> None:
        self._stopping.set()  # wakes delayed requests
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def __enter__(self) -> FaultProxy:
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    def _arm(self, fault: _Fault, times: int) -> None:
        with self._lock:
            self._faults.extend([fault] * times)

    def _next(self, method: str, path: str) -> _Fault | None:
        with self._lock:
            self.seen += 1
            for index, fault in enumerate(self._faults):
                if fault.matches(method, path):
                    if fault.skip > 0:
                        self._faults[index] = attrs.evolve(fault, skip=fault.skip - 1)
                        return None
                    del self._faults[index]
                    return fault
            return None


def _without(payload: bytes, hidden: frozenset[str]) -> bytes:
    """A list answer without the hidden resources (its counts lowered to match)."""
    try:
        answer = json.loads(payload)
    except ValueError:
        return payload
    resources = answer.get("Resources") if isinstance(answer, dict) else None
    if not isinstance(resources, list):
        return payload
    kept = [r for r in resources if not (isinstance(r, dict) and r.get("id") in hidden)]
    gone = len(resources) - len(kept)
    answer["Resources"] = kept
    for key in ("totalResults", "itemsPerPage"):
        if isinstance(answer.get(key), int):
            answer[key] -= gone
    return json.dumps(answer).encode()


def _handler(proxy: FaultProxy) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            """Silent: the test output is not the place for an access log."""

        def handle_one(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            fault = proxy._next(self.command, self.path)
            if fault is not None and fault.kind in ("lose", "fail_after"):
                self._forward(body, answer=False)
                if fault.then is not None:
                    fault.then()
                if fault.kind == "fail_after":
                    self._answer_fault(fault)
                    return
                self.close_connection = True
                self.connection.shutdown(2)
                return
            if fault is not None and fault.kind == "drop":
                self.close_connection = True
                self.connection.shutdown(2)
                return
            if fault is not None and fault.kind == "fail":
                self._answer_fault(fault)
                return
            if fault is not None and fault.kind == "delay":
                proxy._stopping.wait(fault.seconds)
            self._forward(body)

        def _answer_fault(self, fault: _Fault) -> None:
            with proxy._lock:
                proxy.faulted_at.append(time.monotonic())  # noqa: TID251 - the proxy's own log
            payload = (
                b'{"schemas":["urn:ietf:params:scim:api:messages:2.0:Error"],'
                b'"status":"%d","detail":"injected by FaultProxy"}' % fault.status
            )
            self.send_response(fault.status)
            self.send_header("Content-Type", "application/scim+json")
            self.send_header("Content-Length", str(len(payload)))
            if fault.retry_after is not None:
                self.send_header("Retry-After", fault.retry_after)
            self.end_headers()
            self.wfile.write(payload)

        def _forward(self, body: bytes, *, answer: bool = True) -> None:
            upstream = http.client.HTTPConnection(
                proxy.upstream_host, proxy.upstream_port, timeout=60
            )
            try:
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
                upstream.request(self.command, self.path, body=body or None, headers=headers)
                response = upstream.getresponse()
                payload = response.read()
                if not answer:
                    return
                if self.command == "GET" and proxy.hidden:
                    payload = _without(payload, frozenset(proxy.hidden))
                self.send_response(response.status)
                for name, value in response.getheaders():
                    if name.lower() not in _HOP_BY_HOP | {"content-length", "date", "server"}:
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
            except OSError:
                self.close_connection = True
            finally:
                upstream.close()

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = handle_one

    return Handler
