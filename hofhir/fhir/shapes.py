"""A fast check that a resource is valid R4, against the element table of the R4B models.

`conforms(resource)` walks the resource against `hofhir/knowledge/r4b_shapes.json` (read off the fhir.resources R4B model
classes: element names, types, cardinality, required elements, choice groups). It says True only for a
resource the R4B models accept as it stands, and False for anything it is not sure of. False is not a
verdict: the caller then runs the models themselves, which drop and record what they refuse.

Trade-off, in one line: the check is stricter than the models (printable-ASCII codes and ids, calendar
dates Python can parse, no `_element` extensions, no empty arrays or objects), so unusual but valid data
costs the full validation, and common data skips pydantic altogether; nothing read tolerantly is lost,
because every verdict the check is not sure of goes to the models. tests/unit/test_shapes.py proves
"True implies the models accept" over every sample resource and seeded random damage to them.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from functools import cache
from typing import Any

from hofhir.knowledge import r4b_shapes

Check = Callable[[Any], bool]

# Conservative forms: each accepts a subset of what the R4B types accept (see the module docstring),
# written with str methods rather than regular expressions because they run for every element.
_INT32 = (-(2**31), 2**31 - 1)
MAX_DEPTH = 24  # elements nested deeper than this (no real resource comes close) go to the models


def _printable_ascii(value: Any) -> bool:
    """A non-empty string of the characters ! to ~ and spaces (no tabs, newlines or other controls)."""
    return type(value) is str and value != "" and value.isascii() and value.isprintable()


def _code(value: Any) -> bool:
    # R4B code: ^[^\s]+(\s[^\s]+)*$ ; here printable ASCII without leading, trailing or double spaces.
    return _printable_ascii(value) and value[0] != " " and value[-1] != " " and "  " not in value


def _id(value: Any) -> bool:
    # R4B id: ^[A-Za-z0-9\-.]+$ , 1 to 255 characters; here at most 64 (FHIR's own limit).
    return (
        type(value) is str
        and 0 < len(value) <= 64
        and value.isascii()
        and (value.isalnum() or value.replace("-", "").replace(".", "").isalnum() or value.strip("-.") == "")
    )


def _uri(value: Any) -> bool:
    # R4B uri and canonical: the pattern \S* accepts any string; here printable ASCII without spaces.
    return _printable_ascii(value) and " " not in value


def _boolean(value: Any) -> bool:
    return type(value) is bool


def _integer(low: int) -> Check:
    def check(value: Any) -> bool:
        return type(value) is int and low <= value <= _INT32[1]

    return check


def _never(value: Any) -> bool:
    return False


# The R4B date, dateTime and instant forms in one simple expression; the ranges its digits may take are
# checked after it. Subsets of fhir_core's patterns (recorded in the table as `patterns`; the tests
# check every accepted value against them): at most six fraction digits, no leap second.
_WHEN = re.compile(
    r"[0-9]{4}(?:-[0-9]{2}(?:-[0-9]{2}(?:T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,6})?(?:Z|[+-][0-9]{2}:[0-9]{2}))?)?)?"
)
_TIME = re.compile(r"[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,6})?")
_DECIMAL_INT = 10**300
_DAYS = (0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
_YEAR, _MONTH, _DAY, _SECOND = 1, 2, 3, 4  # how precise a date is


def _when(value: Any, least: int, most: int) -> bool:
    """A date/dateTime/instant of a precision between `least` and `most`, naming a real day and time."""
    if type(value) is not str or _WHEN.fullmatch(value) is None:
        return False
    size = len(value)
    precision = _YEAR if size == 4 else _MONTH if size == 7 else _DAY if size == 10 else _SECOND
    if precision < least or precision > most or value[:4] == "0000":
        return False
    if precision >= _MONTH and not "01" <= value[5:7] <= "12":
        return False
    if precision >= _DAY and (value[8:10] == "00" or not _real_day(value)):
        return False
    if precision == _SECOND:
        if value[11:13] > "23" or value[14:16] > "59" or value[17:19] > "59":
            return False  # (a leap second, :60, takes the models' own path)
        if value[-1] != "Z":
            hours, minutes = value[-5:-3], value[-2:]
            return (hours <= "13" and minutes <= "59") or (hours == "14" and minutes == "00")
    return True


def _real_day(value: str) -> bool:
    """YYYY-MM-DD… with a month of 01-12 names a day of the calendar."""
    day = int(value[8:10])
    if day <= 28:
        return True
    month = int(value[5:7])
    if month != 2:
        return day <= _DAYS[month]
    year = int(value[0:4])
    return day == 29 and year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


def _date(value: Any) -> bool:
    return _when(value, _YEAR, _DAY)


def _datetime(value: Any) -> bool:
    return _when(value, _YEAR, _SECOND)


def _instant(value: Any) -> bool:
    return _when(value, _SECOND, _SECOND)


def _time(value: Any) -> bool:
    return (
        type(value) is str
        and _TIME.fullmatch(value) is not None
        and value[:2] <= "23"
        and value[3:5] <= "59"
        and value[6:8] <= "59"
    )


def _decimal(value: Any) -> bool:
    # R4B decimal: str(value) must match -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?, which the text
    # of every int and of every finite float Python writes does (no leading zeros, no "inf" or "nan").
    # An int's text must also be writable: Python refuses past 4,300 digits (kept well inside here).
    kind = type(value)
    return (kind is int and -_DECIMAL_INT < value < _DECIMAL_INT) or (kind is float and math.isfinite(value))


# A field: (kind, argument, whether it repeats, choice-group bit). The kinds: an element type (argument:
# its Shape), a contained resource, an R4B string (inline: the commonest check), any other primitive
# (argument: its check).
_ELEMENT, _RESOURCE, _STRING, _PRIMITIVE = 0, 1, 2, 3
_Field = tuple[int, Any, bool, int]


class Shape:
    """One element type or resource type: its fields by JSON name, required names, choice groups."""

    __slots__ = ("choices_required", "fields", "name", "required")

    def __init__(self, name: str) -> None:
        self.name = name
        self.fields: dict[str, _Field] = {}
        self.required: tuple[str, ...] = ()
        self.choices_required: tuple[int, ...] = ()  # bit masks: one of each group must be given


class _Table:
    def __init__(self, data: dict[str, Any]) -> None:
        primitives: dict[str, Check] = {
            "code": _code,
            "id": _id,
            "uri": _uri,
            "canonical": _uri,
            "boolean": _boolean,
            "integer": _integer(_INT32[0]),
            "unsignedInt": _integer(0),
            "positiveInt": _integer(1),
            "decimal": _decimal,
            "date": _date,
            "dateTime": _datetime,
            "instant": _instant,
            "time": _time,
        }
        strings = ("string", "markdown", "xhtml")  # markdown's and xhtml's patterns accept any string
        types: dict[str, Any] = data["types"]
        self.shapes = {name: Shape(name) for name in types}
        self.resources: dict[str, Shape] = {}
        for name, entry in types.items():
            shape = self.shapes[name]
            group_of: dict[str, int] = {}
            for index, members in enumerate(entry.get("choices", ())):
                for member in members:
                    group_of[member] = 1 << index
            for alias, kind, many in entry["fields"]:
                field: tuple[int, Any]
                if kind == "*":
                    field = (_RESOURCE, None)
                elif kind[1:] in strings:
                    field = (_STRING, None)
                elif kind.startswith("#"):
                    field = (_PRIMITIVE, primitives.get(kind[1:], _never))
                elif kind in self.shapes:
                    field = (_ELEMENT, self.shapes[kind])
                else:
                    field = (_PRIMITIVE, _never)
                shape.fields[alias] = (*field, bool(many), group_of.get(alias, 0))
            shape.required = tuple(entry.get("required", ()))
            shape.choices_required = tuple(group_of[members[0]] for members in entry.get("choicesRequired", ()))
            if entry.get("resource"):
                self.resources[name] = shape


@cache
def _table() -> _Table:
    return _Table(r4b_shapes())


def known_types() -> frozenset[str]:
    """The resource types the check knows (others always go to the models)."""
    return frozenset(_table().resources)


def conforms(resource: Any) -> bool:
    """True when the R4B models accept `resource` as it stands; False when not, or when not sure."""
    return _resource(resource, 0)


def in_model_order(resource: dict[str, Any]) -> dict[str, Any]:
    """A copy of a resource `conforms` passed with every element in the order the R4B models write it."""
    shape = _table().resources[resource["resourceType"]]
    return {"resourceType": resource["resourceType"], **_ordered(resource, shape)}


def _ordered(node: dict[str, Any], shape: Shape) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, (kind, inner, many, _) in shape.fields.items():
        if key not in node:
            continue
        value = node[key]
        if kind == _RESOURCE:
            out[key] = [in_model_order(item) for item in value] if many else in_model_order(value)
        elif kind != _ELEMENT:
            out[key] = value
        elif many:
            out[key] = [_ordered(item, inner) for item in value]
        else:
            out[key] = _ordered(value, inner)
    return out


def _unicode(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _resource(value: Any, depth: int) -> bool:
    if type(value) is not dict:
        return False
    rtype = value.get("resourceType")
    shape = _table().resources.get(rtype) if type(rtype) is str else None
    return shape is not None and _element(value, shape, depth, True)


def _element(node: Any, shape: Shape, depth: int, is_resource: bool = False) -> bool:
    if type(node) is not dict or not node or depth > MAX_DEPTH:
        return False
    depth += 1
    fields = shape.fields
    given = 0
    items: Any
    for key, value in node.items():
        spec = fields.get(key)
        if spec is None:
            if is_resource and key == "resourceType":
                continue  # the caller chose `shape` by it
            return False
        kind, arg, many, group = spec
        if group:
            if given & group:
                return False  # a choice element given twice (valueQuantity and valueString)
            given |= group
        if many:
            if type(value) is not list or not value:
                return False
            items = value
        else:
            items = (value,)
        if kind == _STRING:
            for item in items:
                # R4B string: matches [ \r\n\t\S]+; a character Python calls non-space is \S everywhere.
                # Text the models cannot take as Unicode (a lone surrogate, from Python callers) is not sure.
                if type(item) is not str or not item or item.isspace() or not (item.isascii() or _unicode(item)):
                    return False
        elif kind == _ELEMENT:
            for item in items:
                if not _element(item, arg, depth):
                    return False
        elif kind == _PRIMITIVE:
            for item in items:
                if not arg(item):
                    return False
        else:
            for item in items:
                if not _resource(item, depth):
                    return False
    if shape.required:
        for name in shape.required:
            if name not in node:
                return False
    if shape.choices_required:
        return all(given & group for group in shape.choices_required)
    return True
