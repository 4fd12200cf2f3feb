"""Job settings and behaviour switches, read once per cycle from the job and its secrets.

Graph keeps some switches as job settings (``synchronizationJobSettings``) and others as
secrets of the application (``SkipOutOfScopeDeletions``, ``HardDeletesEnabled``,
``SyncNotificationSettings``); both land here, validated, with Entra's behaviour as defaults.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import timedelta

import attrs

from engine.errors import ConfigurationError
from engine.limits import DEFAULT_REGEX_TIMEOUT, MAX_REGEX_TIMEOUT
from engine.model import KeyValuePair
from engine.model.converter import format_duration, parse_duration

DEFAULT_INTERVAL = timedelta(minutes=2)
DEFAULT_ESCROW_BACKOFF = (
    timedelta(0),
    *(min(timedelta(minutes=5) * 2**n, timedelta(days=1)) for n in range(10)),
)

#: Job settings this engine reads; other names are kept and shown, as Graph does.
KNOWN_SETTINGS = frozenset(
    {
        "QuarantineTooManyDeletesThreshold",
        "QuarantineTooManyDeletesPercent",
        "QuarantineEscrowMinimum",
        "QuarantineEscrowProportion",
        "QuarantineUnreachableCycles",
        "EscrowRetryBackoff",
        "EscrowMaxAge",
        "ExportConcurrency",
        "PageSize",
        "TransientRetries",
        "ProvisioningLogRetention",
        "RegexTimeout",
    }
)


def _truthy(value: str | None, name: str) -> bool:
    if value is None:
        return False
    text = value.strip().lower()
    if text in {"true", "1", "yes"}:
        return True
    if text in {"false", "0", "no", ""}:
        return False
    raise ConfigurationError(f"{name} must be True or False, not {value!r}")


def _int(value: str, name: str, minimum: int = 0) -> int:
    try:
        number = int(value)
    except ValueError:
        raise ConfigurationError(f"{name} must be a whole number, not {value!r}") from None
    if number < minimum:
        raise ConfigurationError(f"{name} must be at least {minimum}, not {number}")
    return number


def _float(value: str, name: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise ConfigurationError(f"{name} must be a number, not {value!r}") from None
    if not 0 <= number <= 100:
        raise ConfigurationError(f"{name} must be between 0 and 100, not {number}")
    return number


def _duration(value: str, name: str) -> timedelta:
    try:
        return parse_duration(value)
    except (TypeError, ValueError) as exc:
        raise ConfigurationError(f"{name}: {exc}") from None


@attrs.frozen(kw_only=True)
class JobSettings:
    """The knobs one cycle obeys."""

    delete_threshold: int | None = 500
    delete_threshold_percent: float | None = None
    escrow_minimum: int = 5000
    escrow_proportion: float = 0.4
    unreachable_cycles: int = 3
    escrow_backoff: tuple[timedelta, ...] = DEFAULT_ESCROW_BACKOFF
    escrow_max_age: timedelta = timedelta(days=28)
    export_concurrency: int = 1
    page_size: int = 500
    transient_retries: int = 3
    log_retention: timedelta = timedelta(days=30)  # Entra keeps provisioning logs 30 days
    regex_timeout: timedelta = DEFAULT_REGEX_TIMEOUT  # per regular expression call and value
    hard_deletes: bool = True
    skip_out_of_scope_deletions: bool = False

    @classmethod
    def parse(
        cls, settings: Iterable[KeyValuePair], secrets: Mapping[str, str] | None = None
    ) -> JobSettings:
        """Validate settings and switches; a bad value raises ConfigurationError naming it."""
        values = {pair.name: pair.value for pair in settings if pair.value is not None}
        secrets = secrets or {}
        kwargs: dict[str, object] = {}
        if "QuarantineTooManyDeletesThreshold" in values:
            kwargs["delete_threshold"] = _int(
                values["QuarantineTooManyDeletesThreshold"], "QuarantineTooManyDeletesThreshold"
            )
        if "QuarantineTooManyDeletesPercent" in values:
            kwargs["delete_threshold_percent"] = _float(
                values["QuarantineTooManyDeletesPercent"], "QuarantineTooManyDeletesPercent"
            )
        if "SyncNotificationSettings" in secrets:
            kwargs.update(_notification_threshold(secrets["SyncNotificationSettings"]))
        for key, name, minimum in (
            ("escrow_minimum", "QuarantineEscrowMinimum", 0),
            ("unreachable_cycles", "QuarantineUnreachableCycles", 1),
            ("export_concurrency", "ExportConcurrency", 1),
            ("page_size", "PageSize", 1),
            ("transient_retries", "TransientRetries", 0),
        ):
            if name in values:
                kwargs[key] = _int(values[name], name, minimum)
        if "QuarantineEscrowProportion" in values:
            proportion = _float(values["QuarantineEscrowProportion"], "QuarantineEscrowProportion")
            if proportion > 1:
                raise ConfigurationError("QuarantineEscrowProportion is a share from 0 to 1")
            kwargs["escrow_proportion"] = proportion
        if "EscrowRetryBackoff" in values:
            steps = [s for s in values["EscrowRetryBackoff"].split(",") if s.strip()]
            if not steps:
                raise ConfigurationError("EscrowRetryBackoff needs at least one duration")
            kwargs["escrow_backoff"] = tuple(_duration(s, "EscrowRetryBackoff") for s in steps)
        if "ProvisioningLogRetention" in values:
            kwargs["log_retention"] = _duration(
                values["ProvisioningLogRetention"], "ProvisioningLogRetention"
            )
        if "EscrowMaxAge" in values:
            kwargs["escrow_max_age"] = _duration(values["EscrowMaxAge"], "EscrowMaxAge")
        if "RegexTimeout" in values:
            timeout = _duration(values["RegexTimeout"], "RegexTimeout")
            if not timedelta(0) < timeout <= MAX_REGEX_TIMEOUT:
                raise ConfigurationError(
                    "RegexTimeout must be longer than zero and at most "
                    f"{format_duration(MAX_REGEX_TIMEOUT)}, not {values['RegexTimeout']!r}"
                )
            kwargs["regex_timeout"] = timeout
        if "HardDeletesEnabled" in secrets:
            kwargs["hard_deletes"] = _truthy(secrets["HardDeletesEnabled"], "HardDeletesEnabled")
        if "SkipOutOfScopeDeletions" in secrets:
            kwargs["skip_out_of_scope_deletions"] = _truthy(
                secrets["SkipOutOfScopeDeletions"], "SkipOutOfScopeDeletions"
            )
        return cls(**kwargs)  # type: ignore[arg-type]

    def escrow_delay(self, attempts: int) -> timedelta:
        """How long after its ``attempts``-th failure an escrowed object is retried."""
        steps = self.escrow_backoff
        delay: timedelta = steps[min(max(attempts, 1), len(steps)) - 1]
        return delay


def _notification_threshold(text: str) -> dict[str, object]:
    try:
        body = json.loads(text)
    except ValueError:
        raise ConfigurationError("SyncNotificationSettings must be a JSON object") from None
    if not isinstance(body, dict):
        raise ConfigurationError("SyncNotificationSettings must be a JSON object")
    enabled = body.get("DeleteThresholdEnabled")
    if enabled is False:
        return {"delete_threshold": None}
    value = body.get("DeleteThresholdValue")
    if value is None:
        return {}
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigurationError("SyncNotificationSettings.DeleteThresholdValue must be >= 0")
    return {"delete_threshold": value}


def quarantine_delay(interval: timedelta, series_count: int) -> timedelta:
    """Quarantined jobs back off: the interval doubled per re-evaluation, at most one day."""
    factor: int = 2 ** min(max(series_count, 0), 20)
    return min(interval * factor, timedelta(days=1))
