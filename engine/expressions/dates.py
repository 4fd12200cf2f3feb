"""Dates the way the expression language sees them: .NET custom format strings, Entra's
``M/d/yyyy h:mm:ss tt`` output, and Active Directory's FILETIME numbers. Pure."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

from engine.errors import MappingError

FILETIME_EPOCH = datetime(1601, 1, 1, tzinfo=UTC)
MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)
DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


class DateText(str):
    """A date rendered as text that remembers its moment, so date functions chain exactly."""

    moment: datetime

    def __new__(cls, moment: datetime) -> DateText:
        text = str.__new__(cls, entra_format(moment))
        text.moment = moment
        return text


def entra_format(moment: datetime) -> str:
    """``M/d/yyyy h:mm:ss tt`` in UTC, as CDate, DateAdd and Now print."""
    m = moment.astimezone(UTC)
    hour = m.hour % 12 or 12
    return f"{m.month}/{m.day}/{m.year} {hour}:{m.minute:02d}:{m.second:02d} {_ampm(m)}"


def _ampm(moment: datetime) -> str:
    return "AM" if moment.hour < 12 else "PM"


_ISO = re.compile(
    r"^\s*(?P<y>\d{4})-(?P<mo>\d{1,2})-(?P<d>\d{1,2})"
    r"(?:[T ](?P<h>\d{1,2}):(?P<mi>\d{2})(?::(?P<s>\d{2})(?:\.(?P<f>\d+))?)?)?"
    r"\s*(?P<z>Z|[+-]\d{2}:?\d{2})?\s*$",
    re.IGNORECASE,
)
_US = re.compile(
    r"^\s*(?P<mo>\d{1,2})/(?P<d>\d{1,2})/(?P<y>\d{4})"
    r"(?:\s+(?P<h>\d{1,2}):(?P<mi>\d{2})(?::(?P<s>\d{2}))?\s*(?P<tt>AM|PM)?)?\s*$",
    re.IGNORECASE,
)


def _offset(text: str | None) -> timezone:
    if not text or text.upper() == "Z":
        return UTC
    sign = -1 if text[0] == "-" else 1
    digits = text[1:].replace(":", "")
    return timezone(sign * timedelta(hours=int(digits[:2]), minutes=int(digits[2:])))


def parse_date(value: str) -> datetime:
    """A date string as .NET's DateTime.Parse would read the forms Entra's docs use.

    ISO-8601 with or without time and offset (``2020-03-16-07:00``, ``2009-06-15T01:45:30Z``)
    and US ``M/d/yyyy h:mm:ss tt``; no offset means UTC.
    """
    if isinstance(value, DateText):
        return value.moment
    match = _ISO.match(value) or _US.match(value)
    if match is None:
        raise MappingError(f"{value!r} is not a date this engine can read")
    parts = match.groupdict()
    hour = int(parts.get("h") or 0)
    meridiem = (parts.get("tt") or "").upper()
    if meridiem == "PM" and hour < 12:
        hour += 12
    elif meridiem == "AM" and hour == 12:
        hour = 0
    fraction = (parts.get("f") or "0")[:6].ljust(6, "0")
    try:
        moment = datetime(
            int(parts["y"]),
            int(parts["mo"]),
            int(parts["d"]),
            hour,
            int(parts.get("mi") or 0),
            int(parts.get("s") or 0),
            int(fraction),
            tzinfo=_offset(parts.get("z")),
        )
    except ValueError as exc:
        raise MappingError(f"{value!r} is not a valid date: {exc}") from None
    return moment.astimezone(UTC)


# ----------------------------------------------------------------- .NET custom formats
_TOKEN = re.compile(
    r"'[^']*'|\"[^\"]*\"|\\.|yyyy+|yy|y|MMMM|MMM|MM|M|dddd|ddd|dd|d|HH|H|hh|h|mm|m|ss|s"
    r"|f{1,7}|F{1,7}|tt|t|zzz|zz|z|K|."
)


def _tokens(fmt: str) -> list[str]:
    return _TOKEN.findall(fmt)


def _literal(token: str) -> str | None:
    if token[0] in "'\"" and len(token) >= 2:
        return token[1:-1]
    if token.startswith("\\") and len(token) == 2:
        return token[1]
    if len(token) == 1 and not token.isalpha():
        return token
    return None


_PATTERNS = {
    "yyyy": r"(?P<y>\d{4})",
    "yy": r"(?P<y2>\d{2})",
    "MMMM": r"(?P<mname>[A-Za-z]+)",
    "MMM": r"(?P<mabbr>[A-Za-z]{3})",
    "MM": r"(?P<mo>\d{2})",
    "M": r"(?P<mo>\d{1,2})",
    "dddd": r"[A-Za-z]+",
    "ddd": r"[A-Za-z]{3}",
    "dd": r"(?P<d>\d{2})",
    "d": r"(?P<d>\d{1,2})",
    "HH": r"(?P<H>\d{2})",
    "H": r"(?P<H>\d{1,2})",
    "hh": r"(?P<h>\d{2})",
    "h": r"(?P<h>\d{1,2})",
    "mm": r"(?P<mi>\d{2})",
    "m": r"(?P<mi>\d{1,2})",
    "ss": r"(?P<s>\d{2})",
    "s": r"(?P<s>\d{1,2})",
    "tt": r"(?P<tt>[AaPp][Mm])",
    "t": r"(?P<t>[AaPp])",
    "zzz": r"(?P<z>[+-]\d{2}:\d{2})",
    "zz": r"(?P<z>[+-]\d{2})",
    "z": r"(?P<z>[+-]\d{1,2})",
    "K": r"(?P<z>Z|[+-]\d{2}:\d{2})?",
}


def parse_with_format(value: str, fmt: str) -> datetime:
    """Read ``value`` by a .NET custom format (leading and trailing white space allowed)."""
    regex = ""
    seen: set[str] = set()
    for token in _tokens(fmt):
        literal = _literal(token)
        if token[0] in "fF" and literal is None:
            digits = rf"\d{{1,{len(token)}}}"
            regex += f"(?P<f>{digits})" if "f" not in seen else digits
            seen.add("f")
            continue
        pattern = _PATTERNS.get(token)
        if pattern is None:
            regex += re.escape(literal if literal is not None else token)
            continue
        group = re.search(r"\?P<(\w+)>", pattern)
        if group and group.group(1) in seen:  # a field given twice: match, do not capture
            pattern = re.sub(r"\?P<\w+>", "?:", pattern)
        elif group:
            seen.add(group.group(1))
        regex += pattern
    match = re.fullmatch(r"\s*" + regex + r"\s*", value)
    if match is None:
        raise MappingError(f"{value!r} does not match the date format {fmt!r}")
    p = {k: v for k, v in match.groupdict().items() if v is not None}
    year = int(p["y"]) if "y" in p else 2000 + int(p.get("y2", 0)) if "y2" in p else 1
    month = int(p["mo"]) if "mo" in p else _month_from_name(p.get("mname") or p.get("mabbr"))
    hour = int(p.get("H", p.get("h", 0)))
    meridiem = (p.get("tt") or p.get("t") or "").upper()
    if meridiem.startswith("P") and hour < 12:
        hour += 12
    elif meridiem.startswith("A") and hour == 12:
        hour = 0
    micro = int(p.get("f", "0")[:6].ljust(6, "0"))
    try:
        moment = datetime(
            year,
            month,
            int(p.get("d", 1)),
            hour,
            int(p.get("mi", 0)),
            int(p.get("s", 0)),
            micro,
            tzinfo=_offset(p.get("z")),
        )
    except ValueError as exc:
        raise MappingError(f"{value!r} is not a valid date: {exc}") from None
    return moment


def _month_from_name(name: str | None) -> int:
    if name is None:
        return 1
    for number, month in enumerate(MONTHS, start=1):
        if month.lower().startswith(name.lower()):
            return number
    raise MappingError(f"{name!r} is not a month name")


def format_with(moment: datetime, fmt: str) -> str:
    """Write ``moment`` by a .NET custom format, invariant culture."""
    out: list[str] = []
    for token in _tokens(fmt):
        out.append(_format_token(moment, token))
    return "".join(out)


def _format_token(m: datetime, token: str) -> str:
    literal = _literal(token)
    simple = {
        "yyyy": f"{m.year:04d}",
        "yy": f"{m.year % 100:02d}",
        "y": str(m.year % 100),
        "MMMM": MONTHS[m.month - 1],
        "MMM": MONTHS[m.month - 1][:3],
        "MM": f"{m.month:02d}",
        "M": str(m.month),
        "dddd": DAYS[m.weekday()],
        "ddd": DAYS[m.weekday()][:3],
        "dd": f"{m.day:02d}",
        "d": str(m.day),
        "HH": f"{m.hour:02d}",
        "H": str(m.hour),
        "hh": f"{m.hour % 12 or 12:02d}",
        "h": str(m.hour % 12 or 12),
        "mm": f"{m.minute:02d}",
        "m": str(m.minute),
        "ss": f"{m.second:02d}",
        "s": str(m.second),
        "tt": _ampm(m),
        "t": _ampm(m)[0],
    }
    if token in simple:
        return simple[token]
    if token.startswith("yyyy"):
        return f"{m.year:0{len(token)}d}"
    if token[0] in "fF" and literal is None:
        digits = f"{m.microsecond:06d}0"[: len(token)]
        return digits.rstrip("0") if token[0] == "F" else digits
    if token in ("zzz", "zz", "z", "K"):
        offset = m.utcoffset() or timedelta(0)
        if token == "K" and offset == timedelta(0) and m.tzinfo is UTC:
            return "Z"
        sign = "-" if offset < timedelta(0) else "+"
        minutes = abs(int(offset.total_seconds())) // 60
        hours, mins = divmod(minutes, 60)
        if token == "z":
            return f"{sign}{hours}"
        if token == "zz":
            return f"{sign}{hours:02d}"
        return f"{sign}{hours:02d}:{mins:02d}"
    return literal if literal is not None else token


def add(moment: datetime, interval: str, amount: int) -> datetime:
    """DateAdd: calendar months and years clamp the day, as .NET AddMonths does."""
    unit = interval.lower()
    if unit in ("yyyy", "m"):
        months = amount * (12 if unit == "yyyy" else 1)
        total = moment.year * 12 + moment.month - 1 + months
        year, month = divmod(total, 12)
        month += 1
        day = min(moment.day, _days_in(year, month))
        return moment.replace(year=year, month=month, day=day)
    steps = {
        "d": timedelta(days=1),
        "ww": timedelta(weeks=1),
        "w": timedelta(weeks=1),
        "h": timedelta(hours=1),
        "n": timedelta(minutes=1),
        "s": timedelta(seconds=1),
    }
    if unit not in steps:
        raise MappingError(f"unknown date interval {interval!r} (yyyy, m, d, ww, h, n, s)")
    return moment + steps[unit] * amount


def _days_in(year: int, month: int) -> int:
    following = datetime(year + month // 12, month % 12 + 1, 1, tzinfo=UTC)
    return (following - timedelta(days=1)).day


def difference(interval: str, first: datetime, second: datetime) -> int:
    """DateDiff with VB semantics: elapsed units truncated, calendar boundaries for m/yyyy/ww."""
    unit = interval.lower()
    a, b = first.astimezone(UTC), second.astimezone(UTC)
    if unit == "yyyy":
        return b.year - a.year
    if unit == "m":
        return (b.year - a.year) * 12 + b.month - a.month
    if unit == "ww":

        def sunday(m: datetime) -> datetime:
            day = m.replace(hour=0, minute=0, second=0, microsecond=0)
            return day - timedelta(days=(day.weekday() + 1) % 7)

        return (sunday(b) - sunday(a)).days // 7
    seconds = {"d": 86400, "w": 604800, "h": 3600, "n": 60, "s": 1}
    if unit not in seconds:
        raise MappingError(f"unknown date interval {interval!r} (yyyy, m, d, ww, h, n, s)")
    elapsed = (b - a).total_seconds() / seconds[unit]
    return int(elapsed)  # truncates toward zero, like VB


def from_filetime(value: int) -> datetime:
    return FILETIME_EPOCH + timedelta(microseconds=value // 10)


def to_filetime(moment: datetime) -> int:
    delta = moment.astimezone(UTC) - FILETIME_EPOCH
    return (delta.days * 86_400 + delta.seconds) * 10_000_000 + delta.microseconds * 10
