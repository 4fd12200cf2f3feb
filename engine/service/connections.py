"""Bounded HTTP connections for ``syncjob serve``: whatever clients do, the daemon keeps
descriptors for its own work and ``/healthz`` gets through.

uvicorn alone closes a connection only after a first response (its keep-alive timer), so a
client that connects and sends nothing, or a header byte a second, holds a descriptor for
ever; 1,100 of them under the usual 1,024-descriptor limit made ``accept`` and the engine's
own files and sockets fail with EMFILE. ``limit_concurrency`` does not help: it still
accepts the socket, then answers 503. Here:

- a connection must deliver a request's headers within ``header_timeout`` of being opened (or
  of its previous response), and the request's body within ``body_timeout`` of its headers,
  however slowly the bytes trickle, and must not leave an answer unread (the daemon's
  buffer for it full) for ``answer_timeout``; else it is closed;
- at most ``max_connections`` are open, well below the descriptor limit: the daemon first
  raises its soft ``RLIMIT_NOFILE`` to the hard limit, then keeps ``ENGINE_RESERVE`` for
  SQLite, LDAP and SCIM, plus what asyncio may accept in a few bursts before a connection is
  seen here (``BACKLOG`` each). A new connection over the cap closes the one that has waited
  longest on its client (headers or body not yet in), so idle or slow clients cannot keep a
  prober out; only when every connection has a request being answered is the new one closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import socket
from collections.abc import Iterable
from typing import Any, Literal

import attrs
import h11
import structlog
from uvicorn.protocols.http.h11_impl import H11Protocol

HEADER_TIMEOUT = 10.0
BODY_TIMEOUT = 30.0
ANSWER_TIMEOUT = 30.0
#: how many connections asyncio accepts in one go (uvicorn's ``backlog``: it is the listen
#: backlog too, deepened to LISTEN_BACKLOG once listening)
BACKLOG = 64
#: connections the kernel queues before they are accepted (they cost no descriptor here); a
#: short queue would make connecting clients wait a second for their SYN to be sent again
LISTEN_BACKLOG = 2048
#: descriptors kept for the engine (the state file, its journal, LDAP and SCIM connections)
ENGINE_RESERVE = 256
#: enough for an administration API; each open connection costs memory too
MAX_CONNECTIONS = 4096
#: a warning about dropped connections at most this often (an attack would flood the log)
WARN_EVERY = 60.0

Phase = Literal["headers", "body"]
_log = structlog.get_logger("syncjob.connections")


def raise_descriptor_limit() -> int:
    """The soft RLIMIT_NOFILE raised to the hard limit (where the system allows it); the soft
    limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard not in (resource.RLIM_INFINITY, soft):
        with contextlib.suppress(ValueError, OSError):  # a limit the system refuses: keep ours
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return MAX_CONNECTIONS * 4 if soft == resource.RLIM_INFINITY else soft


def deepen_backlog(servers: Iterable[asyncio.AbstractServer]) -> None:
    """The listening sockets' queue made LISTEN_BACKLOG deep, asyncio's accept bursts left at
    BACKLOG (both are one setting to asyncio; ``listen`` on a duplicate changes the queue)."""
    for server in servers:
        for listening in getattr(server, "sockets", ()):
            with socket.socket(fileno=os.dup(listening.fileno())) as same:
                same.listen(LISTEN_BACKLOG)


def connection_cap(descriptors: int) -> int:
    """How many connections may be open under ``descriptors``: what is left once the engine's
    reserve and a few accept bursts are kept, never less than a quarter of the limit."""
    headroom = ENGINE_RESERVE + 3 * BACKLOG
    return min(MAX_CONNECTIONS, max(descriptors - headroom, descriptors // 4, 1))


@attrs.define(eq=False)
class ConnectionLimits:
    """The bounds, and the open connections of one server (touched from its loop only)."""

    max_connections: int
    header_timeout: float = HEADER_TIMEOUT
    body_timeout: float = BODY_TIMEOUT
    answer_timeout: float = ANSWER_TIMEOUT
    #: every open connection
    _open: set[BoundedH11Protocol] = attrs.field(factory=set, init=False)
    #: the connections waiting on their client, longest waiting first
    _waiting: dict[BoundedH11Protocol, None] = attrs.field(factory=dict, init=False)
    _dropped: int = attrs.field(default=0, init=False)
    _warned_at: float | None = attrs.field(default=None, init=False)

    @classmethod
    def for_this_process(cls) -> ConnectionLimits:
        """The daemon's limits: the descriptor limit raised first, the cap below it."""
        descriptors = raise_descriptor_limit()
        limits = cls(connection_cap(descriptors))
        _log.info("connections_bounded", descriptors=descriptors, cap=limits.max_connections)
        return limits

    def uvicorn_options(self) -> dict[str, Any]:
        """What ``uvicorn.Config`` takes to serve under these limits: the protocol, the accept
        burst, and no WebSocket upgrade (the API has none; an upgraded connection would leave
        the protocol counted here)."""
        return {"http": self.protocol(), "backlog": BACKLOG, "ws": "none"}

    def protocol(self) -> type[BoundedH11Protocol]:
        """The class for ``uvicorn.Config(http=...)``: uvicorn's h11 protocol under these
        limits."""
        limits = self

        class Bounded(BoundedH11Protocol):
            _limits = limits

        return Bounded

    @property
    def open(self) -> int:
        return len(self._open)

    def admit(self, connection: BoundedH11Protocol) -> bool:
        """Room for ``connection`` (closing the longest waiting ones if needed); False, and
        it is to be closed, when every open connection has a request being answered."""
        while len(self._open) >= self.max_connections:
            oldest = next(iter(self._waiting), None)
            self._note_drop()
            if oldest is None:
                return False
            oldest.drop()
        self._open.add(connection)
        return True

    def waiting(self, connection: BoundedH11Protocol, phase: Phase | None) -> None:
        """``connection`` starts waiting on its client (at the end of the queue), or stops."""
        self._waiting.pop(connection, None)
        if phase is not None:
            self._waiting[connection] = None

    def forget(self, connection: BoundedH11Protocol) -> None:
        self._open.discard(connection)
        self._waiting.pop(connection, None)

    def _note_drop(self) -> None:
        self._dropped += 1
        now = asyncio.get_running_loop().time()
        if self._warned_at is None or now - self._warned_at >= WARN_EVERY:
            # the count is of connections closed or refused since the last warning
            _log.warning("connections_at_cap", open=len(self._open), dropped=self._dropped)
            self._warned_at, self._dropped = now, 0


class BoundedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a deadline on what the client owes (headers, then the
    body) and a place under the cap. The phase is read from h11's view of the client after
    every event that may change it: data received, a response completed."""

    _limits: ConnectionLimits

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._phase: Phase | None = None
        self._deadline: asyncio.TimerHandle | None = None
        self._unread: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if not self._limits.admit(self):
            transport.abort()
            return
        self._follow()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_clocks()
        self._limits.forget(self)
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._follow()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._follow()

    def pause_writing(self) -> None:
        """The transport's buffer is full: the client is not reading its answer (yet)."""
        super().pause_writing()
        if self._unread is None:
            self._unread = self.loop.call_later(self._limits.answer_timeout, self._unread_expired)

    def resume_writing(self) -> None:
        super().resume_writing()
        self._stop_unread_clock()

    def drop(self) -> None:
        """Close at once, whatever is buffered: the descriptor is wanted now."""
        self._stop_clocks()
        self._limits.forget(self)
        self.transport.abort()

    def _follow(self) -> None:
        """A new deadline when the phase changed: the client's headers are awaited (a new
        connection, or one kept alive after a response), its body, or nothing of it. A
        connection closing after its answer gets the answer deadline to flush what is left."""
        if self.transport.is_closing():
            if self._deadline is None:
                self._deadline = self.loop.call_later(self._limits.answer_timeout, self._expired)
            return
        state = self.conn.their_state
        phase: Phase | None = (
            "headers" if state is h11.IDLE else "body" if state is h11.SEND_BODY else None
        )
        if phase == self._phase and (phase is None or self._deadline is not None):
            return
        self._stop_clock()
        self._phase = phase
        self._limits.waiting(self, phase)
        if phase is not None:
            seconds = (
                self._limits.header_timeout if phase == "headers" else self._limits.body_timeout
            )
            self._deadline = self.loop.call_later(seconds, self._expired)

    def _expired(self) -> None:
        self._deadline = None
        _log.debug("connection_timed_out", waiting_for=self._phase)
        self.drop()

    def _unread_expired(self) -> None:
        self._unread = None
        _log.debug("connection_timed_out", waiting_for="answer read")
        self.drop()

    def _stop_clock(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _stop_clocks(self) -> None:
        """The phase's deadline and the unread answer's (which outlives a phase: uvicorn
        completes a response once it is buffered, then waits for the next request)."""
        self._stop_clock()
        self._stop_unread_clock()

    def _stop_unread_clock(self) -> None:
        if self._unread is not None:
            self._unread.cancel()
            self._unread = None
