"""Every function of the expression language: its parameters (as Graph's functions API lists
them), its arity, and its implementation."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs

from engine.expressions import _other as o
from engine.expressions import _text as t


@attrs.frozen
class Parameter:
    """attributeMappingParameterSchema."""

    name: str
    required: bool = True
    allow_multiple_occurrences: bool = False
    type: str = "String"


@attrs.frozen
class FunctionSpec:
    """A function: parameters, arity (max None = unbounded) and what it computes."""

    name: str
    parameters: tuple[Parameter, ...]
    implementation: Callable[..., Any]
    min_args: int
    max_args: int | None
    description: str = ""

    def parameter_name(self, position: int, count: int) -> str:
        """The parameter a positional argument binds to (for Graph's parsedExpression)."""
        if self.name == "FormatDateTime" and count == 3:
            return ("source", "inputFormat", "outputFormat")[position]
        if position < len(self.parameters):
            return self.parameters[position].name
        repeating = [p for p in self.parameters if p.allow_multiple_occurrences]
        return repeating[-1].name if repeating else f"arg{position + 1}"


def _compiled_specially(*_: Any) -> Any:
    """SelectUniqueValue is compiled by the evaluator itself (it must consult the target)."""
    raise NotImplementedError


def P(name: str, required: bool = True, many: bool = False, kind: str = "String") -> Parameter:
    return Parameter(name=name, required=required, allow_multiple_occurrences=many, type=kind)


def _spec(
    name: str,
    implementation: Callable[..., Any],
    *params: Parameter,
    min_args: int | None = None,
    max_args: int | None = -1,
    description: str = "",
) -> FunctionSpec:
    required = sum(1 for p in params if p.required)
    unbounded = any(p.allow_multiple_occurrences for p in params)
    top = None if unbounded else len(params)
    return FunctionSpec(
        name=name,
        parameters=params,
        implementation=implementation,
        min_args=required if min_args is None else min_args,
        max_args=top if max_args == -1 else max_args,
        description=description,
    )


FUNCTIONS: dict[str, FunctionSpec] = {
    s.name: s
    for s in (
        _spec("Append", t.append, P("source"), P("suffix")),
        _spec("AppRoleAssignmentsComplex", o.app_role_assignments_complex, P("appRoleAssignments")),
        _spec("BitAnd", o.bit_and, P("value1", kind="Integer"), P("value2", kind="Integer")),
        _spec("CBool", o.cbool, P("expression")),
        _spec("CDate", o.cdate, P("expression")),
        _spec("Coalesce", o.coalesce, P("source", many=True), P("defaultValue", False), min_args=1),
        _spec("ConvertToBase64", t.convert_to_base64, P("source")),
        _spec("ConvertToUTF8Hex", t.convert_to_utf8_hex, P("source")),
        _spec("Count", o.count, P("attribute")),
        _spec("CStr", o.cstr, P("value")),
        _spec("DateAdd", o.date_add, P("interval"), P("value", kind="Integer"), P("dateTime")),
        _spec("DateDiff", o.date_diff, P("interval"), P("date1"), P("date2")),
        _spec("DateFromNum", o.date_from_num, P("value")),
        _spec(
            "FormatDateTime",
            o.format_date_time,
            P("source"),
            P("dateTimeStyles", False),
            P("inputFormat"),
            P("outputFormat"),
            min_args=3,
        ),
        _spec("Guid", o.guid),
        _spec("IgnoreFlowIfNullOrEmpty", o.ignore_flow_if_null_or_empty, P("expression")),
        _spec("IIF", o.iif, P("condition"), P("valueIfTrue"), P("valueIfFalse")),
        _spec(
            "InStr",
            t.instr,
            P("value1"),
            P("value2"),
            P("start", False, kind="Integer"),
            P("compareType", False),
        ),
        _spec("IsAccountEnabled", o.is_account_enabled, P("userAccountControl", kind="Integer")),
        _spec("IsNull", o.is_null, P("expression")),
        _spec("IsNothing", o.is_null, P("source")),
        _spec("IsNullOrEmpty", o.is_null_or_empty, P("expression")),
        _spec("IsPresent", o.is_present, P("expression")),
        _spec("IsString", o.is_string, P("expression")),
        _spec("Item", o.item, P("attribute"), P("index", kind="Integer")),
        _spec("Join", o.join, P("separator"), P("source", many=True), min_args=2),
        _spec("Left", t.left, P("String"), P("NumChars", kind="Integer")),
        _spec("Mid", t.mid, P("source"), P("start", kind="Integer"), P("length", kind="Integer")),
        _spec("NormalizeDiacritics", t.normalize_diacritics, P("source")),
        _spec("Not", o.not_, P("source", kind="Boolean")),
        _spec("Now", o.now),
        _spec("NumFromDate", o.num_from_date, P("value")),
        _spec("PCase", t.pcase, P("source"), P("wordSeparators", False)),
        _spec("Prepend", t.prepend, P("prefix"), P("source")),
        _spec(
            "RandomString",
            o.random_string,
            P("Length", kind="Integer"),
            P("MinimumNumbers", kind="Integer"),
            P("MinimumSpecialCharacters", kind="Integer"),
            P("MinimumCapital", kind="Integer"),
            P("MinimumLowerCase", kind="Integer"),
            P("CharactersToAvoid", False),
        ),
        _spec("Redact", o.redact, P("source")),
        _spec("RemoveDuplicates", o.remove_duplicates, P("attribute")),
        _spec(
            "Replace",
            t.replace,
            P("source"),
            P("Find", False),
            P("RegularExpression", False),
            P("RegularExpressionGroupName", False),
            P("Replacement", False),
            P("ReplacementPropertyName", False),
            P("Template", False),
        ),
        _spec(
            "SelectUniqueValue",
            _compiled_specially,
            P("uniqueValueRule", many=True),
            min_args=2,
        ),
        _spec("SingleAppRoleAssignment", o.single_app_role_assignment, P("appRoleAssignments")),
        _spec("Split", t.split, P("source"), P("delimiter")),
        _spec("StripSpaces", t.strip_spaces, P("source")),
        _spec(
            "Switch",
            o.switch,
            P("source"),
            P("defaultValue", False),
            P("switchValue", many=True),
            min_args=4,
        ),
        _spec("ToLower", t.to_lower, P("source"), P("culture", False)),
        _spec("ToUpper", t.to_upper, P("source"), P("culture", False)),
        _spec("Word", t.word, P("String"), P("WordNumber", kind="Integer"), P("delimiters")),
    )
}
