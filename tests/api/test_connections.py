"""Bounded connections (#20 point 2): a client owes its headers and body within deadlines,
the open connections stay under a cap below the descriptor limit, and a daemon under
``prlimit --nofile=1024`` answers ``/healthz`` and runs its cycles while 1,100 idle and slow
connections are held against it."""

from __future__ import annotations

import asyncio
import os
import resource
import secrets
import socket
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import uvicorn
from uvicorn.server import ServerState

from engine import SystemClock
from engine.service.connections import ConnectionLimits, connection_cap
from engine.service.serve import TOKENS_ENV
from tests.api.daemon import start_daemon
from tests.api.ldap_scim import (
    DaemonApi,
    converged,
    ldap_to_scim_secrets,
    source_tree,
    wait_until,
)
from tests.ldap.ldap_jobs import seed
from tests.ldap.slapd import Slapd
from tests.processes import die_with_parent, tail, terminate
from tests.scim.server import ScimServer

CLOCK = SystemClock()
TOKEN = secrets.token_urlsafe(32)  # strong: a weak one may be refused


# -- in process: the protocol under short deadlines, on a real loopback socket ----------------


async def echo_length(scope: Any, receive: Any, send: Any) -> None:
    """Reads the whole body and answers its length; ``/hold`` first waits for the release
    event (a request being answered); ``/big`` answers 32 MB instead."""
    size, more = 0, True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        size, more = size + len(message.get("body", b"")), message.get("more_body", False)
    if scope["path"] == "/hold":
        await RELEASE[0].wait()
    body = b"x" * 32_000_000 if scope["path"] == "/big" else str(size).encode()
    headers = [(b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


RELEASE: list[asyncio.Event] = []


def serving(limits: ConnectionLimits, check: Callable[[int], Awaitable[None]]) -> None:
    """Run ``check(port)`` against a server of ``echo_length`` under ``limits``."""

    async def main() -> None:
        RELEASE[:] = [asyncio.Event()]
        config = uvicorn.Config(echo_length, lifespan="off", log_level="warning")
        config.load()
        state, protocol = ServerState(), limits.protocol()
        server = await asyncio.get_running_loop().create_server(
            lambda: protocol(config=config, server_state=state, app_state={}), "127.0.0.1", 0
        )
        try:
            await check(server.sockets[0].getsockname()[1])
        finally:
            server.close()
            for connection in list(state.connections):
                connection.transport.abort()

    asyncio.run(main())


async def closed_after(reader: asyncio.StreamReader, start: float) -> float:
    """Seconds from ``start`` until the server closed the connection (what it sent dropped)."""
    while await reader.read(4096):
        pass
    return asyncio.get_running_loop().time() - start


REQUEST = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"


def test_a_client_owes_its_headers_then_its_body_in_time() -> None:
    """Nothing sent, headers a byte at a time, a kept-alive connection idle after its answer,
    a body a byte at a time: each is closed at its deadline, not before."""
    limits = ConnectionLimits(100, header_timeout=0.4, body_timeout=0.6)

    async def check(port: int) -> None:
        loop = asyncio.get_running_loop()

        async def idle() -> float:
            reader, _ = await asyncio.open_connection("127.0.0.1", port)
            return await closed_after(reader, loop.time())

        async def slow_headers() -> float:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            start = loop.time()
            for byte in REQUEST:
                if writer.is_closing() or reader.at_eof():
                    break
                writer.write(bytes([byte]))
                await asyncio.sleep(0.05)
            return await closed_after(reader, start)

        async def kept_alive() -> float:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(REQUEST)
            answer = await reader.readuntil(b"\r\n\r\n")
            assert answer.startswith(b"HTTP/1.1 200"), answer
            assert await reader.readexactly(1) == b"0"
            return await closed_after(reader, loop.time())

        async def slow_body() -> float:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n")
            start = loop.time()
            for _ in range(100):
                writer.write(b"x")
                await asyncio.sleep(0.05)
                if reader.at_eof():
                    break
            return await closed_after(reader, start)

        took = await asyncio.gather(idle(), slow_headers(), kept_alive(), slow_body())
        for seconds, deadline in zip(took, (0.4, 0.4, 0.4, 0.6), strict=True):
            assert deadline - 0.05 < seconds < deadline + 0.5, took

    serving(limits, check)


def test_an_answer_left_unread_is_cut_off() -> None:
    """A client that stops reading a large answer: once the daemon's buffer is full, the
    connection is closed after the answer deadline, the rest of the answer dropped."""
    limits = ConnectionLimits(100, answer_timeout=0.3)

    async def check(port: int) -> None:
        loop = asyncio.get_running_loop()
        # the reader stops taking data once 2 KB wait in it: it is never read from here
        reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1024)
        writer.write(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
        start = loop.time()
        while limits.open and loop.time() - start < 5:
            await asyncio.sleep(0.02)
        assert 0.3 <= loop.time() - start < 3, limits.open
        got = 0
        try:
            while chunk := await reader.read(1 << 20):
                got += len(chunk)
        except ConnectionResetError:
            pass
        assert got < 32_000_000

    serving(limits, check)


def test_over_the_cap_the_longest_waiting_connection_gives_way() -> None:
    """Under a cap of 3: a request being answered stays; of those waiting on their client the
    oldest is closed for a newcomer, which is answered; with all 3 answering, a newcomer is
    closed at once."""
    limits = ConnectionLimits(3, header_timeout=30, body_timeout=30)

    async def check(port: int) -> None:
        async def connect() -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
            pair = await asyncio.open_connection("127.0.0.1", port)
            await asyncio.sleep(0.02)  # the server has seen it
            return pair

        async def closed(reader: asyncio.StreamReader) -> bool:
            try:
                return await asyncio.wait_for(reader.read(1), 0.5) == b""
            except TimeoutError:
                return False

        held_r, held_w = await connect()
        held_w.write(b"GET /hold HTTP/1.1\r\nHost: x\r\n\r\n")
        idle_r, _ = await connect()
        body_r, body_w = await connect()
        body_w.write(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 9\r\n\r\nabc")
        await asyncio.sleep(0.02)
        assert limits.open == 3
        new_r, new_w = await connect()
        assert await closed(idle_r)
        assert not await closed(body_r) and not held_r.at_eof()
        new_w.write(REQUEST)
        assert (await new_r.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 200")
        await new_r.readexactly(1)
        second_r, second_w = await connect()
        assert await closed(body_r), "the oldest waiting (a body owed) gives way next"
        assert not await closed(second_r)
        RELEASE[0].set()
        assert (await held_r.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 200")

        for writer in (held_w, new_w, second_w):
            writer.close()
        RELEASE[0] = asyncio.Event()
        holders = [await connect() for _ in range(3)]
        for _, writer in holders:
            writer.write(b"GET /hold HTTP/1.1\r\nHost: x\r\n\r\n")
        await asyncio.sleep(0.05)
        late_r, _ = await connect()
        assert await closed(late_r), "all answering: the newcomer is closed"
        RELEASE[0].set()
        for reader, _ in holders:
            assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 200")

    serving(limits, check)


def test_the_cap_keeps_room_below_the_descriptor_limit() -> None:
    assert 256 <= connection_cap(1024) <= 1024 - 256 - 64
    assert connection_cap(100) == 25
    assert connection_cap(1_048_576) == 4096


# -- a real daemon under 1,024 descriptors ----------------------------------------------------


@pytest.fixture
def many_descriptors() -> Iterator[None]:
    """This test process holds 1,100 sockets and more: its soft limit raised for the test."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 2_048:
        pytest.skip(f"the hard descriptor limit ({hard}) leaves no room for 1,100 sockets")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 4_096), hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def _limit_descriptors() -> None:
    """In the daemon before exec: ``prlimit --nofile=1024:1024``, and death with the test."""
    die_with_parent()
    resource.setrlimit(resource.RLIMIT_NOFILE, (1_024, 1_024))


def test_a_daemon_under_1024_descriptors_outlasts_1100_idle_and_slow_connections(
    slapd_source: Slapd,
    make_scim_server: Callable[[str], ScimServer],
    tmp_path: Path,
    many_descriptors: None,
) -> None:
    """An ldapToScim job every second (LDAP, SCIM and SQLite: descriptors of its own) keeps
    completing its cycles, and each ``/healthz`` probe is answered within half a second (the
    first waits while the daemon accepts the flood queued in the kernel; the others take ms),
    while 1,100 connections that send nothing and 50 that send a header byte every half
    second are held against it (most closed by it at once: over the cap they give way)."""
    tree = source_tree(slapd_source, "connections")
    seed(tree, 5, groups=1, members=3)
    scim = make_scim_server("scim")
    env = {**os.environ, TOKENS_ENV: TOKEN}
    log = tmp_path / "serve.log"
    process, url = start_daemon(tmp_path / "state.db", log, env, preexec=_limit_descriptors)
    api = DaemonApi(url, TOKEN)
    held: list[socket.socket] = []
    try:
        app, job = api.create_job(ldap_to_scim_secrets(tree, scim), "PT1S")
        wait_until(lambda: converged(tree, scim), 20, "the first cycle in SCIM", every=0.2)
        before = cycles(api)
        port = int(url.rsplit(":", 1)[1])
        for _ in range(1_100):
            held.append(socket.create_connection(("127.0.0.1", port), timeout=5))
        slow = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(50)]
        held += slow
        probes: list[float] = []
        started = CLOCK.monotonic()
        for round_ in range(6):
            for sock in slow:
                try:
                    sock.send(b"GET /healthz HTTP/1.1\r\n"[round_ : round_ + 1])
                except OSError:
                    pass  # closed by the daemon: the cap or the header deadline
            for _ in range(2):
                probe = CLOCK.monotonic()
                answer = requests.get(f"{url}/healthz", timeout=5)
                probes.append(CLOCK.monotonic() - probe)
                assert answer.status_code == 200
                CLOCK.sleep(0.25)
        print(f"probes {[round(p * 1000) for p in probes]} ms over "
              f"{CLOCK.monotonic() - started:.1f} s")  # fmt: skip
        assert max(probes) < 0.5, probes
        wait_until(lambda: cycles(api) >= before + 3, 10, "3 more cycles", every=0.3)
        status = api.job(app, job)["status"]
        assert status["code"] == "Active" and status["quarantine"] is None, status
        assert status["lastExecution"]["state"] == "Succeeded", status
    finally:
        for sock in held:
            sock.close()
        api.close()
        terminate(process)
    assert "Too many open files" not in log.read_text(errors="replace"), tail(log)


def cycles(api: DaemonApi) -> float:
    lines = [line for line in api.metrics().splitlines()
             if line.startswith("syncjob_job_cycles_total{")]  # fmt: skip
    return float(lines[0].rsplit(" ", 1)[1]) if lines else 0.0
