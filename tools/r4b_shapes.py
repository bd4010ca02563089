"""Writes `hofhir/knowledge/r4b_shapes.json`: the element table of the R4B models that `hofhir.fhir.shapes` checks against.

The table is read off the installed fhir.resources R4B model classes (their fields, JSON names, types,
cardinality, required elements and choice groups), for the resource types the rules read and every
element type reachable from them. It is data with its source next to it: the file names the
fhir.resources and fhir-core versions it was read from, and tests/unit/test_shapes.py fails when the
installed models would write a different table (regenerate with `python tools/r4b_shapes.py`).

The service reads the JSON (hofhir.knowledge.r4b_shapes) and never needs the models to read it.
"""

from __future__ import annotations

import sys
import types as pytypes
import typing
from importlib import metadata
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from hofhir.fhir.models import CLINICAL_TYPES

# What the rules read, and what the write-back writes (RiskAssessment, DetectedIssue).
RESOURCE_TYPES = CLINICAL_TYPES | {"RiskAssessment", "DetectedIssue"}
OUT = Path(__file__).resolve().parent.parent / "hofhir" / "knowledge" / "r4b_shapes.json"

# fhir_core's primitive metadata classes, by class name, to the FHIR primitive type they check.
_PRIMITIVES = {
    "String": "string",
    "Code": "code",
    "Id": "id",
    "Uri": "uri",
    "Canonical": "canonical",
    "Markdown": "markdown",
    "Xhtml": "xhtml",
    "Date": "date",
    "DateTime": "dateTime",
    "Instant": "instant",
    "Time": "time",
    "Decimal": "decimal",
    "Integer": "integer",
    "Integer64": "integer64",
    "UnsignedInt": "unsignedInt",
    "PositiveInt": "positiveInt",
    "Url": "url",
    "Oid": "oid",
    "Uuid": "uuid",
    "Base64Binary": "base64Binary",
}


def _unwrap(annotation: Any) -> tuple[Any, bool]:
    """(the element type, whether the element repeats) of a field annotation."""
    many = False
    while True:
        origin = typing.get_origin(annotation)
        if origin is typing.Union or origin is pytypes.UnionType:
            args = [a for a in typing.get_args(annotation) if a is not type(None)]
            if len(args) != 1:
                return annotation, many
            annotation = args[0]
        elif origin in (list, typing.List):  # noqa: UP006 - the models spell it typing.List
            many = True
            annotation = typing.get_args(annotation)[0]
        else:
            return annotation, many


def _kind(annotation: Any) -> str:
    """'#<primitive>', '*' for any resource, the element type's name, or '?' when unknown."""
    if typing.get_origin(annotation) is typing.Annotated:
        for meta in reversed(getattr(annotation, "__metadata__", ())):
            name = _PRIMITIVES.get(type(meta).__name__)
            if name:
                return "#" + name
        return "?"
    if annotation is bool:
        return "#boolean"
    model = getattr(annotation, "_model_klass", None)
    if isinstance(model, str):
        name = model.rsplit(".", 1)[1]
        return "*" if name == "Resource" else name
    return "?"


def _model(path_or_name: str) -> Any:
    from fhir.resources.R4B import get_fhir_model_class

    return get_fhir_model_class(path_or_name)


def _element_model(name: str, paths: dict[str, str]) -> Any:
    module, _, cls = paths[name].rpartition(".")
    return getattr(__import__(module, fromlist=[cls]), cls)


def table() -> dict[str, Any]:
    """The shapes of RESOURCE_TYPES and of every element type reachable from them."""
    types: dict[str, Any] = {}
    paths: dict[str, str] = {}
    todo: list[tuple[str, Any]] = [(t, _model(t)) for t in sorted(RESOURCE_TYPES)]
    while todo:
        name, model = todo.pop()
        if name in types:
            continue
        fields: list[list[Any]] = []  # in the model's element order (the order its JSON is written in)
        required: list[str] = []
        choices: dict[str, list[str]] = {}
        choice_required: set[str] = set()
        order = {name: i for i, name in enumerate(model.elements_sequence())}
        by_json_order = sorted(model.model_fields.items(), key=lambda kv: order.get(kv[0], len(order)))
        for python_name, info in by_json_order:
            alias = info.alias or python_name
            extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
            if not extra.get("element_property"):
                continue  # fhir_comments and the `_element` primitive extensions: the check leaves them to the models
            element, many = _unwrap(info.annotation)
            kind = _kind(element)
            fields.append([alias, kind, 1 if many else 0])
            if kind not in ("?", "*") and not kind.startswith("#"):
                target = getattr(element, "_model_klass", "")
                if paths.setdefault(kind, target) != target:
                    raise ValueError(f"two element types named {kind}: {paths[kind]} and {target}")
                if kind not in types:
                    todo.append((kind, None))
            if info.is_required() or extra.get("element_required"):
                required.append(alias)
            group = extra.get("one_of_many")
            if isinstance(group, str):
                choices.setdefault(group, []).append(alias)
                if extra.get("one_of_many_required"):
                    choice_required.add(group)
        entry: dict[str, Any] = {"fields": fields}
        if required:
            entry["required"] = sorted(required)
        if choices:
            entry["choices"] = [sorted(v) for _, v in sorted(choices.items())]
        if choice_required:
            entry["choicesRequired"] = [sorted(choices[g]) for g in sorted(choice_required)]
        if name in RESOURCE_TYPES:
            entry["resource"] = True
        types[name] = entry
        todo = [(n, m if m is not None else _element_model(n, paths)) for n, m in todo]
    from fhir_core import types as core

    patterns = {
        "date": core.Date.pattern.pattern,
        "dateTime": core.DateTime.pattern.pattern,
        "instant": core.Instant.pattern.pattern,
        "time": core.Time.pattern.pattern,
        "decimal": core.Decimal.pattern.pattern,
    }
    return {
        "patterns": patterns,
        "source": "read off the fhir.resources R4B model classes by tools/r4b_shapes.py",
        "fhir.resources": metadata.version("fhir.resources"),
        "fhir-core": metadata.version("fhir-core"),
        "types": dict(sorted(types.items())),
    }


def render() -> bytes:
    return orjson.dumps(table(), option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"


def main(argv: list[str]) -> int:
    data = render()
    if "--check" in argv:
        if OUT.read_bytes() != data:
            print(f"{OUT.name} is out of date: run python tools/r4b_shapes.py", file=sys.stderr)
            return 1
        return 0
    OUT.write_bytes(data)
    print(f"wrote {OUT} ({len(data)} bytes)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
