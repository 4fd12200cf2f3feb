"""How the SQLite store writes times: fixed-width UTC text, so SQL string order is time order."""

from __future__ import annotations

from datetime import UTC, datetime

from engine.model.converter import parse_datetime


def stored_time(text: str) -> datetime:
    parsed = parse_datetime(text)
    assert parsed is not None
    return parsed


def format_datetime(value: datetime) -> str:
    """Fixed-width UTC text, so SQLite's string comparison orders times correctly."""
    return value.astimezone(UTC).isoformat(timespec="microseconds")
