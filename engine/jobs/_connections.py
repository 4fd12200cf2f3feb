"""A job's connectors: attached by an embedder, or built from its template, its
application's secrets and its schema, cached while those stay the same. Graph's
validateCredentials and discover talk to the directories through them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from connectors.base import ConnectorError, Source, Target
from connectors.discovery import Discoverable
from engine import discovery
from engine.errors import ConfigurationError, DiscoveryNotSupported
from engine.jobs._rows import Shared
from engine.masking import MASK, credential_values, mask_secrets, masked_error
from engine.model import DirectoryDefinition, SynchronizationSchema
from engine.secret_bindings import check_bound
from engine.store import JobRow
from engine.templates import Template
from engine.validation import validate_schema


def check_connectors(source: object, target: object) -> tuple[Source, Target]:
    if source is None or target is None:
        raise ConfigurationError("a job needs both a source and a target connector")
    if not isinstance(source, Source):
        raise ConfigurationError("the source does not implement the source protocol")
    if not isinstance(target, Target):
        raise ConfigurationError("the target does not implement the target protocol")
    return source, target


def _close(connector: object) -> None:
    close = getattr(connector, "close", None)
    if close is not None:
        close()


class Connections:
    """Which connectors a job runs with, and their life: built once per (secrets, schema),
    closed when either changes or the job goes."""

    def __init__(self, shared: Shared) -> None:
        self._shared = shared
        self._attached: dict[str, tuple[Source, Target]] = {}
        #: connectors built from a template, with the (secrets, schema) they were built from
        self._built: dict[str, tuple[Any, tuple[Source, Target]]] = {}

    def attach(
        self, job_id: str, source: Source | None, target: Target | None, row: JobRow | None = None
    ) -> None:
        """Give the job its connectors; with its stored ``row``, tell the schedule (a started
        job that had none may run now)."""
        self._attached[job_id] = check_connectors(source, target)
        if row is not None:
            self._shared.changed(job_id, row)

    def is_attached(self, job_id: str) -> bool:
        return job_id in self._attached

    def forget(self, job_id: str) -> None:
        """The job is gone: drop what was attached, close what was built."""
        self._attached.pop(job_id, None)
        self._close_built(job_id)

    def close(self) -> None:
        for job_id in list(self._built):
            self._close_built(job_id)

    def buildable(self, row: JobRow) -> bool:
        """Whether the job has connectors: attached ones, or a template that builds them."""
        if row.job.id in self._attached:
            return True
        template = self._shared.template_of(row)
        return bool(template and template.build_source and template.build_target)

    def for_row(self, row: JobRow) -> tuple[Source, Target]:
        """Attached connectors, else the template's, built from the secrets and the schema
        and rebuilt when either changes (the old ones are closed)."""
        job_id = row.job.id
        if job_id in self._attached:
            return self._attached[job_id]
        template = self._shared.template_of(row)
        if template and template.build_source and template.build_target:
            secrets = self._shared.store.get_secrets(row.application_id)
            key = (tuple(sorted(secrets.items())), row.job.schema)
            built = self._built.get(job_id)
            if built is not None and built[0] == key:
                return built[1]
            self._close_built(job_id)
            pair = build(template, secrets, row.job.schema or template.schema)
            self._built[job_id] = (key, pair)
            return pair
        raise ConfigurationError(
            f"job {job_id} has no connectors: pass source and target to create_job or attach"
        )

    def _close_built(self, job_id: str) -> None:
        built = self._built.pop(job_id, None)
        for connector in built[1] if built else ():
            _close(connector)

    def validate_credentials(self, job_id: str, secrets: Mapping[str, str] | None) -> None:
        """See SyncEngine.validate_credentials."""
        row = self._shared.row(job_id)
        template = self._shared.template_of(row)
        if secrets is None and job_id in self._attached:
            pair = self._attached[job_id]
        elif template and template.build_source and template.build_target:
            saved = self._shared.store.get_secrets(row.application_id)
            sent = {str(k): str(v) for k, v in (secrets or {}).items()}
            fresh = {k: v for k, v in sent.items() if v != MASK}  # the mask: the saved value
            use = {**saved, **fresh}
            check_bound(saved, use, fresh=list(fresh))  # before any connection is opened
            missing = [k for k in template.required_secrets if not use.get(k)]
            if missing:
                raise ConfigurationError(f"missing secrets: {', '.join(missing)}")
            pair = build(template, use, row.job.schema or template.schema)
        else:
            raise ConfigurationError(f"job {job_id} has no connectors to validate")
        try:
            for connector in pair:
                connector.validate()
        except ConnectorError as exc:  # a URL's user:password@, a token the directory quoted
            saved = self._shared.store.get_secrets(row.application_id)
            hidden = [*credential_values(saved), *credential_values(secrets or {})]
            raise masked_error(exc, hidden) from None
        finally:
            if pair is not self._attached.get(job_id):
                for connector in pair:
                    _close(connector)

    def discover(self, job_id: str, directory_id: str) -> DirectoryDefinition:
        """See SyncEngine.discover."""
        row = self._shared.row(job_id)
        schema = row.job.schema or SynchronizationSchema()
        side = discovery.side_of(schema, discovery.find_directory(schema, directory_id))
        template = self._shared.template_of(row)
        attached = self._attached.get(job_id)
        connector: object
        if attached is not None:
            connector = attached[0] if side == "source" else attached[1]
        elif template and template.build_source and template.build_target:
            secrets = self._shared.store.get_secrets(row.application_id)
            missing = [k for k in template.required_secrets if not secrets.get(k)]
            if missing:
                raise ConfigurationError(f"missing secrets: {', '.join(missing)}")
            build_side = template.build_source if side == "source" else template.build_target
            try:
                connector = build_side(secrets, schema)
            except ConnectorError as exc:  # e.g. a malformed URL in the secrets
                raise ConfigurationError(f"cannot build the {side} connector: {exc}") from None
        else:
            connector = None
        try:
            if not isinstance(connector, Discoverable):
                raise DiscoveryNotSupported(
                    f"the {side} connector of directory {directory_id!r} cannot discover its "
                    "schema (discovery needs an LDAP or SCIM directory)"
                )
            found = connector.discover()
        finally:
            if attached is None:
                _close(connector)
        now = self._shared.clock.now()
        refreshed: list[DirectoryDefinition] = []

        def merged_into(current: JobRow) -> JobRow:  # the schema as stored now: a command, a
            merged, directory = discovery.apply(  # cycle or a PUT may have saved it meanwhile
                current.job.schema or SynchronizationSchema(), directory_id, found, now
            )
            validate_schema(merged)
            refreshed.append(directory)
            return attrs.evolve(current, job=attrs.evolve(current.job, schema=merged))

        self._shared.update(job_id, merged_into)
        directory = refreshed[-1]
        self._shared.log.info(
            "directory_discovered",
            job_id=job_id,
            directory_id=directory.id,
            version=directory.version,
            attributes={o.name: len(o.attributes) for o in directory.objects},
        )
        return directory


def build(
    template: Template, secrets: Mapping[str, str], schema: SynchronizationSchema
) -> tuple[Source, Target]:
    """The template's connectors; what cannot be built (a bad URL, say) is a
    ConfigurationError whose message never shows a secret."""
    assert template.build_source is not None and template.build_target is not None
    try:
        return check_connectors(
            template.build_source(secrets, schema), template.build_target(secrets, schema)
        )
    except (ConnectorError, ValueError, ConfigurationError) as exc:  # e.g. a bad URL
        message = f"cannot build the job's connectors: {exc}"
        raise ConfigurationError(mask_secrets(message, credential_values(secrets))) from None
