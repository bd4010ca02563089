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

Check = Callable[[Any, int], bool]  # (value, depth of nesting) -> sure it is valid

# Conservative forms: each accepts a subset of what the R4B types accept (see the module docstring),
# written with str methods rather than regular expressions because they run for every element.
_INT32 = (-(2**31), 2**31 - 1)
MAX_DEPTH = 24  # elements nested deeper than this (no real resource comes close) go to the models
# Elements of text only (a Coding, a Reference) the walk passed, remembered per element type as their
# (name, text) pairs: a chart repeats the same codes and references, resource after resource and call
# after call. At most this many per type (each set starts again when full), of at most LEAF_CHARS: about
# 60 element types, so at most ~16 MB held however odd the input (the validation cache's own bound).
LEAF_MEMO = 1024
LEAF_CHARS = 256


def _code(value: Any, depth: int = 0) -> bool:
    # R4B code: ^[^\s]+(\s[^\s]+)*$ ; here printable ASCII without leading, trailing or double spaces.
    return (
        type(value) is str
        and value != ""
        and value.isascii()
        and value.isprintable()
        and value[0] != " "
        and value[-1] != " "
        and "  " not in value
    )


def _id(value: Any, depth: int = 0) -> bool:
    # R4B id: ^[A-Za-z0-9\-.]+$ , 1 to 255 characters; here at most 64 (FHIR's own limit).
    return (
        type(value) is str
        and 0 < len(value) <= 64
        and value.isascii()
        and (value.isalnum() or value.replace("-", "").replace(".", "").isalnum() or value.strip("-.") == "")
    )


def _uri(value: Any, depth: int = 0) -> bool:
    # R4B uri and canonical: the pattern \S* accepts any string; here printable ASCII without spaces.
    return type(value) is str and value != "" and value.isascii() and value.isprintable() and " " not in value


def _boolean(value: Any, depth: int = 0) -> bool:
    return type(value) is bool


def _integer(low: int) -> Check:
    def check(value: Any, depth: int = 0) -> bool:
        return type(value) is int and low <= value <= _INT32[1]

    return check


def _never(value: Any, depth: int = 0) -> bool:
    return False


# The R4B date, dateTime and instant forms with the ranges of their digits, as expressions that do not
# backtrack (fhir_core's own patterns, recorded in the table as `patterns`, cost three times as much).
# Each accepts a subset of fhir_core's (the tests check every accepted value against them): at most six
# fraction digits, no leap second; days 29-31 are then checked against the calendar.
_Y, _M, _D = r"(?!0000)[0-9]{4}", r"(?:0[1-9]|1[0-2])", r"(?:0[1-9]|[12][0-9]|3[01])"
_T = r"T(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\.[0-9]{1,6})?(?:Z|[+-](?:(?:0[0-9]|1[0-3]):[0-5][0-9]|14:00))"
_DATE = re.compile(rf"{_Y}(?:-{_M}(?:-{_D})?)?")
_DATETIME = re.compile(rf"{_Y}(?:-{_M}(?:-{_D}(?:{_T})?)?)?")
_INSTANT = re.compile(rf"{_Y}-{_M}-{_D}{_T}")
_TIME = re.compile(r"(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\.[0-9]{1,6})?")
_DECIMAL_INT = 10**300
_DAYS = (0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


# The date texts each form passed (at most 32 characters each; each set starts again when full): the
# results of a lab panel share their times, and a chart its dates. A look-up costs a tenth of the match.
WHEN_MEMO = 4096
_KNOWN_WHEN: dict[re.Pattern[str], set[str]] = {_DATE: set(), _DATETIME: set(), _INSTANT: set()}


def _when(value: Any, form: re.Pattern[str]) -> bool:
    if type(value) is not str:
        return False
    known = _KNOWN_WHEN[form]
    if value in known:
        return True
    if form.fullmatch(value) is None:
        return False
    # Days 29-31 exist only in some months (characters, not slices: no string is made for them).
    if len(value) >= 10 and (value[8] == "3" or (value[8] == "2" and value[9] == "9")) and not _real_day(value):
        return False
    if len(known) >= WHEN_MEMO:
        known.clear()
    known.add(value)
    return True


def _real_day(value: str) -> bool:
    """YYYY-MM-DD… with a month of 01-12 and a day of 01-31 names a day of the calendar."""
    day = int(value[8:10])
    month = int(value[5:7])
    if month != 2:
        return day <= _DAYS[month]
    year = int(value[0:4])
    return day == 29 and year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


def _date(value: Any, depth: int = 0) -> bool:
    return _when(value, _DATE)


def _datetime(value: Any, depth: int = 0) -> bool:
    return _when(value, _DATETIME)


def _instant(value: Any, depth: int = 0) -> bool:
    return _when(value, _INSTANT)


def _time(value: Any, depth: int = 0) -> bool:
    return type(value) is str and _TIME.fullmatch(value) is not None


def _decimal(value: Any, depth: int = 0) -> bool:
    # R4B decimal: str(value) must match -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?, which the text
    # of every int and of every finite float Python writes does (no leading zeros, no "inf" or "nan").
    # An int's text must also be writable: Python refuses past 4,300 digits (kept well inside here).
    kind = type(value)
    return (kind is int and -_DECIMAL_INT < value < _DECIMAL_INT) or (kind is float and math.isfinite(value))


def _string(value: Any, depth: int = 0) -> bool:
    # R4B string: matches [ \r\n\t\S]+; a character Python calls non-space is \S everywhere. Text the
    # models cannot take as Unicode (a lone surrogate, which only Python callers can make) is not sure.
    return type(value) is str and value != "" and not value.isspace() and (value.isascii() or _unicode(value))


def _unicode(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


class Shape:
    """One element type or resource type.

    `checks` holds one check per JSON name (a closure made once per field, so the walk does one dict
    lookup and one call per element); `order` keeps the fields in the models' order for `in_model_order`.
    """

    __slots__ = ("checks", "choices", "choices_required", "known", "name", "order", "required")

    def __init__(self, name: str) -> None:
        self.name = name
        self.checks: dict[str, Check] = {}
        # tuple(node.items()) of text-only elements that passed (element types only, not resources).
        self.known: set[tuple[tuple[str, str], ...]] | None = None
        self.order: list[tuple[str, str, Shape | None, bool]] = []  # (name, "element"/"resource"/"value", ...)
        self.required: frozenset[str] = frozenset()
        self.choices: tuple[frozenset[str], ...] = ()  # at most one of each
        self.choices_required: tuple[frozenset[str], ...] = ()  # exactly one of each


def _many(check: Check) -> Check:
    def each(value: Any, depth: int) -> bool:
        if type(value) is not list or not value:
            return False  # an empty array is not valid FHIR (the models let it pass; not sure is safe)
        for item in value:  # noqa: SIM110 - a loop: all() over a generator costs more per item
            if not check(item, depth):
                return False
        return True

    return each


def _of(shape: Shape) -> Check:
    def element(value: Any, depth: int) -> bool:
        return _element(value, shape, depth)

    return element


def _named(name: str) -> Check:
    def resource_type(value: Any, depth: int) -> bool:
        return bool(value == name)  # the caller chose the shape by it; here for the walk's one lookup per key

    return resource_type


class _Table:
    def __init__(self, data: dict[str, Any]) -> None:
        primitives: dict[str, Check] = {
            "string": _string,
            "markdown": _string,  # markdown's and xhtml's patterns accept any string
            "xhtml": _string,
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
        types: dict[str, Any] = data["types"]
        self.shapes = {name: Shape(name) for name in types}
        self.resources: dict[str, Shape] = {}
        for name, entry in types.items():
            shape = self.shapes[name]
            for alias, kind, many in entry["fields"]:
                inner = self.shapes.get(kind)
                check: Check
                if kind == "*":
                    check, role = _resource, "resource"
                elif inner is not None:
                    check, role = _of(inner), "element"
                else:
                    check, role = primitives.get(kind[1:], _never) if kind.startswith("#") else _never, "value"
                shape.checks[alias] = _many(check) if many else check
                shape.order.append((alias, role, inner, bool(many)))
            shape.required = frozenset(entry.get("required", ()))
            shape.choices = tuple(frozenset(group) for group in entry.get("choices", ()))
            shape.choices_required = tuple(frozenset(group) for group in entry.get("choicesRequired", ()))
            if entry.get("resource"):
                shape.checks["resourceType"] = _named(name)
                shape.required |= {"resourceType"}
                self.resources[name] = shape
            else:
                shape.known = set()


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
    for key, role, inner, many in shape.order:
        if key not in node:
            continue
        value = node[key]
        if role == "resource":
            out[key] = [in_model_order(item) for item in value] if many else in_model_order(value)
        elif inner is None:
            out[key] = value
        elif many:
            out[key] = [_ordered(item, inner) for item in value]
        else:
            out[key] = _ordered(value, inner)
    return out


def _resource(value: Any, depth: int) -> bool:
    if type(value) is not dict:
        return False
    rtype = value.get("resourceType")
    shape = _table().resources.get(rtype) if type(rtype) is str else None
    return shape is not None and _element(value, shape, depth)


def _element(node: Any, shape: Shape, depth: int) -> bool:
    if type(node) is not dict or not node or depth > MAX_DEPTH:
        return False
    known = shape.known
    leaf: tuple[tuple[str, str], ...] | None = None
    if known is not None:
        # Text only (no array, object, number or boolean: an exact match on the texts is the same verdict;
        # the checks of text values do not depend on `depth`) and not long: looked up, else remembered.
        size = 0
        for text in node.values():
            if type(text) is not str:
                break
            size += len(text)
        else:
            if size <= LEAF_CHARS:
                leaf = tuple(node.items())
                if leaf in known:
                    return True
    depth += 1
    checks = shape.checks
    for key, value in node.items():
        check = checks.get(key)
        if check is None or not check(value, depth):
            return False
    keys = node.keys()
    if shape.required and not keys >= shape.required:
        return False
    for group in shape.choices:
        if len(keys & group) > 1:
            return False  # a choice element given twice (valueQuantity and valueString)
    for group in shape.choices_required:
        if keys.isdisjoint(group):
            return False
    if leaf is not None and known is not None:
        if len(known) >= LEAF_MEMO:
            known.clear()
        known.add(leaf)
    return True
