"""The one converter between the attrs model and Graph-shaped camelCase JSON.

Input is strict: an unknown field or a value of the wrong type raises :class:`ModelError`
naming the JSON path (``$.schedule.interval``). ``@odata.*`` annotations are accepted and
dropped, as Graph clients send them. Output writes every field, nulls included, as Graph does.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import attrs
import cattrs
import isodate
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override

from engine.errors import ModelError
from engine.limits import (
    MAX_DURATION_TEXT,
    MAX_JSON_DEPTH,
    MAX_JSON_INTEGER,
    json_depth,
    shown,
)
from engine.model._enums import GraphEnum, RestartScope

T = TypeVar("T")

#: attrs metadata of a ``str`` the engine assigns (a job's id): ``""`` until it is, which
#: Graph JSON writes and reads as null (a create request's body has none)
ASSIGNED = "assigned"

_FRACTION = re.compile(r"(\.\d{6})\d+")


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def parse_datetime(value: Any) -> datetime | None:
    """ISO-8601 to aware UTC; Graph sends "" for unset and up to 7 fractional digits.

    The value is converted to UTC here, so a time that is not representable in UTC (year 1
    with a positive offset, year 9999 with a negative one) is refused at the door instead of
    overflowing when the job is written.
    """
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        parsed = value if value.tzinfo else value.replace(tzinfo=UTC)
    elif not isinstance(value, str):
        raise TypeError(f"expected an ISO-8601 date-time string, got {type(value).__name__}")
    else:
        text = _FRACTION.sub(r"\1", value.strip()).replace("z", "Z")
        if len(text) > 64 or not text.isascii():
            raise ValueError(f"{shown(value)} is not an ISO-8601 date-time")
        parsed = datetime.fromisoformat(text)
        parsed = parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC)
    except OverflowError:
        raise ValueError(f"{shown(value)} is outside the years 1 to 9999 in UTC") from None


def format_datetime(value: datetime) -> str:
    text = value.astimezone(UTC).isoformat()
    return text.replace("+00:00", "Z")


def parse_duration(value: Any, maximum: timedelta | None = None) -> timedelta:
    """ISO-8601 duration (``PT40M``) to timedelta, zero or more; digits are ASCII only.

    Years and months are refused (no fixed length), and so are negative durations. Graph's
    own JSON may hold .NET's TimeSpan.MaxValue (``P10675199DT2H48M5.4775807S``), so the model
    takes any length timedelta holds; what the engine adds to a date passes ``maximum``
    (settings and schedules: MAX_DURATION, ten years), so it can never overflow.
    """
    parsed: timedelta
    if isinstance(value, timedelta):
        parsed = value
    elif not isinstance(value, str):
        raise TypeError(f"expected an ISO-8601 duration string, got {type(value).__name__}")
    else:
        text = value.strip()
        if len(text) > MAX_DURATION_TEXT or not text.isascii():
            raise ValueError(f"{shown(value)} is not an ISO-8601 duration such as PT40M")
        try:
            result = isodate.parse_duration(text)
        except (isodate.ISO8601Error, ValueError, ArithmeticError):
            raise ValueError(f"{shown(value)} is not an ISO-8601 duration such as PT40M") from None
        if not isinstance(result, timedelta):
            raise ValueError(f"{shown(value)} uses years or months, which have no fixed length")
        parsed = result
    if parsed < timedelta(0):
        raise ValueError(f"{shown(value)} is negative; durations are zero or more")
    if maximum is not None and parsed > maximum:
        raise ValueError(f"{shown(value)} is longer than the maximum of {format_duration(maximum)}")
    return parsed


def format_duration(value: timedelta) -> str:
    return str(isodate.duration_isoformat(value))


#: The order Graph's docs write resetScope in ("Watermark, Escrows, QuarantineState").
_SCOPE_ORDER = (
    RestartScope.WATERMARK,
    RestartScope.ESCROWS,
    RestartScope.QUARANTINE_STATE,
    RestartScope.CONNECTOR_DATA_STORE,
    RestartScope.FORCE_DELETES,
    RestartScope.FULL,
    RestartScope.NONE,
)


def _parse_reset_scope(value: Any, _: Any) -> frozenset[RestartScope]:
    if value is None:
        return frozenset()
    parts = value.split(",") if isinstance(value, str) else list(value)
    scopes: set[RestartScope] = set()
    for part in parts:
        name = str(part).strip()
        if name:
            scopes.add(RestartScope(name))
    return frozenset(scopes)


def _choices(cls: type[GraphEnum]) -> str:
    return ", ".join(str(m.value) for m in cls)


def _describe(exc: BaseException, _type: Any) -> str:
    if isinstance(exc, cattrs.ForbiddenExtraKeysError):
        return "unknown field(s): " + ", ".join(sorted(camel(k) for k in exc.extra_fields))
    if isinstance(exc, KeyError):
        return "required field is missing"
    return str(exc) or type(exc).__name__


def _camel_path(message: str) -> str:
    text, sep, path = message.rpartition(" @ ")
    if not sep:
        return message
    return f"{text} @ {'.'.join(camel(part) for part in path.split('.'))}"


def _strip_annotations(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_annotations(v) for k, v in value.items() if "@odata" not in k}
    if isinstance(value, list):
        return [_strip_annotations(v) for v in value]
    return value


def _make_converter() -> cattrs.Converter:
    conv = cattrs.Converter(forbid_extra_keys=True)

    def enum_structure(value: Any, cls: type[GraphEnum]) -> GraphEnum | None:
        if value == "":
            return None  # Graph writes "" for an unset enum (quarantine.reason)
        if not isinstance(value, str):
            raise TypeError(f"expected one of {_choices(cls)}, got {value!r}")
        try:
            return cls(value)
        except ValueError:
            raise ValueError(f"{value!r} is not one of {_choices(cls)}") from None

    conv.register_structure_hook_func(
        lambda t: isinstance(t, type) and issubclass(t, GraphEnum), enum_structure
    )
    conv.register_unstructure_hook_func(
        lambda t: isinstance(t, type) and issubclass(t, GraphEnum), lambda e: e.value
    )
    conv.register_structure_hook(datetime, lambda v, _: parse_datetime(v))
    conv.register_unstructure_hook(datetime, format_datetime)
    conv.register_structure_hook(timedelta, lambda v, _: parse_duration(v))
    conv.register_unstructure_hook(timedelta, format_duration)

    def is_scope(t: Any) -> bool:
        return bool(t == frozenset[RestartScope])

    conv.register_structure_hook_func(is_scope, _parse_reset_scope)
    conv.register_unstructure_hook_func(
        is_scope, lambda s: ", ".join(x.value for x in _SCOPE_ORDER if x in s) or None
    )

    def strict_bool(value: Any, _: Any) -> bool:
        if isinstance(value, bool):
            return value
        raise TypeError(f"expected true or false, got {value!r}")

    def strict_int(value: Any, _: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"expected an integer, got {shown(value)}")
        if abs(value) > MAX_JSON_INTEGER:
            raise ValueError(f"expected an integer of at most 64 bits, got {shown(value)}")
        return value

    def strict_str(value: Any, _: Any) -> str:
        if not isinstance(value, str):
            raise TypeError(f"expected a string, got {shown(value)}")
        return value

    conv.register_structure_hook(bool, strict_bool)
    conv.register_structure_hook(int, strict_int)
    conv.register_structure_hook(str, strict_str)

    def assigned_id(value: Any, _: Any) -> str:
        return "" if value is None else strict_str(value, _)

    def structure_factory(cls: type[Any]) -> Callable[[Any, Any], Any]:
        renames: dict[str, Any] = {
            a.name: override(rename=camel(a.name), struct_hook=assigned_id)
            if a.metadata.get(ASSIGNED)
            else override(rename=camel(a.name))
            for a in attrs.fields(cls)
        }
        return make_dict_structure_fn(cls, conv, _cattrs_forbid_extra_keys=True, **renames)

    def unstructure_factory(cls: type[Any]) -> Callable[[Any], Any]:
        renames: dict[str, Any] = {
            a.name: override(rename=camel(a.name), unstruct_hook=lambda v: v or None)
            if a.metadata.get(ASSIGNED)
            else override(rename=camel(a.name))
            for a in attrs.fields(cls)
        }
        return make_dict_unstructure_fn(cls, conv, **renames)

    conv.register_structure_hook_factory(attrs.has, structure_factory)
    conv.register_unstructure_hook_factory(attrs.has, unstructure_factory)
    return conv


CONVERTER = _make_converter()


def from_graph(data: Any, cls: type[T], *, stored: bool = False) -> T:
    """Graph JSON (already decoded) to a model object; raises ModelError naming the field.

    ``stored``: JSON this engine wrote itself (a state store's row), already checked when it
    came in, so its depth is not measured again on every read.
    """
    if not isinstance(data, dict):
        raise ModelError(f"expected a JSON object for {cls.__name__}, got {type(data).__name__}")
    if not stored and json_depth(data) > MAX_JSON_DEPTH:  # before anything recursive walks it
        raise ModelError(f"the JSON nests deeper than {MAX_JSON_DEPTH} levels")
    try:
        return CONVERTER.structure(_strip_annotations(data), cls)
    except cattrs.BaseValidationError as exc:
        raw = cattrs.transform_error(exc, path="$", format_exception=_describe)
        messages = [_camel_path(m) for m in raw]
        field = _first_path(messages)
        raise ModelError("; ".join(messages), field=field) from None
    except (ValueError, TypeError) as exc:
        raise ModelError(str(exc)) from None


def to_graph(value: Any) -> Any:
    """A model object (or list of them) to JSON-ready Graph data."""
    return _lists(CONVERTER.unstructure(value))


def _lists(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _lists(v) for k, v in value.items()}
    if isinstance(value, list | tuple | frozenset | set):
        return [_lists(v) for v in value]
    return value


def _first_path(messages: list[str]) -> str | None:
    for message in messages:
        text, sep, path = message.rpartition(" @ ")
        if sep and text.startswith("unknown field(s): "):
            return f"{path}.{text.removeprefix('unknown field(s): ').split(', ')[0]}"
        if sep:
            return path
    return None
