"""Durations and numbers in schedules, settings and secrets are bounded at the door."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from connectors.memory import MemoryDirectory
from engine import ConfigurationError, ModelError, SyncEngine, from_graph, to_graph
from engine.limits import MAX_DURATION, MAX_WHOLE_NUMBER
from engine.model import DirectoryDefinition, KeyValuePair, SynchronizationJob
from engine.model.converter import parse_duration
from engine.settings import KNOWN_SETTINGS, JobSettings

DURATION_SETTINGS = ("EscrowRetryBackoff", "EscrowMaxAge", "ProvisioningLogRetention")


def parse(**values: str) -> JobSettings:
    return JobSettings.parse([KeyValuePair(name=k, value=v) for k, v in values.items()])


@pytest.mark.parametrize("name", DURATION_SETTINGS)
@pytest.mark.parametrize("value", ["P999999999D", "P100000000D", "P3651D", "P1" + "0" * 900 + "D"])
def test_durations_past_ten_years_are_refused(name: str, value: str) -> None:
    """A duration that would overflow a date on every cycle is refused, naming the setting."""
    with pytest.raises(ConfigurationError, match=f"^{name}: .*(maximum of P3650D|not an ISO)"):
        parse(**{name: value})


def test_setting_values_have_a_size_limit() -> None:
    """A setting value past 1024 characters is refused before it is parsed."""
    with pytest.raises(ConfigurationError, match="PageSize is longer than 1024 characters"):
        parse(PageSize="1" * 5000)


@pytest.mark.parametrize("name", ["EscrowMaxAge", "ProvisioningLogRetention"])
@pytest.mark.parametrize("value", ["-P1D", "PT0S"])
def test_ages_must_be_positive(name: str, value: str) -> None:
    """A negative or zero retention or escrow age (delete every log, park at once) is refused."""
    with pytest.raises(ConfigurationError, match=name):
        parse(**{name: value})


def test_negative_backoff_is_refused_and_zero_allowed() -> None:
    """Backoff steps are zero or more; PT0S (retry next cycle) is the default first step."""
    with pytest.raises(ConfigurationError, match="EscrowRetryBackoff: .*negative"):
        parse(EscrowRetryBackoff="PT0S,-PT5M")
    assert timedelta(0) == parse(EscrowRetryBackoff="PT0S,PT5M").escrow_backoff[0]


@pytest.mark.parametrize("value", ["١٢", "1_000", " 12e3", "0x10", "9" * 900, "+-1", "2147483648"])
def test_whole_numbers_are_ascii_digits_in_range(value: str) -> None:
    """PageSize and friends take 0-9 digits in range, never int()'s wider syntax."""
    with pytest.raises(ConfigurationError, match="PageSize must be"):
        parse(PageSize=value)


@pytest.mark.parametrize("value", ["nan", "inf", "-0.1", "1.5", "0,4"])
def test_proportion_is_a_share_from_zero_to_one(value: str) -> None:
    """QuarantineEscrowProportion refuses NaN, infinity and values outside 0 to 1, saying so."""
    with pytest.raises(ConfigurationError, match="QuarantineEscrowProportion must be"):
        parse(QuarantineEscrowProportion=value)
    with pytest.raises(ConfigurationError, match="from 0 to 1, not 1.5"):
        parse(QuarantineEscrowProportion="1.5")


def test_notification_threshold_is_bounded() -> None:
    """SyncNotificationSettings: a deep or huge JSON and an out-of-range value are refused."""
    for text in ("[" * 100_000, '{"DeleteThresholdValue": 99999999999}', "{" * 300):
        with pytest.raises(ConfigurationError, match="SyncNotificationSettings"):
            JobSettings.parse([], {"SyncNotificationSettings": text})


@given(st.sampled_from(sorted(KNOWN_SETTINGS)), st.text(max_size=30))
def test_any_setting_value_is_accepted_in_bounds_or_refused_clearly(name: str, value: str) -> None:
    """For every text a setting either parses within its bounds or raises ConfigurationError."""
    try:
        settings = parse(**{name: value})
    except ConfigurationError as exc:
        assert name in str(exc)
        return
    for duration in (*settings.escrow_backoff, settings.escrow_max_age, settings.log_retention):
        assert timedelta(0) <= duration <= MAX_DURATION
    assert 1 <= settings.page_size <= 100_000
    assert 0 <= (settings.delete_threshold or 0) <= MAX_WHOLE_NUMBER


DURATION_LIKE = st.from_regex(r"-?P[0-9]{1,12}DT[0-9]{1,12}H", fullmatch=True)


@given(st.one_of(st.text(max_size=30), DURATION_LIKE))
def test_parse_duration_raises_only_value_errors(value: str) -> None:
    """parse_duration returns a non-negative timedelta or raises ValueError, never overflows."""
    try:
        parsed = parse_duration(value, MAX_DURATION)
    except ValueError:
        return
    assert timedelta(0) <= parsed <= MAX_DURATION


def test_graph_timespan_max_still_reads() -> None:
    """Graph's JSON may hold TimeSpan.MaxValue; the model reads it (the engine bounds schedules)."""
    assert timedelta(days=10675199) < parse_duration("P10675199DT2H48M5.4775807S")


@pytest.mark.parametrize(
    "schedule",
    [
        "P100000000D",
        "P3651D",
        "-PT1M",
        "PT0S",
        timedelta(days=-1),
        timedelta(days=999_999_999),
        "P١D",
        5,
    ],
)
def test_bad_schedules_are_refused_and_store_nothing(schedule: object) -> None:
    """create_job refuses a schedule out of bounds with ConfigurationError and stores no job."""
    engine = SyncEngine()
    with pytest.raises(ConfigurationError, match="schedule"):
        engine.create_job("memoryToMemory", MemoryDirectory(), MemoryDirectory(), schedule=schedule)  # type: ignore[arg-type]
    assert [] == engine.list_jobs()


@pytest.mark.parametrize("when", ["0001-01-01T00:00:00+05:00", "9999-12-31T23:59:59-05:00"])
def test_datetimes_outside_utc_range_are_refused(when: str) -> None:
    """A discoveryDateTime that cannot be written in UTC is refused when read, not later."""
    with pytest.raises(ModelError, match="outside the years 1 to 9999"):
        from_graph({"discoveryDateTime": when}, DirectoryDefinition)


def test_datetimes_at_the_edges_round_trip() -> None:
    """Year 1 and year 9999 in UTC (Graph's "unset" is 0001-01-01) read and write back."""
    for when in ("0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z"):
        directory = from_graph({"discoveryDateTime": when}, DirectoryDefinition)
        assert when == to_graph(directory)["discoveryDateTime"]


def test_huge_integers_in_json_are_refused() -> None:
    """An integer past 64 bits in Graph JSON is a ModelError naming the field."""
    with pytest.raises(ModelError, match="64 bits"):
        from_graph({"schema": {"synchronizationRules": [{"priority": 10**30}]}}, SynchronizationJob)
