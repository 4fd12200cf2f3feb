"""Throwaway certificates for TLS tests, made with the ``openssl`` command line.

``make_ca`` makes a self-signed CA; ``make_server_certificate`` a certificate that CA signs for
``127.0.0.1`` (an IP subjectAltName, which is what a client checks an IP against). Keys are
EC P-256: fast to make and accepted by slapd's GnuTLS. Everything lives in a directory the test
owns (``tmp_path``), and no key leaves it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import attrs
import pytest

OPENSSL = "/usr/bin/openssl"
_EC_KEY = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]


@attrs.frozen
class Ca:
    certificate: Path
    key: Path


@attrs.frozen
class ServerCertificate:
    ca: Path  # the CA certificate file a client verifies against
    certificate: Path
    key: Path


def require_openssl() -> str:
    found = OPENSSL if Path(OPENSSL).exists() else shutil.which("openssl")
    if found is None:
        reason = "the openssl command line is not installed (`./dev test` as root installs it)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true: {reason}", pytrace=False)
        pytest.skip(reason)
    return found


def _openssl(*arguments: str) -> None:
    done = subprocess.run(
        [require_openssl(), *arguments], capture_output=True, text=True, check=False, timeout=30
    )
    if done.returncode != 0:
        raise RuntimeError(f"openssl {arguments[0]} failed: {done.stderr}")


def make_ca(directory: Path, name: str = "test-ca") -> Ca:
    directory.mkdir(parents=True, exist_ok=True)
    ca = Ca(directory / f"{name}.crt", directory / f"{name}.key")
    _openssl("req", "-x509", *_EC_KEY, "-keyout", str(ca.key), "-out", str(ca.certificate),
             "-days", "2", "-subj", f"/CN={name}",
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign")  # fmt: skip
    return ca


def make_server_certificate(directory: Path, ca: Ca, ip: str = "127.0.0.1") -> ServerCertificate:
    """A certificate for ``ip`` signed by ``ca`` (key and certificate in ``directory``)."""
    directory.mkdir(parents=True, exist_ok=True)
    key, request = directory / "server.key", directory / "server.csr"
    certificate = directory / "server.crt"
    extensions = directory / "server.ext"
    extensions.write_text(
        f"subjectAltName=IP:{ip}\nbasicConstraints=CA:FALSE\n"
        "keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n"
    )
    _openssl("req", "-new", *_EC_KEY, "-keyout", str(key), "-out", str(request),
             "-subj", f"/CN={ip}")  # fmt: skip
    _openssl("x509", "-req", "-in", str(request), "-CA", str(ca.certificate),
             "-CAkey", str(ca.key), "-CAcreateserial", "-out", str(certificate),
             "-days", "2", "-extfile", str(extensions))  # fmt: skip
    return ServerCertificate(ca.certificate, certificate, key)
