"""SCIM connectors built from an application's secrets (ARCHITECTURE §6: target
``BaseAddress`` and ``SecretToken``, as Graph names them; source the same prefixed ``Source``;
``[Source]CaFile`` and ``[Source]VerifyCertificate`` for TLS)."""

from __future__ import annotations

from collections.abc import Mapping

from connectors.scim import ScimSource, ScimTarget
from engine.model import SynchronizationSchema

_TRUE = ("true", "1", "yes")


def _options(secrets: Mapping[str, str], prefix: str) -> tuple[str, str, dict[str, object]]:
    def get(name: str, default: str = "") -> str:
        return (secrets.get(prefix + name) or default).strip()

    options: dict[str, object] = {
        "ca_file": get("CaFile") or None,
        "verify": get("VerifyCertificate", "true").lower() in _TRUE,
    }
    return get("BaseAddress"), secrets.get(prefix + "SecretToken") or "", options


def build_source(secrets: Mapping[str, str], schema: SynchronizationSchema) -> ScimSource:
    address, token, options = _options(secrets, "Source")
    return ScimSource(address, token, **options)  # type: ignore[arg-type]


def build_target(secrets: Mapping[str, str], schema: SynchronizationSchema) -> ScimTarget:
    address, token, options = _options(secrets, "")
    return ScimTarget(address, token, **options)  # type: ignore[arg-type]
