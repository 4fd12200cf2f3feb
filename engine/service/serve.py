"""``syncjob serve``: the HTTP API and the :class:`Runner` in one process, under uvicorn.

Settings come from the command line, else the ``--config`` TOML file, else the defaults.
Bearer tokens come from the config file's ``tokens`` and ``SYNCJOB_API_TOKENS`` (comma-
separated); with none anywhere, the first start generates one, prints it once to stderr and
keeps only its sha256 digest beside the state file (mode 0600), so later starts accept it.
"""

from __future__ import annotations

import gc
import hashlib
import ipaddress
import math
import os
import secrets
import signal
import sys
import tomllib
from collections.abc import Mapping
from pathlib import Path
from types import FrameType
from typing import Any

import attrs
import uvicorn

from engine.errors import ConfigurationError
from engine.jobs import SyncEngine
from engine.logs import configure_logging
from engine.service.api import create_app, public_base
from engine.service.connections import ConnectionLimits, deepen_backlog
from engine.service.runner import Runner
from engine.service.state_lock import hold_for_serve
from engine.store.sqlite import create_private

TOKENS_ENV = "SYNCJOB_API_TOKENS"
DIGEST_SUFFIX = ".api-token.sha256"
DEFAULT_STATE = Path("syncjob.db")
_KEYS = frozenset(
    {"host", "port", "state", "tokens", "workers", "log_format", "allow_weak_tokens", "public_url"}
)
#: what an API token must carry at least, as NIST and OWASP ask of a session secret
STRONG_TOKEN_BITS = 128


@attrs.frozen(kw_only=True)
class ServeConfig:
    host: str = "127.0.0.1"
    port: int = 8080
    state: Path = DEFAULT_STATE
    tokens: tuple[str, ...] = ()
    workers: int = 2
    log_format: str = "console"
    allow_weak_tokens: bool = False
    public_url: str | None = None  # links' base; else the address a request came in on


def load_config(
    path: Path | None, overrides: Mapping[str, Any], env: Mapping[str, str]
) -> ServeConfig:
    """The settings: ``overrides`` (the command line's given options) over the TOML file over
    the defaults; tokens are the file's and the environment's together. A relative ``state``
    in the file is relative to the file."""
    values: dict[str, Any] = {}
    if path is not None:
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise ConfigurationError(f"cannot read the config file {path}: {exc}") from None
        unknown = sorted(set(data) - _KEYS)
        if unknown:
            raise ConfigurationError(f"unknown setting(s) in {path}: {', '.join(unknown)}")
        values.update(data)
        if "state" in values:
            if not isinstance(values["state"], str):
                raise ConfigurationError("state must be a path (a string)")
            values["state"] = path.parent / values["state"]
    values.update({k: v for k, v in overrides.items() if v is not None})
    tokens = values.get("tokens", [])
    if not isinstance(tokens, list) or not all(isinstance(t, str) and t for t in tokens):
        raise ConfigurationError("tokens must be a list of non-empty strings")
    from_env = [t.strip() for t in env.get(TOKENS_ENV, "").split(",") if t.strip()]
    values["tokens"] = tuple(dict.fromkeys([*tokens, *from_env]))
    checks: dict[str, type] = {"host": str, "port": int, "workers": int, "log_format": str}
    for key, kind in checks.items():
        if key in values and (not isinstance(values[key], kind) or isinstance(values[key], bool)):
            raise ConfigurationError(f"{key} must be a {kind.__name__}")
    if not isinstance(values.get("allow_weak_tokens", False), bool):
        raise ConfigurationError("allow_weak_tokens must be true or false")
    if not values.get("allow_weak_tokens", False):
        check_token_strength(values["tokens"])
    if not 0 < values.get("port", 8080) < 65536:
        raise ConfigurationError("port must be between 1 and 65535")
    if values.get("workers", 2) < 1:
        raise ConfigurationError("workers must be at least 1")
    if values.get("log_format", "console") not in {"console", "json"}:
        raise ConfigurationError("log_format is console or json")
    values["public_url"] = public_base(values.get("public_url"))
    values["state"] = Path(values.get("state", DEFAULT_STATE))
    return ServeConfig(**values)


def token_bits(token: str) -> float:
    """What guessing ``token`` costs, estimated from its length and the kinds of characters
    in it (hex digits, lower case, upper case, digits, others); a token of few distinct
    characters counts as weak whatever its length ("aaaa…", "1111…")."""
    if len(set(token)) < 8:
        return 0.0
    # a token that repeats a shorter text counts as that text ("abcdefgh" eight times had
    # counted as 301 bits)
    length = next((n for n in range(1, len(token) // 2 + 1) if _repeats(token, n)), len(token))
    hexadecimal = all(c in "0123456789abcdef" for c in token) or all(
        c in "0123456789ABCDEF" for c in token
    )
    pool = 16 if hexadecimal else 0
    if not pool:
        pool += 26 if any(c.islower() for c in token) else 0
        pool += 26 if any(c.isupper() for c in token) else 0
        pool += 10 if any(c.isdigit() for c in token) else 0
        pool += 32 if any(not c.isalnum() for c in token) else 0
    return length * math.log2(max(pool, 2))


def _repeats(token: str, period: int) -> bool:
    """Whether ``token`` is its first ``period`` characters over and over."""
    return token == (token[:period] * (len(token) // period + 1))[: len(token)]


def check_token_strength(tokens: tuple[str, ...]) -> None:
    """Refuse a token a guesser could find (a password-like "change-me"); the message says
    which one by position, never its text."""
    for n, token in enumerate(tokens, 1):
        bits = token_bits(token)
        if bits < STRONG_TOKEN_BITS:
            raise ConfigurationError(
                f"API token {n} of {len(tokens)} (the config file's tokens, then "
                f"{TOKENS_ENV}) is weak: about {bits:.0f} bits, {STRONG_TOKEN_BITS} needed; make "
                "one with `python3 -c 'import secrets; print(secrets.token_urlsafe(32))'`, "
                "or pass --allow-weak-tokens"
            )


def make_private(state: Path, tell: Any) -> None:
    """The state file (and its -wal and -shm) readable by its owner only: a file made by an
    older version, ``syncjob demo`` or an embedder's umask is made private, saying so."""
    for path in (state, *(state.with_name(state.name + end) for end in ("-wal", "-shm"))):
        try:
            mode = path.stat().st_mode & 0o777
        except FileNotFoundError:
            continue
        if mode & 0o077:
            path.chmod(0o600)
            tell(f"syncjob serve: {path} was open to others (mode {mode:04o}); made 0600")


def token_digests(state: Path, announce: Any = None) -> list[bytes]:
    """The digests kept beside ``state``; on the first start, a new token whose digest is
    kept there (mode 0600) and which is passed to ``announce`` once (the only time it is
    shown)."""
    path = state.with_name(state.name + DIGEST_SUFFIX)
    if path.exists() and path.stat().st_mode & 0o022:
        raise ConfigurationError(
            f"{path} may be written by others (mode {path.stat().st_mode & 0o777:04o}): "
            f"whoever can write it can add an API token; make it private (chmod 600 {path})"
        )
    if not path.exists():
        token = secrets.token_urlsafe(32)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as out:
            out.write(hashlib.sha256(token.encode("utf-8")).hexdigest() + "\n")
        (announce or _announce)(token, path)
    try:
        lines = path.read_text(encoding="ascii").split()
        digests = [bytes.fromhex(line) for line in lines]
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ConfigurationError(f"cannot read the token digests in {path}: {exc}") from None
    if not digests or any(len(d) != 32 for d in digests):
        raise ConfigurationError(f"{path} holds no sha256 token digest")
    return digests


def _announce(token: str, path: Path) -> None:
    print(
        f"syncjob serve: no API token configured; generated one (shown only now, its digest is "
        f"kept in {path}); for the syncjob client:\nexport SYNCJOB_TOKEN={token}",
        file=sys.stderr,
        flush=True,
    )


def plain_http_warning(config: ServeConfig) -> str | None:
    """What to tell an operator who serves plain HTTP beyond this machine: bearer tokens and
    secrets would cross the network in clear, unless a TLS terminator in front is declared
    (a ``public_url`` starting with https://)."""
    host = config.host.strip("[]")
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host.lower() == "localhost"
    if loopback or (config.public_url or "").lower().startswith("https://"):
        return None
    return (
        f"syncjob serve: warning: listening on {config.host}, beyond this machine, over plain "
        "HTTP: API tokens and secrets cross the network in clear. Put a TLS terminator (a "
        "reverse proxy) in front and say so with --public-url https://..., or listen on "
        "127.0.0.1"
    )


def serve(config: ServeConfig, log_level: str = "WARNING", say: Any = None) -> None:
    """Serve until SIGTERM or SIGINT; then stop the runner (its cycles end at their next
    checkpoint) and return. The state file is held alone for the process's life (a second
    daemon, or a ``run --once``, on it is refused at its start: StateInUse). ``say`` gets
    one line at a time for the operator (stderr by default): where it listens, the state
    file, the jobs found, and the stop."""
    tell = say or _say
    configure_logging(log_level, json=config.log_format == "json", force=True)
    config.state.parent.mkdir(parents=True, exist_ok=True)
    create_private(config.state)
    make_private(config.state, tell)
    warning = plain_http_warning(config)
    if warning:
        tell(warning)
    address = f"http://{config.host}:{config.port}"
    with hold_for_serve(config.state, address):
        digests = [] if config.tokens else token_digests(config.state)
        with SyncEngine(config.state) as engine:
            # What starting made (modules, the engine) is kept for the process's life: out of
            # the collector's way, a full collection walks only what requests made since, not
            # the ~60 ms of a stop-the-world pass that stalls /healthz too (#20 point 5).
            gc.collect()
            gc.freeze()
            _serve(engine, config, digests, log_level, tell, address)


def _serve(
    engine: SyncEngine,
    config: ServeConfig,
    digests: list[bytes],
    log_level: str,
    tell: Any,
    address: str,
) -> None:
    app = create_app(
        engine, list(config.tokens), token_digests=digests, public_url=config.public_url
    )
    runner = Runner(engine, workers=config.workers)
    stopped_by: list[str] = []
    # The jobs are read before the socket is bound, not on the event loop once it is: each
    # job's schema may be MiBs to convert (three of 4 MB held the first /healthz 3.8 s).
    jobs = engine.list_jobs()
    listed = [f"syncjob serve: {len(jobs)} job(s)" + (":" if jobs else "")] + [
        f"  {job.id}\t{job.template_id or ''}\t"
        + (job.status.code.value if job.status else "NotConfigured")
        for job in jobs
    ]
    del jobs

    def started() -> None:
        """Once the socket is bound: what the operator needs to know this daemon by."""
        tell(f"syncjob serve: listening on {address} (pid {os.getpid()})")
        tell(f"syncjob serve: state {config.state.resolve()}")
        for line in listed:
            tell(line)

    server = _Server(
        uvicorn.Config(
            app,
            host=config.host,
            port=config.port,
            log_level=log_level.lower(),
            access_log=False,  # the app logs each request, without its query (_access_log)
            lifespan="off",
            **ConnectionLimits.for_this_process().uvicorn_options(),
        ),
        on_started=started,
    )

    def on_signal(signum: int, frame: FrameType | None) -> None:
        # uvicorn raises the signal it caught again once it has shut down: take it here
        stopped_by.append(signal.Signals(signum).name)
        runner.request_stop()
        server.should_exit = True

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    runner.start()
    try:
        server.run()
    finally:
        runner.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if not server.started:
        raise ConfigurationError(f"could not serve on {config.host}:{config.port}")
    why = f" on {stopped_by[0]}" if stopped_by else ""
    cycles = sum(engine.cycles_run.values())
    tell(f"syncjob serve: stopped{why}; {cycles} cycle(s) run since the start")


class _Server(uvicorn.Server):
    """uvicorn's server, telling ``on_started`` once it listens (never if the bind fails)."""

    def __init__(self, config: uvicorn.Config, on_started: Any) -> None:
        super().__init__(config)
        self._on_started = on_started

    async def startup(self, sockets: Any = None) -> None:
        await super().startup(sockets)
        if self.started:
            deepen_backlog(self.servers)
        if self.started and not self.should_exit:
            self._on_started()


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)
