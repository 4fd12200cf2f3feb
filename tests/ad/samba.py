"""Throwaway Active Directory domain controllers for tests: Samba 4 (Debian's package) serving
LDAP only, from a temporary directory, in the foreground.

Provisioning a domain takes seconds, starting a copy of one well under two: so a test run
provisions one *template* domain (:func:`provision_template`, started once so that Samba makes
its TLS keys, then stopped) and every DC a test starts is a copy of it (:class:`SambaDc`) with
its own address written into its smb.conf. AD's ports are fixed (389, 636, 3268, 3269), so each
DC listens on an address of its own in 127.0.0.0/8 (:func:`free_loopback_address`).

Plain simple binds over ``ldap://`` are allowed (``ldap server require strong auth = no``), as
tests bind that way; LDAPS and StartTLS use Samba's self-signed certificate, issued to
``DC1.example.org`` (the provisioned host name) with no address in it. The Administrator's
password is random per template and never part of a command line, a repr or a log.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import socket
import subprocess
from pathlib import Path
from types import TracebackType

import ldap3
import pytest
from ldap3.core.exceptions import LDAPException

from engine import SystemClock
from tests.ldap.slapd import Secret, find_binary
from tests.processes import die_with_parent, tail, terminate

REALM = "EXAMPLE.ORG"
DOMAIN = "EXAMPLE"
HOST_NAME = "DC1"
BASE_DN = "DC=example,DC=org"
USERS_DN = f"CN=Users,{BASE_DN}"
ADMIN_UPN = f"Administrator@{REALM.lower()}"
ADMIN_DN = f"CN=Administrator,{USERS_DN}"
#: the name the DC's certificate is issued to (verify it with this when connecting by address)
TLS_SERVER_NAME = f"{HOST_NAME}.{REALM.lower()}"
PACKAGES = ("samba", "samba-ad-provision", "samba-dsdb-modules", "samba-vfs-modules")
PORTS = (389, 636, 3268, 3269)

_clock = SystemClock()

#: run by Samba's own Python (its bindings are not in the project's venv) on a stopped copy:
#: gives the DC a new invocationId, as restoring a DC from a backup does
_NEW_INVOCATION_ID = """
import sys, uuid, ldb
from samba.auth import system_session
from samba.dcerpc import misc
from samba.ndr import ndr_pack
from samba.param import LoadParm
from samba.samdb import SamDB
lp = LoadParm(); lp.load(sys.argv[1] + "/etc/smb.conf")
db = SamDB(url=sys.argv[1] + "/private/sam.ldb", session_info=system_session(), lp=lp,
           flags=ldb.FLG_DONT_CREATE_DB)
root = db.search(base="", scope=ldb.SCOPE_BASE, attrs=["dsServiceName"])[0]
service = str(root["dsServiceName"][0])
message = ldb.Message(ldb.Dn(db, service))
message["invocationId"] = ldb.MessageElement(
    ndr_pack(misc.GUID(str(uuid.uuid4()))), ldb.FLAG_MOD_REPLACE, "invocationId")
db.modify(message)
"""


def missing_components() -> list[str]:
    """What this machine lacks to run a throwaway Samba AD DC (empty when nothing)."""
    missing = [name for name in ("samba", "samba-tool") if find_binary(name) is None]
    # samba-dsdb-modules and samba-vfs-modules carry no binary: look for their libraries
    if not list(Path("/usr/lib").glob("*/samba/ldb/samba_dsdb.so")):
        missing.append("samba-dsdb-modules")
    if not list(Path("/usr/lib").glob("*/samba/vfs/acl_xattr.so")):
        missing.append("samba-vfs-modules")
    return missing


def require_samba() -> None:
    """Skip the calling test when Samba's AD DC is not installed; with ``CI=true`` fail it."""
    missing = missing_components()
    if not missing:
        return
    reason = (
        f"Samba's AD DC is not installed (missing: {', '.join(missing)}); `./dev test` as "
        f"root installs {' '.join(PACKAGES)}"
    )
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true: {reason}", pytrace=False)
    pytest.skip(reason)


def _bindable(address: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((address, port))
        except OSError:
            return False
        return True


def free_loopback_address() -> str:
    """An address in 127.0.0.0/8 where none of AD's ports is taken; random, so that test
    processes running side by side rarely try the same one (and a DC that loses the race does
    not start, and is retried elsewhere)."""
    for _ in range(200):
        address = f"127.{secrets.randbelow(200) + 50}.{secrets.randbelow(250) + 1}.1"
        if all(_bindable(address, port) for port in PORTS):
            return address
    raise SambaError("no loopback address with AD's ports free")


class SambaError(RuntimeError):
    """A throwaway DC could not be provisioned or started (its output is in the message)."""


class Template:
    """A provisioned, stopped domain that DCs are copied from."""

    def __init__(self, directory: Path, password: Secret) -> None:
        self.directory = directory
        self.password = password

    def __repr__(self) -> str:
        return f"Template({str(self.directory)!r})"


def _path_options(directory: Path) -> list[str]:
    """Everything Samba would otherwise keep under /var or /run, kept under ``directory``."""
    places = {
        "pid directory": "pid",
        "log file": "log/samba.log",
        "ncalrpc dir": "ncalrpc",
        "winbindd socket directory": "winbindd",
        "ntp signd socket directory": "ntp",
    }
    return [f"--option={name}={directory / place}" for name, place in places.items()]


def provision_template(directory: Path, timeout: float = 120.0) -> Template:
    """Provision the domain ``EXAMPLE.ORG`` in ``directory`` (its DC named DC1), allow plain
    simple binds, and start it once so that Samba makes its TLS keys (copies then share them
    instead of each making its own)."""
    tool = find_binary("samba-tool")
    if tool is None:
        raise SambaError("samba-tool is not installed")
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "log").mkdir(exist_ok=True)
    address = free_loopback_address()
    command = [
        tool, "domain", "provision", f"--realm={REALM}", f"--domain={DOMAIN}",
        f"--host-name={HOST_NAME}", "--server-role=dc", "--dns-backend=NONE",
        "--use-rfc2307", f"--targetdir={directory}", f"--option=interfaces={address}/8",
        "--option=bind interfaces only=yes", "--option=server services=ldap",
        *_path_options(directory),
    ]  # fmt: skip
    # no --adminpass: samba-tool makes a random password and says it in its output, so the
    # password is never on a command line (which any local user may read)
    done = subprocess.run(
        command, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout, check=False
    )
    output = (done.stdout + done.stderr).decode(errors="replace")
    said = re.search(r"Admin password:\s*(\S+)", output)
    if done.returncode != 0 or said is None:
        shown = re.sub(r"(Admin password:\s*)\S+", r"\1***", output)[-4000:]
        raise SambaError(f"samba-tool domain provision failed:\n{shown}")
    password = Secret(said.group(1))
    config = directory / "etc" / "smb.conf"
    text = config.read_text()
    text = text.replace("[global]\n", "[global]\n\tldap server require strong auth = no\n", 1)
    config.write_text(text)
    template = Template(directory, password)
    first = SambaDc(directory, address=address, password=password, template=None)
    first.start()
    first.stop(remove=False)
    return template


def _sockets_and_logs(directory: str, names: list[str]) -> set[str]:
    """What a copy of the template leaves out: the stopped DC's sockets (which cannot be
    copied, and which the copy makes anew) and its output."""
    left = {name for name in names if Path(directory, name).is_socket()}
    return left | ({"samba.out"} & set(names))


def copy_domain(source: Path, destination: Path) -> None:
    """A copy of a stopped domain's directory, its paths in smb.conf rewritten to the copy."""
    shutil.copytree(source, destination, symlinks=True, ignore=_sockets_and_logs)
    config = destination / "etc" / "smb.conf"
    config.write_text(config.read_text().replace(str(source), str(destination)))


class SambaDc:
    """One throwaway DC in ``directory``: a copy of ``template`` (or the template's own
    directory, for its first start), listening on ``address`` (a free one by default)."""

    def __init__(
        self,
        directory: Path,
        *,
        template: Template | None,
        address: str | None = None,
        password: Secret | None = None,
        new_invocation_id: bool = False,
    ) -> None:
        self.directory = directory
        self.template = template
        #: a copy is the template's DC itself (same invocationId, so the same USN history);
        #: True gives the copy an invocationId of its own, as a DC restored from a backup has
        self.new_invocation_id = new_invocation_id
        self.address = address or ""
        if password is None:
            assert template is not None
            password = template.password
        self.password = password
        self.process: subprocess.Popen[bytes] | None = None
        self.pid: int | None = None

    def __repr__(self) -> str:
        return f"SambaDc({self.url!r}, pid={self.pid})"

    @property
    def url(self) -> str:
        return f"ldap://{self.address}:389"

    @property
    def ldaps_url(self) -> str:
        return f"ldaps://{self.address}:636"

    @property
    def ca_file(self) -> str:
        """Samba's self-signed CA, which issued the DC's certificate."""
        return str(self.directory / "private" / "tls" / "ca.pem")

    @property
    def log(self) -> Path:
        return self.directory / "samba.out"

    # ------------------------------------------------------------------ life cycle
    def start(self, timeout: float = 30.0, attempts: int = 3) -> SambaDc:
        samba = find_binary("samba")
        if samba is None:
            raise SambaError("samba is not installed")
        if self.template is not None:
            self._copy_template()
        for attempt in range(1, attempts + 1):
            if not self.address or attempt > 1:
                self.address = free_loopback_address()
            self._write_address()
            if self._launch(samba, timeout):
                return self
        raise SambaError(f"Samba did not start; its output:\n{tail(self.log)}")

    def _copy_template(self) -> None:
        assert self.template is not None
        if self.directory.exists():
            shutil.rmtree(self.directory)
        copy_domain(self.template.directory, self.directory)
        for stale in ("pid", "ncalrpc", "winbindd", "ntp"):
            shutil.rmtree(self.directory / stale, ignore_errors=True)
        if self.new_invocation_id:
            done = subprocess.run(
                ["/usr/bin/python3", "-c", _NEW_INVOCATION_ID, str(self.directory)],
                stdin=subprocess.DEVNULL, capture_output=True, timeout=60, check=False,
            )  # fmt: skip
            if done.returncode != 0:
                output = (done.stdout + done.stderr).decode(errors="replace")[-2000:]
                raise SambaError(f"could not give the DC a new invocationId:\n{output}")

    def _write_address(self) -> None:
        config = self.directory / "etc" / "smb.conf"
        text = re.sub(
            r"^\tinterfaces = .*$", f"\tinterfaces = {self.address}/8", config.read_text(),
            count=1, flags=re.MULTILINE,
        )  # fmt: skip
        config.write_text(text)

    def _launch(self, samba: str, timeout: float) -> bool:
        config = self.directory / "etc" / "smb.conf"
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [samba, "-i", "-M", "single", "-s", str(config), "--maximum-runtime=7200"],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=die_with_parent,  # noqa: PLW1509 (servers start from one thread)
            )
        self.pid = self.process.pid
        if self._wait_ready(timeout):
            return True
        terminate(self.process)
        return False

    def _wait_ready(self, timeout: float) -> bool:
        deadline = _clock.monotonic() + timeout
        while _clock.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                return False
            try:
                self.connect().unbind()
                return True
            except LDAPException:
                _clock.sleep(0.1)
        return False

    def stop(self, timeout: float = 10.0, *, remove: bool = True) -> None:
        """SIGTERM, SIGKILL after ``timeout``; then remove the DC's directory (a copy)."""
        terminate(self.process, timeout)
        self.process = None
        if remove and self.template is not None:
            shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> SambaDc:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.stop()

    # ------------------------------------------------------------------ client side
    def connect(self, *, tls: bool = False) -> ldap3.Connection:
        """An ldap3 connection bound as the domain's Administrator (for a test's setup)."""
        server = ldap3.Server(
            self.ldaps_url if tls else self.url, get_info=ldap3.NONE, connect_timeout=5
        )
        return ldap3.Connection(
            server,
            ADMIN_UPN,
            self.password.reveal(),
            auto_bind=True,
            raise_exceptions=True,
            receive_timeout=30,
        )
