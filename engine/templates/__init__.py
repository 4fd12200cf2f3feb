"""Built-in templates: which connectors a job uses, what secrets it needs, its default schema.

Templates are data (JSON beside this file) plus optional factories that build connectors from
the application's secrets and the job's schema (``ldapToLdap``, ``adToScim``, ...); a job of
such a template needs no ``attach``, so a new engine on the same state file runs it after a
restart. A template
without factories (``memoryToMemory``) takes connector objects from the caller. More
templates can be registered from Python.

What it may import: the pure core (the model) and the connectors it builds
(``connectors.ldap``, ``connectors.scim``); never the store, a cycle or ``engine.jobs``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from importlib import resources

import attrs

from connectors.base import Source, Target
from engine.model import SynchronizationSchema, SynchronizationTemplate, from_graph

#: (the application's secrets, the job's schema) -> a connector
SourceFactory = Callable[[Mapping[str, str], SynchronizationSchema], Source]
TargetFactory = Callable[[Mapping[str, str], SynchronizationSchema], Target]


@attrs.frozen(kw_only=True)
class Template:
    """A template as Graph shows it, plus what the engine needs to build a job from it."""

    graph: SynchronizationTemplate
    required_secrets: tuple[str, ...] = ()
    build_source: SourceFactory | None = None
    build_target: TargetFactory | None = None
    #: raises MappingError for a schema its connectors could never be built from
    check_schema: Callable[[SynchronizationSchema], None] | None = None

    @property
    def id(self) -> str:
        return self.graph.id

    @property
    def schema(self) -> SynchronizationSchema:
        return self.graph.schema or SynchronizationSchema()


def load_builtin(template_id: str) -> SynchronizationTemplate:
    text = resources.files(__package__).joinpath(f"{template_id}.json").read_text("utf-8")
    return from_graph(json.loads(text), SynchronizationTemplate)


def _ldap_source(secrets: Mapping[str, str], schema: SynchronizationSchema) -> Source:
    from engine.templates import _ldap  # noqa: PLC0415 (ldap3 only for jobs that use it)

    source: Source = _ldap.build_source(secrets, schema)
    return source


#: SourceDeltaMode of the Active Directory templates when the secret is not set
AD_DELTA_MODE = "usn"


def _ad_source(secrets: Mapping[str, str], schema: SynchronizationSchema) -> Source:
    from engine.templates import _ldap  # noqa: PLC0415

    source: Source = _ldap.build_source(secrets, schema, default_mode=AD_DELTA_MODE)
    return source


def _ldap_target(secrets: Mapping[str, str], schema: SynchronizationSchema) -> Target:
    from engine.templates import _ldap  # noqa: PLC0415

    target: Target = _ldap.build_target(secrets, schema)
    return target


def _scim_source(secrets: Mapping[str, str], schema: SynchronizationSchema) -> Source:
    from engine.templates import _scim  # noqa: PLC0415

    source: Source = _scim.build_source(secrets, schema)
    return source


def _scim_target(secrets: Mapping[str, str], schema: SynchronizationSchema) -> Target:
    from engine.templates import _scim  # noqa: PLC0415

    target: Target = _scim.build_target(secrets, schema)
    return target


def _ldap_check(source: bool, target: bool) -> Callable[[SynchronizationSchema], None]:
    def check(schema: SynchronizationSchema) -> None:
        from engine.templates import _ldap  # noqa: PLC0415

        for side, wanted in ((True, source), (False, target)):
            if wanted:
                _ldap.check_schema(schema, side)

    return check


LDAP_SOURCE_SECRETS = ("SourceUrl", "SourceUserName", "SourcePassword", "SourceBaseDn")
LDAP_TARGET_SECRETS = ("Url", "UserName", "Password", "BaseDn")
SCIM_SOURCE_SECRETS = ("SourceBaseAddress", "SourceSecretToken")
SCIM_TARGET_SECRETS = ("BaseAddress", "SecretToken")


def builtin_templates() -> dict[str, Template]:
    return {
        "memoryToMemory": Template(graph=load_builtin("memoryToMemory")),
        "ldapToLdap": Template(
            graph=load_builtin("ldapToLdap"),
            required_secrets=LDAP_SOURCE_SECRETS + LDAP_TARGET_SECRETS,
            build_source=_ldap_source,
            build_target=_ldap_target,
            check_schema=_ldap_check(source=True, target=True),
        ),
        "ldapToScim": Template(
            graph=load_builtin("ldapToScim"),
            required_secrets=LDAP_SOURCE_SECRETS + SCIM_TARGET_SECRETS,
            build_source=_ldap_source,
            build_target=_scim_target,
            check_schema=_ldap_check(source=True, target=False),
        ),
        "adToScim": Template(
            graph=load_builtin("adToScim"),
            required_secrets=LDAP_SOURCE_SECRETS + SCIM_TARGET_SECRETS,
            build_source=_ad_source,
            build_target=_scim_target,
            check_schema=_ldap_check(source=True, target=False),
        ),
        "adToLdap": Template(
            graph=load_builtin("adToLdap"),
            required_secrets=LDAP_SOURCE_SECRETS + LDAP_TARGET_SECRETS,
            build_source=_ad_source,
            build_target=_ldap_target,
            check_schema=_ldap_check(source=True, target=True),
        ),
        "scimToLdap": Template(
            graph=load_builtin("scimToLdap"),
            required_secrets=SCIM_SOURCE_SECRETS + LDAP_TARGET_SECRETS,
            build_source=_scim_source,
            build_target=_ldap_target,
            check_schema=_ldap_check(source=False, target=True),
        ),
        "ldapToAd": Template(
            graph=load_builtin("ldapToAd"),
            required_secrets=LDAP_SOURCE_SECRETS + LDAP_TARGET_SECRETS,
            build_source=_ldap_source,
            build_target=_ldap_target,
            check_schema=_ldap_check(source=True, target=True),
        ),
        "scimToAd": Template(
            graph=load_builtin("scimToAd"),
            required_secrets=SCIM_SOURCE_SECRETS + LDAP_TARGET_SECRETS,
            build_source=_scim_source,
            build_target=_ldap_target,
            check_schema=_ldap_check(source=False, target=True),
        ),
    }
