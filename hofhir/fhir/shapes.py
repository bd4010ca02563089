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

import datetime as dt
import math
import re
from collections.abc import Callable
from functools import cache
from typing import Any

from hofhir.knowledge import r4b_shapes

Check = Callable[[Any], bool]

# Conservative forms: each accepts a subset of what the R4B types accept (see the module docstring).
_CODE = re.compile(r"[!-~]+(?: [!-~]+)*")  # FHIR code: no leading, trailing or double spaces
_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")
_URI = re.compile(r"[!-~]+")  # the R4B uri pattern (\S*) accepts any string; this takes printable ASCII
_INT32 = (-(2**31), 2**31 - 1)
MAX_DEPTH = 24  # elements nested deeper than this (no real resource comes close) go to the models


def _string(value: Any) -> bool:
    # R4B string: matches [ \r\n\t\S]+ somewhere; a character Python calls non-space is \S everywhere.
    return type(value) is str and bool(value) and not value.isspace()


def _code(value: Any) -> bool:
    return type(value) is str and _CODE.fullmatch(value) is not None


def _id(value: Any) -> bool:
    return type(value) is str and _ID.fullmatch(value) is not None


def _uri(value: Any) -> bool:
    return type(value) is str and _URI.fullmatch(value) is not None


def _boolean(value: Any) -> bool:
    return type(value) is bool


def _integer(low: int) -> Check:
    def check(value: Any) -> bool:
        return type(value) is int and low <= value <= _INT32[1]

    return check


def _never(value: Any) -> bool:
    return False


class _Patterns:
    def __init__(self, patterns: dict[str, str]) -> None:
        self.date = re.compile(patterns["date"])
        self.datetime = re.compile(patterns["dateTime"])
        self.instant = re.compile(patterns["instant"])
        self.time = re.compile(patterns["time"])
        self.decimal = re.compile(patterns["decimal"])

    def decimal_check(self, value: Any) -> bool:
        kind = type(value)
        if kind is int:
            return True
        return kind is float and math.isfinite(value) and self.decimal.fullmatch(str(value)) is not None

    def date_check(self, value: Any) -> bool:
        if type(value) is not str or self.date.fullmatch(value) is None:
            return False
        return len(value) < 10 or _calendar_date(value)

    def datetime_check(self, value: Any) -> bool:
        if type(value) is not str or self.datetime.fullmatch(value) is None:
            return False
        if len(value) < 10:
            return True  # a year or a year and month, which the pattern has checked
        if len(value) == 10:
            return _calendar_date(value)
        return _instant(value)

    def instant_check(self, value: Any) -> bool:
        return type(value) is str and self.instant.fullmatch(value) is not None and _instant(value)

    def time_check(self, value: Any) -> bool:
        if type(value) is not str or self.time.fullmatch(value) is None or value[6:8] == "60":
            return False
        return len(value) <= 15  # at most six digits of fractional seconds


def _calendar_date(value: str) -> bool:
    try:
        dt.date.fromisoformat(value)
    except ValueError:
        return False
    return True


def _instant(value: str) -> bool:
    """A date and time the pattern passed: a real calendar time, no leap second, at most 6 fraction digits."""
    if value[17:19] == "60":
        return False  # leap seconds take the models' own path
    dot = value.find(".", 19)
    if dot != -1:
        end = dot + 1
        while end < len(value) and value[end].isdigit():
            end += 1
        if end - dot - 1 > 6:
            return False
    try:
        dt.datetime.fromisoformat(value)
    except ValueError:
        return False
    return True


# A field: (how to check each value, the element type's shape or None, whether it repeats, choice group).
_Field = tuple[Check | None, "Shape | None", bool, int]


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
        patterns = _Patterns(data["patterns"])
        primitives: dict[str, Check] = {
            "string": _string,
            "markdown": _string,
            "xhtml": _string,
            "code": _code,
            "id": _id,
            "uri": _uri,
            "canonical": _uri,
            "boolean": _boolean,
            "integer": _integer(_INT32[0]),
            "unsignedInt": _integer(0),
            "positiveInt": _integer(1),
            "decimal": patterns.decimal_check,
            "date": patterns.date_check,
            "dateTime": patterns.datetime_check,
            "instant": patterns.instant_check,
            "time": patterns.time_check,
        }
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
                group = group_of.get(alias, 0)
                if kind == "*":
                    shape.fields[alias] = (None, None, bool(many), group)
                elif kind.startswith("#"):
                    shape.fields[alias] = (primitives.get(kind[1:], _never), None, bool(many), group)
                elif kind in self.shapes:
                    shape.fields[alias] = (None, self.shapes[kind], bool(many), group)
                else:
                    shape.fields[alias] = (_never, None, bool(many), group)
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
    if type(resource) is not dict:
        return False
    shape = _table().resources.get(resource.get("resourceType"))  # type: ignore[arg-type]
    return shape is not None and _element(resource, shape, 0, True)


def in_model_order(resource: dict[str, Any]) -> dict[str, Any]:
    """A copy of a resource `conforms` passed with every element in the order the R4B models write it."""
    shape = _table().resources[resource["resourceType"]]
    return {"resourceType": resource["resourceType"], **_ordered(resource, shape)}


def _ordered(node: dict[str, Any], shape: Shape) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, (_, inner, many, _) in shape.fields.items():
        if key not in node:
            continue
        value = node[key]
        if inner is None:
            out[key] = value
        elif many:
            out[key] = [_ordered(item, inner) for item in value]
        else:
            out[key] = _ordered(value, inner)
    return out


def _resource(value: Any, depth: int) -> bool:
    if type(value) is not dict:
        return False
    shape = _table().resources.get(value.get("resourceType"))  # type: ignore[arg-type]
    return shape is not None and _element(value, shape, depth, True)


def _element(node: Any, shape: Shape, depth: int, is_resource: bool = False) -> bool:
    if type(node) is not dict or not node or depth > MAX_DEPTH:
        return False
    depth += 1
    fields = shape.fields
    given = 0
    for key, value in node.items():
        spec = fields.get(key)
        if spec is None:
            if is_resource and key == "resourceType":
                continue  # the caller chose `shape` by it
            return False
        check, inner, many, group = spec
        if group:
            if given & group:
                return False  # a choice element given twice (valueQuantity and valueString)
            given |= group
        if many:
            if type(value) is not list or not value:
                return False
            if inner is not None:
                for item in value:
                    if not _element(item, inner, depth):
                        return False
            elif check is not None:
                for item in value:
                    if not check(item):
                        return False
            else:
                for item in value:
                    if not _resource(item, depth):
                        return False
        elif inner is not None:
            if not _element(value, inner, depth):
                return False
        elif check is not None:
            if not check(value):
                return False
        elif not _resource(value, depth):
            return False
    for name in shape.required:
        if name not in node:
            return False
    return all(given & group for group in shape.choices_required)
