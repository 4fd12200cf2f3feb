"""Applications (Graph's servicePrincipals) and their secrets."""

from __future__ import annotations

import re
import threading
import uuid
from collections.abc import Callable, Collection, Mapping

import attrs

from engine.errors import ConfigurationError, NotFoundError
from engine.jobs._rows import Shared, status_of, with_status
from engine.lifecycle import Command, transition
from engine.limits import MAX_SECRETS, MAX_SECRETS_SIZE, shown
from engine.masking import credential_name
from engine.model import Application, StatusCode
from engine.secret_bindings import check_bound
from engine.settings import JobSettings
from engine.store import JobRow

DEFAULT_APPLICATION = "00000000-0000-0000-0000-000000000000"


@attrs.frozen
class SecretChanges:
    """What a merge did, by key (never a value): keys new to the application, keys whose
    value differed, keys sent with the value already stored (or the mask)."""

    added: tuple[str, ...]
    changed: tuple[str, ...]
    unchanged: tuple[str, ...]


class Applications:
    """Create, find and delete applications; replace their secrets, which configures or
    unconfigures their jobs."""

    def __init__(self, shared: Shared) -> None:
        self._shared = shared
        self._secrets_lock = threading.Lock()  # a PUT that keeps stored values reads, then writes

    def create(self, display_name: str | None, application_id: str | None) -> Application:
        app = Application(id=application_id or str(uuid.uuid4()), display_name=display_name)
        self._shared.store.save_application(app)
        return app

    def get(self, application_id: str) -> Application:
        app = self._shared.store.get_application(self.resolve(application_id, create=False))
        assert app is not None
        return app

    def delete(self, application_id: str, delete_job: Callable[[str], None]) -> None:
        """Delete the application with its jobs (each through ``delete_job``) and secrets."""
        app = self.resolve(application_id, create=False)
        for row in self._shared.store.list_jobs(app):
            delete_job(row.job.id)
        self._shared.store.delete_application(app)
        self._shared.log.info("application_deleted", application_id=app)

    def resolve(self, application_id: str | None, *, create: bool = True) -> str:
        """The application's id; the default one is made on first use unless ``create=False``."""
        store = self._shared.store
        if application_id is None:
            if create and store.get_application(DEFAULT_APPLICATION) is None:
                self.create("default", DEFAULT_APPLICATION)
            return DEFAULT_APPLICATION
        known = isinstance(application_id, str) and store.get_application(application_id)
        if not known:
            raise NotFoundError(f"no application {shown(application_id)}")
        return application_id

    def set_secrets(
        self, application_id: str | None, secrets: Mapping[str, str], keep: Collection[str]
    ) -> None:
        """See SyncEngine.set_secrets."""
        if not isinstance(secrets, Mapping):
            raise ConfigurationError(
                f"secrets must map names to values, not {type(secrets).__name__}"
            )
        clean = {str(k): str(v) for k, v in secrets.items()}
        check_credentials({k: v for k, v in clean.items() if k not in keep})
        JobSettings.parse((), {k: v for k, v in clean.items() if k not in keep}, strict=True)
        app = self.resolve(application_id)  # anything is stored (or a default app made)
        store = self._shared.store
        with self._secrets_lock:
            stored = store.get_secrets(app)
            missing = sorted(k for k in keep if k not in stored)
            if missing:
                raise ConfigurationError(
                    f"secret {missing[0]!r} has no stored value to keep; send its value"
                )
            clean.update({k: stored[k] for k in keep})
            check_count(clean)
            check_bound(stored, clean, fresh=[k for k in clean if k not in keep])
            JobSettings.parse((), clean, strict=True)  # refuse bad switches before storing anything
            store.save_secrets(app, clean)
        for row in store.list_jobs(app):
            self._reconfigure(row, clean)

    def merge_secrets(
        self, application_id: str, secrets: Mapping[str, str], keep: Collection[str]
    ) -> SecretChanges:
        """See SyncEngine.merge_secrets."""
        if not isinstance(secrets, Mapping):
            raise ConfigurationError(
                f"secrets must map names to values, not {type(secrets).__name__}"
            )
        clean = {str(k): str(v) for k, v in secrets.items() if k not in keep}
        check_credentials(clean)
        app = self.resolve(application_id, create=False)
        store = self._shared.store
        with self._secrets_lock:  # the read, the comparison and the write are one step
            stored = store.get_secrets(app)
            missing = sorted(k for k in keep if k not in stored)
            if missing:
                raise ConfigurationError(
                    f"secret {missing[0]!r} has no stored value to keep; send its value"
                )
            check_count({**stored, **clean})
            check_bound(stored, {**stored, **clean}, fresh=list(clean))
            added = tuple(k for k in clean if k not in stored)
            changed = tuple(k for k, v in clean.items() if k in stored and stored[k] != v)
            unchanged = tuple(str(k) for k in secrets if k not in added and k not in changed)
            changes = SecretChanges(added=added, changed=changed, unchanged=unchanged)
            if not changes.added and not changes.changed:
                return changes
            merged = {**stored, **clean}
            JobSettings.parse((), merged)  # refuse malformed switches before storing anything
            store.save_secrets(app, merged)
        for row in store.list_jobs(app):
            self._reconfigure(row, merged)
        return changes

    def masked_secrets(self, application_id: str | None) -> dict[str, str]:
        return dict.fromkeys(self._shared.store.get_secrets(self.resolve(application_id)), "*")

    def _reconfigure(self, row: JobRow, secrets: Mapping[str, str]) -> None:
        """The job is configured if its template's required secrets are all there, else not
        (a job of a template that is gone stays as it is)."""
        template = self._shared.template_of(row)
        if template is None:
            return
        missing = [k for k in template.required_secrets if not secrets.get(k)]
        command = Command.UNCONFIGURE if missing else Command.CONFIGURE

        def reconfigured(current: JobRow) -> JobRow:
            status = status_of(current)
            code = transition(status.code, command)
            assert isinstance(code, StatusCode)
            return with_status(current, attrs.evolve(status, code=code))

        self._shared.update(row.job.id, reconfigured)


_TOKEN = re.compile(r"token", re.IGNORECASE)


def check_count(secrets: Mapping[str, str]) -> None:
    """Refuse more secrets, or longer ones in all, than an application may keep
    (engine.limits MAX_SECRETS, MAX_SECRETS_SIZE)."""
    if len(secrets) > MAX_SECRETS:
        raise ConfigurationError(
            f"an application keeps at most {MAX_SECRETS:,} secrets, not {len(secrets):,}"
        )
    size = sum(len(k) + len(v) for k, v in secrets.items())
    if size > MAX_SECRETS_SIZE:
        raise ConfigurationError(
            f"an application's secrets hold at most {MAX_SECRETS_SIZE:,} characters in all "
            f"(keys and values), not {size:,}"
        )


def check_credentials(secrets: Mapping[str, str]) -> None:
    """Refuse, before anything is stored, a credential that masking could not follow: one
    with whitespace at either end or a control character (a token pasted with its newline is
    quoted escaped, ``\\n``, by HTTP libraries and in errors, where the raw value masked
    nothing), and a token that cannot go into an HTTP header (outside Latin-1). The message
    names the key and the fault, never the value."""
    for key, value in secrets.items():
        if not credential_name(key):
            continue
        if value != value.strip():
            raise ConfigurationError(
                f"secret {key!r} has whitespace at its start or end (a pasted newline?): "
                "send the value without it"
            )
        if any(ord(c) < 32 or ord(c) == 127 for c in value):
            raise ConfigurationError(f"secret {key!r} holds a control character")
        if _TOKEN.search(key) and not value.isascii():
            try:
                value.encode("latin-1")
            except UnicodeEncodeError:
                raise ConfigurationError(
                    f"secret {key!r} holds characters an HTTP header cannot carry (outside "
                    "Latin-1): a bearer token is ASCII"
                ) from None
