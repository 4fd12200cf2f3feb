"""Job settings and behaviour switches, read once per cycle from the job and its secrets.

Graph keeps some switches as job settings (``synchronizationJobSettings``) and others as
secrets of the application (``SkipOutOfScopeDeletions``, ``HardDeletesEnabled``,
``SyncNotificationSettings``); both land here, validated, with Entra's behaviour as defaults.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from datetime import timedelta

import attrs

from engine.errors import ConfigurationError
from engine.limits import (
    DEFAULT_REGEX_TIMEOUT,
    MAX_DURATION,
    MAX_JSON_DEPTH,
    MAX_REGEX_TIMEOUT,
    MAX_SETTING_TEXT,
    MAX_WHOLE_NUMBER,
    shown,
    text_depth,
)
from engine.model import KeyValuePair
from engine.model.converter import format_duration, parse_duration

DEFAULT_INTERVAL = timedelta(minutes=2)
DEFAULT_ESCROW_BACKOFF = (
    timedelta(0),
    *(min(timedelta(minutes=5) * 2**n, timedelta(days=1)) for n in range(10)),
)

#: Job settings this engine reads.
ENGINE_SETTINGS = frozenset(
    {
        "QuarantineTooManyDeletesThreshold",
        "QuarantineTooManyDeletesPercent",
        "SourceShrinkThreshold",
        "QuarantineEscrowMinimum",
        "QuarantineEscrowProportion",
        "QuarantineUnreachableCycles",
        "EscrowRetryBackoff",
        "EscrowMaxAge",
        "ExportConcurrency",
        "PageSize",
        "TransientRetries",
        "ProvisioningLogRetention",
        "ProvisioningLogMaxRecords",
        "RegexTimeout",
        "DeleteGracePeriod",
    }
)
#: Job settings Graph documents that this engine keeps and shows but does not act on (cloud
#: sync's directory names): a job copied from Entra carries them.
GRAPH_ONLY_SETTINGS = frozenset({"DomainFQDN", "DomainNetBios", "ForestFQDN", "ForestNetBios"})
#: The names a job setting may have; any other is refused (a typo would otherwise be kept
#: and silently do nothing).
KNOWN_SETTINGS = ENGINE_SETTINGS | GRAPH_ONLY_SETTINGS
#: The keys of the SyncNotificationSettings secret Graph documents (the engine reads the two
#: DeleteThreshold ones; the others are Entra's e-mail notices).
NOTIFICATION_KEYS = frozenset(
    {
        "Enabled",
        "Recipients",
        "DeleteThresholdEnabled",
        "DeleteThresholdValue",
        "HumanResourcesLookaheadQueryEnabled",
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
    raise ConfigurationError(f"{name} must be True or False, not {shown(value)}")


_WHOLE = re.compile(r"-?[0-9]{1,10}")  # ASCII digits only: int() would take "١٢" and "1_0"
_DECIMAL = re.compile(r"-?[0-9]{1,10}(\.[0-9]{1,10})?")  # and float() "nan" and "inf"


def _int(value: str, name: str, minimum: int = 0, maximum: int = MAX_WHOLE_NUMBER) -> int:
    if not _WHOLE.fullmatch(value.strip()):
        raise ConfigurationError(
            f"{name} must be a whole number written with the digits 0-9, not {shown(value)}"
        )
    number = int(value.strip())
    if not minimum <= number <= maximum:
        raise ConfigurationError(f"{name} must be from {minimum} to {maximum}, not {number}")
    return number


def _float(value: str, name: str, maximum: float) -> float:
    if not _DECIMAL.fullmatch(value.strip()):
        raise ConfigurationError(
            f"{name} must be a decimal number such as 0.4 (digits 0-9), not {shown(value)}"
        )
    number = float(value.strip())
    if not 0 <= number <= maximum:
        raise ConfigurationError(f"{name} must be from 0 to {maximum:g}, not {number:g}")
    return number


def _duration(value: str, name: str, *, positive: bool = False) -> timedelta:
    """A bounded ISO-8601 duration; ``positive`` refuses zero where zero would mean 'at once'
    (a log kept for no time, an escrow parked at its first failure)."""
    try:
        duration = parse_duration(value, MAX_DURATION)
    except (TypeError, ValueError) as exc:
        raise ConfigurationError(f"{name}: {exc}") from None
    if positive and duration <= timedelta(0):
        raise ConfigurationError(f"{name} must be longer than zero, not {shown(value)}")
    return duration


#: (field, setting, minimum, maximum) of the whole-number settings.
_WHOLE_SETTINGS = (
    ("delete_threshold", "QuarantineTooManyDeletesThreshold", 0, MAX_WHOLE_NUMBER),
    ("escrow_minimum", "QuarantineEscrowMinimum", 0, MAX_WHOLE_NUMBER),
    ("unreachable_cycles", "QuarantineUnreachableCycles", 1, 1000),
    ("export_concurrency", "ExportConcurrency", 1, 64),
    ("page_size", "PageSize", 1, 100_000),
    ("transient_retries", "TransientRetries", 0, 10),  # see _context.MAX_RETRIES
    ("log_max_records", "ProvisioningLogMaxRecords", 0, MAX_WHOLE_NUMBER),
)
#: ProvisioningLogMaxRecords when absent or 0: at ~700 bytes a record, ~70 MB of state file
DEFAULT_LOG_MAX_RECORDS = 100_000


def _log_max_records(number: int) -> int:
    """0 means the default, not "keep none" (Graph's settings give no way to unset one)."""
    return number or DEFAULT_LOG_MAX_RECORDS


@attrs.frozen(kw_only=True)
class JobSettings:
    """The knobs one cycle obeys."""

    delete_threshold: int | None = 500
    delete_threshold_percent: float | None = None
    #: the % of a mapping's linked objects a full read may not see; one that misses more (or
    #: sees none of them, whatever this is) is not trusted: the cycle's deletes are held
    source_shrink_threshold: float = 50.0
    #: a cycle in which at least this many objects, and more than this share of them, failed
    #: quarantines at once: a wrong URL or schema fails every object alike
    escrow_minimum: int = 10
    escrow_proportion: float = 0.4
    #: failed cycles in a row before quarantine: the first shows (it recovers by itself)
    unreachable_cycles: int = 1
    escrow_backoff: tuple[timedelta, ...] = DEFAULT_ESCROW_BACKOFF
    escrow_max_age: timedelta = timedelta(days=28)
    #: None: 4 for targets that declare PARALLEL_WRITES (remote ones), else 1
    export_concurrency: int | None = None
    page_size: int = 500
    transient_retries: int = 3
    log_retention: timedelta = timedelta(days=30)  # Entra keeps provisioning logs 30 days
    #: the job's provisioning log records kept at most, whatever their age: time alone lets
    #: a busy job's log grow by gigabytes a month (the oldest checkpoints go first)
    log_max_records: int = attrs.field(default=DEFAULT_LOG_MAX_RECORDS, converter=_log_max_records)
    regex_timeout: timedelta = DEFAULT_REGEX_TIMEOUT  # per regular expression call and value
    hard_deletes: bool = True
    skip_out_of_scope_deletions: bool = False
    #: DeleteGracePeriod: None (off) deletes at once; else a delete disables the object now
    #: (where the target can) and deletes it this long after, unless restored or back by then
    delete_grace: timedelta | None = None

    @classmethod
    def parse(
        cls,
        settings: Iterable[KeyValuePair],
        secrets: Mapping[str, str] | None = None,
        *,
        strict: bool = False,
    ) -> JobSettings:
        """Validate settings and switches; a bad value raises ConfigurationError naming it.
        ``strict`` (where settings and secrets come in: job creation, saved secrets) also
        refuses a setting or a SyncNotificationSettings key neither the engine nor Graph
        knows, listing the known names: a typo would otherwise be kept and do nothing. A
        cycle reads leniently, so a job stored before a name was refused still runs."""
        settings = tuple(settings)
        if strict:
            unknown = sorted({pair.name for pair in settings} - KNOWN_SETTINGS)
            if unknown:
                raise ConfigurationError(
                    f"unknown job setting {shown(unknown[0])}; known settings: "
                    + ", ".join(sorted(KNOWN_SETTINGS))
                )
        values = {pair.name: pair.value for pair in settings if pair.value is not None}
        for name, value in values.items():
            if len(value) > MAX_SETTING_TEXT:
                raise ConfigurationError(f"{name} is longer than {MAX_SETTING_TEXT} characters")
        secrets = secrets or {}
        kwargs: dict[str, object] = {}
        for key, name, minimum, maximum in _WHOLE_SETTINGS:
            if name in values:
                kwargs[key] = _int(values[name], name, minimum, maximum)
        if "QuarantineTooManyDeletesPercent" in values:
            kwargs["delete_threshold_percent"] = _float(
                values["QuarantineTooManyDeletesPercent"], "QuarantineTooManyDeletesPercent", 100
            )
        if "SourceShrinkThreshold" in values:
            kwargs["source_shrink_threshold"] = _float(
                values["SourceShrinkThreshold"], "SourceShrinkThreshold", 100
            )
        if "SyncNotificationSettings" in secrets:
            kwargs.update(
                _notification_threshold(secrets["SyncNotificationSettings"], strict=strict)
            )
        if "QuarantineEscrowProportion" in values:
            kwargs["escrow_proportion"] = _float(
                values["QuarantineEscrowProportion"], "QuarantineEscrowProportion", 1
            )
        if "EscrowRetryBackoff" in values:
            steps = [s for s in values["EscrowRetryBackoff"].split(",") if s.strip()]
            if not steps:
                raise ConfigurationError("EscrowRetryBackoff needs at least one duration")
            kwargs["escrow_backoff"] = tuple(_duration(s, "EscrowRetryBackoff") for s in steps)
        if "ProvisioningLogRetention" in values:
            kwargs["log_retention"] = _duration(
                values["ProvisioningLogRetention"], "ProvisioningLogRetention", positive=True
            )
        if "EscrowMaxAge" in values:
            kwargs["escrow_max_age"] = _duration(
                values["EscrowMaxAge"], "EscrowMaxAge", positive=True
            )
        if "RegexTimeout" in values:
            timeout = _duration(values["RegexTimeout"], "RegexTimeout")
            if not timedelta(0) < timeout <= MAX_REGEX_TIMEOUT:
                raise ConfigurationError(
                    "RegexTimeout must be longer than zero and at most "
                    f"{format_duration(MAX_REGEX_TIMEOUT)}, not {values['RegexTimeout']!r}"
                )
            kwargs["regex_timeout"] = timeout
        if "DeleteGracePeriod" in values:
            grace = _duration(values["DeleteGracePeriod"], "DeleteGracePeriod")
            kwargs["delete_grace"] = grace if grace > timedelta(0) else None  # PT0S: off
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


def _notification_threshold(text: str, *, strict: bool) -> dict[str, object]:
    if len(text) > MAX_SETTING_TEXT or text_depth(text) > MAX_JSON_DEPTH:
        raise ConfigurationError(
            f"SyncNotificationSettings must be a JSON object of at most {MAX_SETTING_TEXT} "
            f"characters nesting at most {MAX_JSON_DEPTH} levels"
        )
    try:
        body = json.loads(text)
    except ValueError:
        raise ConfigurationError("SyncNotificationSettings must be a JSON object") from None
    if not isinstance(body, dict):
        raise ConfigurationError("SyncNotificationSettings must be a JSON object")
    unknown = sorted(set(body) - NOTIFICATION_KEYS)
    if unknown and strict:
        raise ConfigurationError(
            f"SyncNotificationSettings has an unknown key {shown(unknown[0])}; known keys: "
            + ", ".join(sorted(NOTIFICATION_KEYS))
        )
    enabled = body.get("DeleteThresholdEnabled")
    if enabled is False:
        return {"delete_threshold": None}
    value = body.get("DeleteThresholdValue")
    if value is None:
        return {}
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_WHOLE_NUMBER:
        raise ConfigurationError(
            f"SyncNotificationSettings.DeleteThresholdValue must be from 0 to {MAX_WHOLE_NUMBER}"
        )
    return {"delete_threshold": value}


def quarantine_delay(interval: timedelta, series_count: int) -> timedelta:
    """Quarantined jobs back off: the interval doubled per re-evaluation, at most one day."""
    factor: int = 2 ** min(max(series_count, 0), 20)
    return min(interval * factor, timedelta(days=1))
