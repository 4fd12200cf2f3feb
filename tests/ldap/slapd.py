"""A throwaway OpenLDAP server for tests: ``Slapd(workdir).start()`` ... ``.stop()``.

Each instance lives in its own directory: a cn=config (``slapd.d``, built with ``slapadd -n0``
from an LDIF), an mdb database for ``dc=example,dc=org`` seeded with ``ou=people`` and
``ou=groups``, and a ``cn=accesslog`` database fed by the accesslog overlay (writes, with the
old values of deleted and modified entries). It listens on ``ldap://127.0.0.1:<free port>``
only, runs in the foreground (``-d0``) as a child of the test process and is stopped with
SIGTERM (SIGKILL after a timeout); ``stop`` removes its directory. ``restart`` stops and starts
the same instance on the same port (a server-side drop of every connection), ``pause`` and
``resume`` SIGSTOP and SIGCONT it (a server that accepts but does not answer). Given ``tls``
(certificate files, see ``tests/ldap/tls.py``) it also serves StartTLS on its ``ldap://`` port
and listens on ``ldaps://127.0.0.1:<another free port>``. Given ``refint=True`` (off by
default) the main database also has the refint overlay on ``member`` and ``manager``: deleting
an entry removes its DN from those attributes of the entries that name it. Given ``schema`` (LDIF
entries under ``cn=schema,cn=config``) it loads that schema too. The system service and
``/etc/ldap/slapd.d`` are never used; only the schema files in ``/etc/ldap/schema`` are read.

The root password is random per instance, stored only as an SSHA hash in the config, and never
part of a command line, a repr or a log: read it with ``password.reveal()``.
"""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

import ldap3
import pytest
from ldap3.core.exceptions import LDAPException

from engine import SystemClock
from tests.processes import die_with_parent, tail, terminate

if TYPE_CHECKING:
    from tests.ldap.tls import ServerCertificate

SBIN = ("/usr/sbin", "/sbin", "/usr/local/sbin")
SCHEMA_DIR = Path("/etc/ldap/schema")
MODULE_DIR = Path("/usr/lib/ldap")
SCHEMAS = ("core", "cosine", "inetorgperson", "nis")
BASE_DN = "dc=example,dc=org"
ROOT_DN = f"cn=admin,{BASE_DN}"
ACCESSLOG_DN = "cn=accesslog"
PEOPLE_DN = f"ou=people,{BASE_DN}"
GROUPS_DN = f"ou=groups,{BASE_DN}"

_clock = SystemClock()


def spread_accesslog(count: int, first: datetime, last: datetime, under: str) -> str:
    """LDIF of ``count`` successful modify records of entries ``uid=u<n>,<under>``, stamped
    evenly from ``first`` to ``last`` (a log of days, for ``Slapd(accesslog_ldif=...)``),
    with the log's root entry."""
    lines = [f"dn: {ACCESSLOG_DN}", "objectClass: auditContainer", "cn: accesslog", ""]
    step = (last - first) / max(count - 1, 1)
    for n in range(count):
        stamp = (first + step * n).strftime("%Y%m%d%H%M%S") + f".{n % 1_000_000:06d}Z"
        lines += [
            f"dn: reqStart={stamp},{ACCESSLOG_DN}",
            "objectClass: auditModify",
            f"reqStart: {stamp}",
            f"reqEnd: {stamp}",
            "reqType: modify",
            "reqSession: 1",
            f"reqAuthzID: {ROOT_DN}",
            f"reqDN: uid=u{n % 1000},{under}",
            "reqResult: 0",
            "reqMod: description:= x",
            "reqMod: -",
            "",
        ]
    return "\n".join(lines) + "\n"


def find_binary(name: str) -> str | None:
    """The path of an OpenLDAP binary (``slapd`` lives in /usr/sbin, often not on PATH)."""
    found = shutil.which(name)
    if found:
        return found
    for directory in SBIN:
        candidate = Path(directory, name)
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return None


def missing_components(*modules: str) -> list[str]:
    """What this machine lacks to run a throwaway slapd (empty when everything is there);
    ``modules``: more overlays a test needs (``"refint"``), none by default."""
    missing = [name for name in ("slapd", "slapadd") if find_binary(name) is None]
    missing += [
        str(path)
        for path in (
            *(SCHEMA_DIR / f"{schema}.ldif" for schema in SCHEMAS),
            MODULE_DIR / "back_mdb.la",
            MODULE_DIR / "accesslog.la",
            *(MODULE_DIR / f"{module}.la" for module in modules),
        )
        if not path.exists()
    ]
    return missing


def require_slapd(*modules: str) -> None:
    """Skip the calling test when slapd (or one of ``modules``, more overlays it needs) is
    missing; with ``CI=true`` fail it instead."""
    missing = missing_components(*modules)
    if not missing:
        return
    reason = (
        f"slapd is not installed (missing: {', '.join(missing)}); "
        "`./dev test` as root installs slapd and ldap-utils"
    )
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true: {reason}", pytrace=False)
    pytest.skip(reason)


class Secret:
    """A password that does not show itself in reprs, f-strings or tracebacks."""

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__


def ssha(password: str) -> str:
    """``{SSHA}`` hash of ``password``, as slappasswd makes it."""
    salt = secrets.token_bytes(8)
    digest = hashlib.sha1(password.encode() + salt).digest()
    return "{SSHA}" + base64.b64encode(digest + salt).decode()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def port_open(port: int) -> bool:
    """Whether something accepts TCP connections on 127.0.0.1:``port``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.settimeout(0.5)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def _main_access(readers: Sequence[str]) -> str:
    """The main database's ACL: the root DN only, unless ``readers`` are given, who may then
    bind (with a userPassword of their entry) and read the directory. The accesslog's ACL is
    not widened, so a reader is a bind DN that can read entries but not the accesslog."""
    if not readers:
        return f"olcAccess: {{0}}to * by dn.exact={ROOT_DN} manage by * none"
    read = "".join(f" by dn.exact={reader} read" for reader in readers)
    return (
        f"olcAccess: {{0}}to attrs=userPassword by dn.exact={ROOT_DN} manage"
        " by anonymous auth by * none\n"
        f"olcAccess: {{1}}to * by dn.exact={ROOT_DN} manage{read} by * none"
    )


def config_ldif(
    directory: Path,
    password_hash: str,
    tls: ServerCertificate | None = None,
    readers: Sequence[str] = (),
    refint: bool = False,
    accesslog: bool = True,
    schema: str = "",
) -> str:
    """cn=config for one instance: schemas, the mdb database and its accesslog database.
    ``readers``: bind DNs (entries a test adds, with a password) that may read the main
    database but not the accesslog; none by default. ``refint``: also the refint overlay on
    the main database, for ``member`` and ``manager`` (off by default). ``accesslog=False``:
    neither the overlay nor its database (a server that only timestamp mode can read).
    ``schema``: LDIF entries under cn=schema,cn=config loaded after the standard schemas."""
    includes = "\n".join(f"include: file://{SCHEMA_DIR}/{schema}.ldif" for schema in SCHEMAS)
    tls_settings = (
        f"olcTLSCACertificateFile: {tls.ca}\n"
        f"olcTLSCertificateFile: {tls.certificate}\n"
        f"olcTLSCertificateKeyFile: {tls.key}\n"
        if tls is not None
        else ""
    )
    refint_module = "olcModuleLoad: refint\n" if refint else ""
    n = 1 if accesslog else 0
    refint_overlay = (
        f"""
dn: olcOverlay={{{n}}}refint,olcDatabase={{1}}mdb,cn=config
objectClass: olcOverlayConfig
objectClass: olcRefintConfig
olcOverlay: {{{n}}}refint
olcRefintAttribute: member
olcRefintAttribute: manager
"""
        if refint
        else ""
    )
    accesslog_overlay = (
        f"""dn: olcOverlay={{0}}accesslog,olcDatabase={{1}}mdb,cn=config
objectClass: olcOverlayConfig
objectClass: olcAccessLogConfig
olcOverlay: {{0}}accesslog
olcAccessLogDB: {ACCESSLOG_DN}
olcAccessLogOps: writes
olcAccessLogSuccess: TRUE
olcAccessLogOld: (objectClass=*)
olcAccessLogPurge: 07+00:00 01+00:00
"""
        if accesslog
        else ""
    )
    accesslog_database = (
        f"""dn: olcDatabase={{2}}mdb,cn=config
objectClass: olcDatabaseConfig
objectClass: olcMdbConfig
olcDatabase: {{2}}mdb
olcSuffix: {ACCESSLOG_DN}
olcRootDN: {ROOT_DN}
olcDbDirectory: {directory}/accesslog
olcDbMaxSize: 4294967296
olcDbNoSync: TRUE
olcDbIndex: objectClass eq
olcDbIndex: entryCSN eq
olcDbIndex: reqStart,reqEnd,reqResult,reqType,reqDN eq
olcSizeLimit: unlimited
olcAccess: {{0}}to * by dn.exact={ROOT_DN} read by * none
"""
        if accesslog
        else ""
    )
    accesslog_module = "olcModuleLoad: accesslog\n" if accesslog else ""
    return f"""\
dn: cn=config
objectClass: olcGlobal
cn: config
olcPidFile: {directory}/slapd.pid
olcArgsFile: {directory}/slapd.args
{tls_settings}
dn: cn=module{{0}},cn=config
objectClass: olcModuleList
cn: module{{0}}
olcModulePath: {MODULE_DIR}
olcModuleLoad: back_mdb
{accesslog_module}{refint_module}
dn: cn=schema,cn=config
objectClass: olcSchemaConfig
cn: schema

{includes}

{schema}

dn: olcDatabase={{-1}}frontend,cn=config
objectClass: olcDatabaseConfig
objectClass: olcFrontendConfig
olcDatabase: {{-1}}frontend
olcSizeLimit: unlimited

dn: olcDatabase={{0}}config,cn=config
objectClass: olcDatabaseConfig
olcDatabase: {{0}}config
olcAccess: {{0}}to * by * none

dn: olcDatabase={{1}}mdb,cn=config
objectClass: olcDatabaseConfig
objectClass: olcMdbConfig
olcDatabase: {{1}}mdb
olcSuffix: {BASE_DN}
olcRootDN: {ROOT_DN}
olcRootPW: {password_hash}
olcDbDirectory: {directory}/data
olcDbMaxSize: 4294967296
olcDbNoSync: TRUE
olcDbIndex: objectClass eq
olcDbIndex: entryCSN,entryUUID eq
olcDbIndex: uid,cn,mail eq
olcSizeLimit: unlimited
{_main_access(readers)}

{accesslog_overlay}{refint_overlay}
{accesslog_database}"""


SEED_LDIF = f"""\
dn: {BASE_DN}
objectClass: top
objectClass: dcObject
objectClass: organization
dc: example
o: Example

dn: {PEOPLE_DN}
objectClass: organizationalUnit
ou: people

dn: {GROUPS_DN}
objectClass: organizationalUnit
ou: groups
"""


class SlapdError(RuntimeError):
    """A throwaway slapd could not be built or started (its output is in the message)."""


class Slapd:
    """One throwaway slapd in ``directory`` (created; removed again by ``stop``)."""

    def __init__(
        self,
        directory: Path,
        name: str = "slapd",
        tls: ServerCertificate | None = None,
        readers: Sequence[str] = (),
        seed_ldif: str = "",
        refint: bool = False,
        accesslog: bool = True,
        schema: str = "",
        accesslog_ldif: str = "",
    ) -> None:
        self.name = name
        #: the accesslog overlay and its cn=accesslog database (on by default)
        self.accesslog = accesslog
        self.readers = tuple(readers)
        #: more entries loaded with slapadd before the server starts (fast: no LDAP round trip)
        self.seed_ldif = seed_ldif
        #: the refint overlay on member and manager (off by default: no referential integrity)
        self.refint = refint
        #: more schema (LDIF entries under cn=schema,cn=config), e.g. a test attribute
        self.schema = schema
        #: records loaded into cn=accesslog with slapadd (its root entry included): a log
        #: spanning days, which a running server would take days to write
        self.accesslog_ldif = accesslog_ldif
        self.directory = directory
        self.tls = tls
        self.password = Secret(secrets.token_urlsafe(24))
        self.port = 0
        self.tls_port = 0
        self.process: subprocess.Popen[bytes] | None = None
        self.pid: int | None = None

    def __repr__(self) -> str:
        return f"Slapd({self.name!r}, {self.url!r}, pid={self.pid})"

    @property
    def url(self) -> str:
        """``ldap://127.0.0.1:PORT`` (no trailing slash: ldap3 would read it as the port)."""
        return f"ldap://127.0.0.1:{self.port}"

    @property
    def ldaps_url(self) -> str:
        """``ldaps://127.0.0.1:PORT``; only an instance started with ``tls`` listens there."""
        return f"ldaps://127.0.0.1:{self.tls_port}"

    @property
    def log(self) -> Path:
        return self.directory / "slapd.log"

    # ------------------------------------------------------------------ life cycle
    def start(self, timeout: float = 10.0, attempts: int = 3) -> Slapd:
        """Build the instance, start slapd and wait until the root DN can bind."""
        slapd, slapadd = find_binary("slapd"), find_binary("slapadd")
        if slapd is None or slapadd is None:
            raise SlapdError("slapd/slapadd not installed (apt-get install slapd ldap-utils)")
        self._build(slapadd)
        for attempt in range(1, attempts + 1):
            self.port = free_port()  # another process may take it before slapd binds: retry
            self.tls_port = free_port() if self.tls is not None else 0
            if self._launch(slapd, timeout):
                return self
            if attempt == attempts:
                break
        raise SlapdError(f"{self.name} did not start; its output:\n{self._tail()}")

    def restart(self, timeout: float = 10.0) -> None:
        """Stop slapd and start it again on the same ports with the same data: every client
        connection is dropped by the server, and a client that reconnects finds it again."""
        slapd = find_binary("slapd")
        assert slapd is not None
        self._terminate()
        if not self._launch(slapd, timeout):
            raise SlapdError(f"{self.name} did not restart; its output:\n{self._tail()}")

    def pause(self) -> None:
        """SIGSTOP: the port still accepts connections (the kernel does) but nothing answers."""
        assert self.pid is not None
        os.kill(self.pid, signal.SIGSTOP)

    def resume(self) -> None:
        assert self.pid is not None
        os.kill(self.pid, signal.SIGCONT)

    def _launch(self, slapd: str, timeout: float) -> bool:
        """Start the process on the current ports; True once it answers, else it is stopped."""
        listeners = f"{self.url}/" + (f" {self.ldaps_url}/" if self.tls is not None else "")
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [slapd, "-d0", "-h", listeners, "-F", str(self.directory / "slapd.d")],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a Ctrl-C of the test run does not reach it first
                preexec_fn=die_with_parent,  # noqa: PLW1509 (servers start from one thread)
            )
        self.pid = self.process.pid
        if self._wait_ready(timeout):
            return True
        self._terminate()
        return False

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM, SIGKILL after ``timeout``; then remove the instance's directory."""
        self._terminate(timeout)
        shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> Slapd:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.stop()

    # ------------------------------------------------------------------ clients
    def connect(
        self, user: str = ROOT_DN, password: str | Secret | None = None
    ) -> ldap3.Connection:
        """A bound ldap3 connection (root by default); raises if the bind is refused.

        Pass another instance's password as its :class:`Secret`, so that no traceback shows it.
        """
        secret = self.password if password is None else password
        server = ldap3.Server(self.url, get_info=ldap3.NONE, connect_timeout=5)
        return ldap3.Connection(
            server,
            user=user,
            password=secret.reveal() if isinstance(secret, Secret) else secret,
            auto_bind=ldap3.AUTO_BIND_NO_TLS,
            receive_timeout=10,
            raise_exceptions=True,
        )

    # ------------------------------------------------------------------ internals
    def _build(self, slapadd: str) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        for sub in ("slapd.d", "data", "accesslog"):
            (self.directory / sub).mkdir(exist_ok=True)
        (self.directory / "config.ldif").write_text(
            config_ldif(
                self.directory,
                ssha(self.password.reveal()),
                self.tls,
                self.readers,
                refint=self.refint,
                accesslog=self.accesslog,
                schema=self.schema,
            )
        )
        (self.directory / "seed.ldif").write_text(SEED_LDIF + "\n" + self.seed_ldif)
        config_dir = str(self.directory / "slapd.d")
        self._run([slapadd, "-n0", "-F", config_dir, "-l", str(self.directory / "config.ldif")])
        self._run(
            [slapadd, "-q", "-w", "-F", config_dir, "-b", BASE_DN,
             "-l", str(self.directory / "seed.ldif")]
        )  # fmt: skip
        if self.accesslog_ldif:
            (self.directory / "accesslog.ldif").write_text(self.accesslog_ldif)
            self._run(
                [slapadd, "-q", "-F", config_dir, "-b", ACCESSLOG_DN,
                 "-l", str(self.directory / "accesslog.ldif")]
            )  # fmt: skip

    def _run(self, command: list[str]) -> None:
        done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=300)
        if done.returncode != 0:
            raise SlapdError(
                f"{' '.join(command)} failed ({done.returncode}):\n{done.stdout}{done.stderr}"
            )

    def _wait_ready(self, timeout: float) -> bool:
        """Until a root bind succeeds (True) or slapd exits or ``timeout`` passes (False)."""
        assert self.process is not None
        deadline = _clock.monotonic() + timeout
        while _clock.monotonic() < deadline:
            if self.process.poll() is not None:
                return False
            try:
                self.connect().unbind()
            except LDAPException:
                _clock.sleep(0.01)
            else:
                return True
        return False

    def _terminate(self, timeout: float = 5.0) -> None:
        process, self.process = self.process, None
        terminate(process, timeout)

    def _tail(self, lines: int = 40) -> str:
        return tail(self.log, lines)
