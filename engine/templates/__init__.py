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


#: what each side of a connected template needs: its secrets and its builder
_SOURCES = {
    "ldap": (LDAP_SOURCE_SECRETS, _ldap_source),
    "ad": (LDAP_SOURCE_SECRETS, _ad_source),
    "scim": (SCIM_SOURCE_SECRETS, _scim_source),
}
_TARGETS = {
    "ldap": (LDAP_TARGET_SECRETS, _ldap_target),
    "scim": (SCIM_TARGET_SECRETS, _scim_target),
}
#: the built-in templates with real connectors: (source kind, target kind); AD is LDAP
_CONNECTED = {
    "ldapToLdap": ("ldap", "ldap"),
    "ldapToScim": ("ldap", "scim"),
    "adToScim": ("ad", "scim"),
    "adToLdap": ("ad", "ldap"),
    "scimToLdap": ("scim", "ldap"),
    "ldapToAd": ("ldap", "ldap"),
    "scimToAd": ("scim", "ldap"),
}


def builtin_templates() -> dict[str, Template]:
    templates = {"memoryToMemory": Template(graph=load_builtin("memoryToMemory"))}
    for template_id, (source, target) in _CONNECTED.items():
        source_secrets, build_source = _SOURCES[source]
        target_secrets, build_target = _TARGETS[target]
        templates[template_id] = Template(
            graph=load_builtin(template_id),
            required_secrets=source_secrets + target_secrets,
            build_source=build_source,
            build_target=build_target,
            check_schema=_ldap_check(source=source != "scim", target=target == "ldap"),
        )
    return templates
