"""The element-table check (`hofhir.fhir.shapes`): True only for what the R4B models accept as it stands.

`conforms(r)` is a fast path: False only costs speed (the caller runs the models), but True for data the
models refuse would let invalid FHIR through unread. So every test here checks the implication
`conforms(r) => the R4B model accepts r`: over every sample resource, over seeded random damage to them
(wrong JSON types, near-miss strings, dates and numbers, missing and extra elements, two values of one
choice element, deep nesting, contained resources), over resources made up from scratch, and over direct
near-miss cases. It also checks that the fast path keeps covering real data, that `in_model_order` writes
the models' element order, that the table matches the installed models, and that `read_resource` reads
the same with and without the fast path.
"""

from __future__ import annotations

import copy
import math
import subprocess
import sys
from collections.abc import Callable, Iterator
from functools import cache
from pathlib import Path
from typing import Any
from unittest import mock

import orjson
import pytest
from fhir.resources.R4B import get_fhir_model_class
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hofhir.fhir import build, models, shapes
from hofhir.fhir.read import bundle_resources
from hofhir.knowledge import default_knowledge, r4b_shapes

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT.parent / "shared" / "fhir-samples"
VIGNETTES = ROOT.parent / "shared" / "vignettes"

Json = Any
JPath = tuple[str | int, ...]


def seeded(examples: int) -> settings:
    """Seeded property settings: the same examples on every run."""
    return settings(
        max_examples=examples,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
    )


# ---- the R4B models, the judge ---------------------------------------------------------------------


def pydantic_problem(resource: Json) -> str | None:
    """None when the R4B model of the resource's type accepts it as it stands, else pydantic's error."""
    try:
        model = get_fhir_model_class(resource["resourceType"])
        model.model_validate(resource)
    except Exception as exc:  # any refusal, whatever its exception type, is a refusal
        return f"{type(exc).__name__}: {exc}"[:2000]
    return None


def accepts(resource: Json) -> bool:
    return pydantic_problem(resource) is None


def assert_sound(resource: Json) -> None:
    """conforms(resource) => the R4B model accepts it."""
    if shapes.conforms(resource):
        problem = pydantic_problem(resource)
        assert problem is None, f"UNSOUND: conforms() is True but the R4B model refuses\n{resource!r}\n{problem}"


# ---- the corpus ------------------------------------------------------------------------------------


@cache
def corpus() -> tuple[tuple[str, dict[str, Any]], ...]:
    """(source, resource) for every resource of a type the check knows, in a fixed order."""
    known = shapes.known_types()
    out: list[tuple[str, dict[str, Any]]] = []

    def add(value: Any, source: str) -> None:
        if isinstance(value, dict) and value.get("resourceType") in known:
            out.append((source, value))

    def add_all(value: Any, source: str) -> None:
        if isinstance(value, dict) and value.get("resourceType") == "Bundle":
            for resource in bundle_resources(value):
                add(resource, source)
        else:
            add(value, source)

    for folder in ("synthea-r4-bundles", "hl7-r4-examples"):
        for path in sorted((SAMPLES / folder).glob("*.json")):
            add_all(orjson.loads(path.read_bytes()), f"{folder}/{path.name}")
    for path in sorted((SAMPLES / "synthea-v3-bulk-10-patients").glob("*.ndjson")):
        for number, line in enumerate(path.read_bytes().splitlines()):
            if line.strip():
                add(orjson.loads(line), f"{path.name}:{number + 1}")
    for path in sorted(VIGNETTES.glob("*.json")):
        request = orjson.loads(path.read_bytes())
        if not isinstance(request, dict):
            continue
        prefetch = request.get("prefetch")
        for value in (prefetch or {}).values() if isinstance(prefetch, dict) else ():
            add_all(value, f"vignettes/{path.name}")
        context = request.get("context")
        if isinstance(context, dict):
            add_all(context.get("draftOrders"), f"vignettes/{path.name}")
    return tuple(out)


@cache
def verdicts() -> tuple[tuple[bool, bool], ...]:
    """(conforms, the model accepts) for each corpus resource."""
    return tuple((shapes.conforms(r), accepts(r)) for _, r in corpus())


@cache
def conforming() -> tuple[dict[str, Any], ...]:
    """The conforming corpus resources, smallest first (so hypothesis shrinks towards small ones)."""
    found = [r for (_, r), (fast, _) in zip(corpus(), verdicts(), strict=True) if fast]
    return tuple(sorted(found, key=lambda r: len(orjson.dumps(r))))


@cache
def bases() -> tuple[dict[str, Any], ...]:
    """A spread of conforming resources to damage: every resource type, small and large, a few hundred."""
    pool = conforming()
    picked = {id(r): r for r in pool[:: max(1, len(pool) // 300)]}
    seen: set[str] = set()
    for r in pool:  # the smallest of each type and of each source kind
        if r["resourceType"] not in seen:
            seen.add(r["resourceType"])
            picked[id(r)] = r
    return tuple(sorted(picked.values(), key=lambda r: len(orjson.dumps(r))))


def test_the_corpus_is_there() -> None:
    assert SAMPLES.is_dir() and VIGNETTES.is_dir(), "the tests need ../shared beside the repository"
    sources = {source.split("/")[0].split(".")[0] for source, _ in corpus()}
    assert {"synthea-r4-bundles", "hl7-r4-examples", "vignettes", "Condition", "Procedure"} <= sources
    assert len(corpus()) > 5000
    assert {"Patient", "Observation", "Condition", "Procedure", "MedicationRequest"} <= {
        r["resourceType"] for _, r in corpus()
    }


def test_every_corpus_resource_the_check_passes_is_one_the_models_accept() -> None:
    unsound = [
        (source, r.get("id"), pydantic_problem(r))
        for (source, r), (fast, slow) in zip(corpus(), verdicts(), strict=True)
        if fast and not slow
    ]
    assert unsound == []


def test_the_fast_path_covers_nearly_all_valid_corpus_resources() -> None:
    valid = [fast for fast, slow in verdicts() if slow]
    assert len(valid) > 5000
    assert sum(valid) >= 0.95 * len(valid), f"conforms() passes only {sum(valid)} of {len(valid)} valid resources"


# ---- the element table, read independently of shapes.py ------------------------------------------


@cache
def table() -> dict[str, dict[str, tuple[str, bool]]]:
    """type name -> JSON name -> (kind, repeats), from r4b_shapes.json."""
    return {
        name: {alias: (kind, bool(many)) for alias, kind, many in entry["fields"]}
        for name, entry in r4b_shapes()["types"].items()
    }


def choices_of(kind: str) -> list[list[str]]:
    entry = r4b_shapes()["types"].get(kind, {})
    groups: list[list[str]] = entry.get("choices", [])
    return groups


def type_name(kind: str, node: dict[str, Any]) -> str:
    """The table's name for a dict of this kind: its resourceType for a resource ('' when not a string)."""
    if kind == "*":
        rtype = node.get("resourceType")
        return rtype if isinstance(rtype, str) else ""
    return kind


def fields_of(kind: str, node: dict[str, Any]) -> dict[str, tuple[str, bool]]:
    return table().get(type_name(kind, node), {})


def slots(value: Json, kind: str = "*", path: JPath = ()) -> Iterator[tuple[JPath, str, Json]]:
    """(path, kind, value) of every value below the root; kind '' when unknown, '[]K' for a list of K."""
    yield path, kind, value
    if isinstance(value, dict):
        fields = fields_of(kind, value)
        for key, child in value.items():
            child_kind, many = fields.get(key, ("", False))
            if many and isinstance(child, list):
                yield (*path, key), "[]" + child_kind, child
                for index, item in enumerate(child):
                    yield from slots(item, child_kind, (*path, key, index))
            else:
                yield from slots(child, child_kind, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from slots(item, "", (*path, index))


@cache
def harvest() -> dict[str, tuple[Json, ...]]:
    """A few valid values of every kind found in the conforming corpus (primitives and element types)."""
    found: dict[str, dict[bytes, Json]] = {}
    for resource in conforming()[::7]:
        for _, kind, value in slots(resource):
            if kind and kind != "*" and not kind.startswith("[]"):
                bucket = found.setdefault(kind, {})
                if len(bucket) < 6:
                    bucket.setdefault(orjson.dumps(value, option=orjson.OPT_SORT_KEYS), value)
    return {kind: tuple(values.values()) for kind, values in sorted(found.items())}


# ---- damage ------------------------------------------------------------------------------------------

JSON_TYPES: list[Json] = [0, 1, -1, 1.5, True, False, "x", "", None, [], {}, ["x"], {"x": 1}, [None], [{}], [[]]]
STRINGS: list[str] = [
    "",
    " ",
    "   ",
    "\t",
    "\n",
    "\r\n",
    " a",
    "a ",
    "a  b",
    "a b",
    "a\tb",
    "a\nb",
    "\x00",
    "a\x00",
    "\x0b",
    "a\x0bb",
    "\x0c",
    "\x1c",
    "\x1d",
    "\x1e",
    "\x1f",
    "a\x1f",
    "\x7f",
    "é",
    "Ünïcødé ✓",
    "\u00a0",
    "a\u00a0",
    "\u2028",
    "a\u2029",
    "\u3000",
    "\x85",
    "a\x85b",
    "\u200b",
    "\ufeff",
    "\u180e",
    "\U0001f600",
    "\ud800",  # a lone surrogate: a Python str json.loads can make, not valid Unicode text
    "a\udfff",
    "x" * 64,
    "x" * 65,
    "x" * 256,
    "a_b",
    "a/b",
    "Patient/123",
    "urn:uuid:53fefa32-fcbb-4ff8-8a92-55ee120877b7",
    "http://loinc.org",
    "final",
]
DATES: list[str] = [
    "2021-02-29",
    "2020-02-29",
    "1900-02-29",
    "2000-02-29",
    "2020-06-31",
    "2020-01-32",
    "2020-13-01",
    "2020-00-10",
    "2020-01-00",
    "0000-01-01",
    "0001-01-01",
    "0000",
    "2020",
    "2020-01",
    "2020-13",
    "2020-1-1",
    "20200101",
    "-2020-01-01",
    "+2020-01-01",
    "２０２０-01-01",
    " 2020-01-01",
    "2020-01-01 ",
    "2020-01-01\n",
    "2020-01-01T24:00:00Z",
    "2020-01-01T23:60:00Z",
    "2020-01-01T10:00Z",
    "2020-01-01T10Z",
    "2020-01-01T10:00:00",
    "2020-01-01T10:00:00Z",
    "2020-01-01T10:00:00.000+00:00",
    "2020-01-01T10:00:00+14:01",
    "2020-01-01T10:00:00+14:00",
    "2020-01-01T10:00:00-14:00",
    "2020-01-01T10:00:00+15:00",
    "2020-01-01T10:00:00-00:00",
    "2020-01-01T10:00:00+0100",
    "2020-01-01T10:00:00+01",
    "2016-12-31T23:59:60Z",
    "2021-02-29T23:59:60Z",
    "2020-01-01T10:00:00.Z",
    "2020-01-01T10:00:00.123456Z",
    "2020-01-01T10:00:00.1234567Z",
    "2020-01-01T10:00:00.12345678Z",
    "2020-01-01T10:00:00.123456789Z",
    "2020-01-01t10:00:00z",
    "2020-01-01T10:00:00z",
    "2020-01-01t10:00:00Z",
    "2020-01-01 10:00:00Z",
    "2021-02-29T10:00:00Z",
    "0001-01-01T00:00:00+14:00",
    "9999-12-31T23:59:59.999999-14:00",
    "2020-W01",
    "24:00:00",
    "23:59:60",
    "23:59:59",
    "10:00",
    "10:00:00Z",
    "10:00:00+01:00",
    "10:00:00.123456",
    "10:00:00.1234567",
]
NUMBERS: list[Json] = [
    0,
    1,
    -1,
    2**31 - 1,
    2**31,
    -(2**31),
    -(2**31) - 1,
    2**63,
    -(2**63),
    2**64,
    10**30,
    1.0,
    0.0,
    -0.0,
    1.5,
    -1.5,
    1e16,
    1e308,
    5e-324,
    1e-7,
    math.nan,
    math.inf,
    -math.inf,
    True,
    False,
    "1",
    "1.0",
    "1e3",
    " 1",
    "0x10",
    "NaN",
]
ODD_KEYS: list[str] = [
    "foo",
    "_status",
    "_value",
    "_text",
    "_id",
    "fhir_comments",
    "resourceType",
    "Status",
    "value[x]",
]
UNKNOWN_CONTAINED: list[Json] = [
    {"resourceType": "Foo", "id": "x"},
    {"resourceType": "Bundle", "type": "collection"},
    {"resourceType": "Organization", "id": "o1", "name": "x"},
    {"resourceType": "Observation", "id": "o1"},  # required status and code missing
    {"resourceType": "Observation", "status": "final", "code": {"text": "x"}},
    {"resourceType": "Patient", "id": "p", "contained": [{"resourceType": "Patient", "id": "q"}]},
    {"id": "no-type"},
    {"resourceType": "Patient", "id": "p", "resourceType_": 1},
]


def deep_extension(depth: int) -> dict[str, Any]:
    node: dict[str, Any] = {"url": "http://example.org/leaf", "valueString": "x"}
    for _ in range(depth):
        node = {"url": "http://example.org/level", "extension": [node]}
    return node


def get_at(root: Json, path: JPath) -> Json:
    node = root
    for part in path:
        node = node[part]
    return node


def set_at(root: Json, path: JPath, value: Json) -> None:
    get_at(root, path[:-1])[path[-1]] = value


def any_value(harvested: dict[str, tuple[Json, ...]]) -> st.SearchStrategy[Json]:
    kinds = sorted(harvested)
    return st.one_of(
        st.sampled_from(JSON_TYPES),
        st.sampled_from(STRINGS),
        st.sampled_from(DATES),
        st.sampled_from(NUMBERS),
        st.sampled_from(kinds).flatmap(lambda kind: st.sampled_from(harvested[kind])),
    )


def value_of(kind: str, many: bool, harvested: dict[str, tuple[Json, ...]], draw: Callable[..., Any]) -> Json:
    """A value of the kind (valid when the corpus has one), sometimes in the wrong cardinality."""
    pool = harvested.get(kind)
    value = copy.deepcopy(draw(st.sampled_from(pool)) if pool else draw(any_value(harvested)))
    if draw(st.integers(0, 5)) == 0:
        many = not many
    return [value] if many else value


DAMAGES = ("replace", "delete", "add", "choice", "shape", "extension", "contained")


def damage(resource: dict[str, Any], draw: Callable[..., Any]) -> str:
    """Damage the resource in place at a random path; returns what was done (for the failure message)."""
    harvested = harvest()
    kind_of_damage = draw(st.sampled_from(DAMAGES))
    every = list(slots(resource))
    nodes = [(p, k, v) for p, k, v in every if isinstance(v, dict)]
    if kind_of_damage == "replace":
        path, kind, _ = draw(st.sampled_from(every[1:]))
        new = copy.deepcopy(draw(any_value(harvested)))
        set_at(resource, path, new)
        return f"replace {path} ({kind}) by {new!r:.80}"
    if kind_of_damage == "delete":
        keyed = [(p, k) for p, k, _ in every if p and isinstance(p[-1], str)]
        path, kind = draw(st.sampled_from(keyed))
        del get_at(resource, path[:-1])[path[-1]]
        return f"delete {path} ({kind})"
    if kind_of_damage == "add":
        path, kind, node = draw(st.sampled_from(nodes))
        known = sorted(fields_of(kind, node))
        key = draw(st.sampled_from(ODD_KEYS + known) if known else st.sampled_from(ODD_KEYS))
        if key in known:
            child_kind, many = fields_of(kind, node)[key]
            node[key] = value_of(child_kind, many, harvested, draw)
        elif key.startswith("_"):
            node[key] = draw(
                st.sampled_from([{"extension": [{"url": "http://example.org/x", "valueString": "y"}]}, {}, None, "x"])
            )
        elif key == "resourceType":
            node[key] = draw(st.sampled_from(["Observation", "Patient", "Foo", "", 1]))
        else:
            node[key] = copy.deepcopy(draw(any_value(harvested)))
        return f"add {path}.{key} = {node[key]!r:.80}"
    if kind_of_damage == "choice":
        with_choices = [(p, k, v) for p, k, v in nodes if choices_of(type_name(k, v))]
        if not with_choices:
            return "no choice element"
        path, kind, node = draw(st.sampled_from(with_choices))
        name = type_name(kind, node)
        group = draw(st.sampled_from(choices_of(name)))
        member = draw(st.sampled_from(group))
        child_kind, many = table()[name][member]
        node[member] = value_of(child_kind, many, harvested, draw)
        return f"choice {path}.{member} = {node[member]!r:.80} (given: {sorted(set(group) & set(node))})"
    if kind_of_damage == "shape":
        path, kind, value = draw(st.sampled_from(every[1:]))
        how = draw(st.sampled_from(["wrap", "unwrap", "empty", "none-in-list", "duplicate-item", "empty-object"]))
        if how == "wrap":
            set_at(resource, path, [value])
        elif how == "unwrap" and isinstance(value, list) and value:
            set_at(resource, path, value[0])
        elif how == "empty":
            set_at(resource, path, [] if isinstance(value, list) else {} if isinstance(value, dict) else "")
        elif how == "none-in-list" and isinstance(value, list):
            value.insert(draw(st.integers(0, len(value))), None)
        elif how == "duplicate-item" and isinstance(value, list) and value:
            value.append(copy.deepcopy(value[-1]))
        else:
            set_at(resource, path, {})
        return f"shape {how} at {path} ({kind})"
    if kind_of_damage == "extension":
        path, kind, node = draw(st.sampled_from(nodes))
        depth = draw(st.sampled_from([1, 2, 23, 24, 25, 30]))
        node["extension"] = [deep_extension(depth)]
        return f"extension {depth} deep at {path}"
    # contained
    path, kind, node = draw(st.sampled_from(nodes))
    other = draw(st.one_of(st.sampled_from(UNKNOWN_CONTAINED), st.sampled_from(bases()[:60])))
    node.setdefault("contained", [])
    if isinstance(node["contained"], list):
        node["contained"].append(copy.deepcopy(other))
    else:
        node["contained"] = [copy.deepcopy(other)]
    return f"contained at {path}: {other.get('resourceType')!r}"


@st.composite
def damaged(draw: st.DrawFn) -> tuple[dict[str, Any], list[str]]:
    """A conforming corpus resource with 1 to 3 random damages."""
    resource: dict[str, Any] = copy.deepcopy(draw(st.sampled_from(bases())))
    done = [damage(resource, draw) for _ in range(draw(st.integers(1, 3)))]
    return resource, done


@seeded(500)
@given(damaged())
def test_damaged_resources_the_check_passes_are_ones_the_models_accept(case: tuple[dict[str, Any], list[str]]) -> None:
    resource, done = case
    if shapes.conforms(resource):
        problem = pydantic_problem(resource)
        assert problem is None, f"UNSOUND after {done}:\n{resource!r}\n{problem}"


def made_up(resource_type: str) -> st.SearchStrategy[dict[str, Any]]:
    keys = sorted({alias for fields in table().values() for alias in fields} | {"foo", "_status", "resourceType"})
    leaves = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(2**40), max_value=2**40),
        st.floats(allow_nan=True, allow_infinity=True),
        st.text(max_size=8),
        st.sampled_from(STRINGS + DATES),
    )
    tree = st.recursive(
        leaves,
        lambda children: st.lists(children, max_size=3) | st.dictionaries(st.sampled_from(keys), children, max_size=4),
        max_leaves=20,
    )
    return st.dictionaries(st.sampled_from(keys), tree, max_size=6).map(lambda d: {**d, "resourceType": resource_type})


@seeded(60)
@given(st.sampled_from(sorted(shapes.known_types())).flatmap(made_up))
def test_made_up_resources_the_check_passes_are_ones_the_models_accept(resource: dict[str, Any]) -> None:
    assert_sound(resource)


# Each primitive kind, in a field of that kind (value -> a resource holding it).
FIELDS: dict[str, Callable[[Json], dict[str, Any]]] = {
    "date": lambda v: {"resourceType": "Patient", "birthDate": v},
    "dateTime": lambda v: {
        "resourceType": "Observation",
        "status": "final",
        "code": {"text": "x"},
        "effectiveDateTime": v,
    },
    "instant": lambda v: {"resourceType": "Observation", "status": "final", "code": {"text": "x"}, "issued": v},
    "time": lambda v: {"resourceType": "Observation", "status": "final", "code": {"text": "x"}, "valueTime": v},
    "string": lambda v: {"resourceType": "Observation", "status": "final", "code": {"text": v}},
    "markdown": lambda v: {"resourceType": "Condition", "subject": {"reference": "Patient/p"}, "note": [{"text": v}]},
    "code": lambda v: {"resourceType": "Observation", "status": v, "code": {"text": "x"}},
    "id": lambda v: {"resourceType": "Observation", "id": v, "status": "final", "code": {"text": "x"}},
    "uri": lambda v: {"resourceType": "Observation", "status": "final", "code": {"coding": [{"system": v}]}},
    "decimal": lambda v: {
        "resourceType": "Observation",
        "status": "final",
        "code": {"text": "x"},
        "valueQuantity": {"value": v},
    },
    "integer": lambda v: {"resourceType": "Observation", "status": "final", "code": {"text": "x"}, "valueInteger": v},
    "positiveInt": lambda v: {"resourceType": "Patient", "telecom": [{"system": "phone", "value": "1", "rank": v}]},
    "unsignedInt": lambda v: {
        "resourceType": "MedicationRequest",
        "status": "active",
        "intent": "order",
        "subject": {"reference": "Patient/p"},
        "medicationCodeableConcept": {"text": "x"},
        "dispenseRequest": {"numberOfRepeatsAllowed": v},
    },
    "boolean": lambda v: {"resourceType": "Patient", "active": v},
    "xhtml": lambda v: {"resourceType": "Patient", "text": {"status": "generated", "div": v}},
}
HUGE = 10**5000  # more digits than Python turns into a string by default (sys.get_int_max_str_digits)
NEAR_MISSES: list[Json] = [
    *sorted({repr(v): v for v in [*JSON_TYPES, *STRINGS, *DATES, *NUMBERS]}.values(), key=repr),
    HUGE,
    -HUGE,
]


def show(value: Json) -> str:
    """repr() that also works for ints too long for str()."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 10**4000:
        return "-10**5000" if value < 0 else "10**5000"
    return repr(value)


def test_every_field_maker_holds_a_valid_value_on_the_fast_path() -> None:
    valid = {
        "date": "2020-02-29",
        "dateTime": "2020-01-01T10:00:00+01:00",
        "instant": "2020-01-01T10:00:00.123Z",
        "time": "10:00:00",
        "string": "a",
        "markdown": "*a*",
        "code": "final",
        "id": "a-1.B",
        "uri": "http://loinc.org",
        "decimal": 1.5,
        "integer": -3,
        "positiveInt": 1,
        "unsignedInt": 0,
        "boolean": True,
        "xhtml": '<div xmlns="http://www.w3.org/1999/xhtml">a</div>',
    }
    assert sorted(valid) == sorted(FIELDS)
    for kind, value in valid.items():
        resource = FIELDS[kind](value)
        assert accepts(resource), (kind, pydantic_problem(resource))
        assert shapes.conforms(resource), kind


@pytest.mark.parametrize("kind", sorted(FIELDS))
def test_no_near_miss_value_passes_the_check_in_a_field_the_models_refuse_it_in(kind: str) -> None:
    unsound = []
    for value in NEAR_MISSES:
        resource = FIELDS[kind](value)
        if shapes.conforms(resource) and not accepts(resource):
            unsound.append((show(value), pydantic_problem(resource)))
    assert unsound == [], f"UNSOUND {kind} values: {unsound}"


def _fhir_regex(kind: str) -> st.SearchStrategy[str]:
    return st.from_regex(r4b_shapes()["patterns"][kind], fullmatch=True)


@seeded(200)
@given(
    st.sampled_from(["date", "dateTime", "instant", "time"]).flatmap(
        lambda kind: st.tuples(st.just(kind), _fhir_regex(kind))
    )
)
def test_date_and_time_strings_of_the_fhir_pattern(case: tuple[str, str]) -> None:
    kind, value = case
    assert_sound(FIELDS[kind](value))


def test_the_last_days_of_every_month_in_leap_and_common_years() -> None:
    wrong: list[tuple[str, str, str]] = []
    for year in ("0004", "0100", "0400", "1900", "2000", "2020", "2021", "2100", "9999"):
        for month in range(1, 13):
            for day in (28, 29, 30, 31):
                date = f"{year}-{month:02}-{day:02}"
                for kind, value in (
                    ("date", date),
                    ("dateTime", date),
                    ("dateTime", f"{date}T23:59:59.999999-14:00"),
                    ("instant", f"{date}T00:00:00+14:00"),
                ):
                    resource = FIELDS[kind](value)
                    fast, slow = shapes.conforms(resource), accepts(resource)
                    if fast != slow:  # True when refused is unsound; False when valid loses the fast path
                        wrong.append((kind, value, "UNSOUND" if fast else "valid, yet refused"))
    assert wrong == []


# Exact verdicts for the trickiest near-misses: (kind, value, what conforms must say).
EXACT: list[tuple[str, Json, bool]] = [
    ("date", "2021-02-29", False),
    ("date", "2020-02-29", True),
    ("date", "2020-13-01", False),
    ("date", "2020-00-10", False),
    ("date", "0000-01-01", False),
    ("date", "2020-01-01T10:00:00Z", False),  # a time in a date
    ("date", "2020", True),
    ("dateTime", "2020-01-01T24:00:00Z", False),
    ("dateTime", "2020-01-01T10:00Z", False),
    ("dateTime", "2020-01-01T10:00:00", False),  # no zone
    ("dateTime", "2020-01-01T10:00:00+14:01", False),
    ("dateTime", "2020-01-01T10:00:00+15:00", False),
    ("dateTime", "2020-01-01T10:00:00+14:00", True),
    ("dateTime", "2016-12-31T23:59:60Z", False),  # a leap second: valid, but left to the models
    ("dateTime", "2020-01-01T10:00:00.1234567Z", False),
    ("dateTime", "2020-01-01T10:00:00.12345678Z", False),
    ("dateTime", "2020-01-01T10:00:00.123456789Z", False),
    ("dateTime", "2020-01-01T10:00:00.123456Z", True),
    ("dateTime", "2020-01-01t10:00:00z", False),
    ("dateTime", "2020-01-01T10:00:00z", False),
    ("dateTime", "2020-01-01 10:00:00Z", False),
    ("dateTime", "2021-02-29T10:00:00Z", False),
    ("dateTime", "2020-01-01", True),
    ("instant", "2020-01-01", False),  # a date in an instant
    ("instant", "2020-01-01T10:00:00Z", True),
    ("instant", "2020-01-01T10:00:00", False),
    ("time", "24:00:00", False),
    ("time", "23:59:60", False),
    ("time", "10:00", False),
    ("time", "10:00:00.1234567", False),
    ("integer", 2**31, False),
    ("integer", 2**31 - 1, True),
    ("integer", -(2**31) - 1, False),
    ("integer", 2**63, False),
    ("integer", 1.0, False),
    ("integer", True, False),
    ("integer", "1", False),
    ("positiveInt", 0, False),
    ("unsignedInt", -1, False),
    ("decimal", 2**63, True),
    ("decimal", True, False),
    ("decimal", math.nan, False),
    ("decimal", math.inf, False),
    ("decimal", "1.5", False),
    ("decimal", HUGE, False),  # str() of it raises in the model: refused there
    ("boolean", 1, False),
    ("boolean", "true", False),
    ("id", "x" * 64, True),
    ("id", "x" * 65, False),
    ("id", "a_b", False),
    ("id", "a/b", False),
    ("id", "", False),
    ("code", "", False),
    ("code", " a", False),
    ("code", "a ", False),
    ("code", "a  b", False),
    ("code", "a\tb", False),
    ("code", "a b", True),
    ("string", "", False),
    ("string", " ", False),
    ("string", "\t\n", False),
    ("string", "\u00a0", False),
    ("string", "\u3000", False),
    ("string", "\x85", False),
    ("string", "\u2028", False),
    ("string", "a\x00", True),  # the R4B string pattern only needs one character that is not a blank
    ("string", "Ünïcødé", True),
    ("string", "\ud800", False),  # a lone surrogate: pydantic refuses it (string_unicode)
    ("string", "a\udfff", False),
    ("markdown", "\ud800", False),
    ("xhtml", "<div>\ud800</div>", False),
]


@pytest.mark.parametrize(("kind", "value", "expected"), EXACT, ids=[f"{k}-{show(v):.40}" for k, v, _ in EXACT])
def test_tricky_near_misses(kind: str, value: Json, expected: bool) -> None:
    resource = FIELDS[kind](value)
    fast = shapes.conforms(resource)
    assert not fast or accepts(resource), f"UNSOUND: {kind} {show(value)}: {pydantic_problem(resource)}"
    assert fast is expected


def observation(**elements: Json) -> dict[str, Any]:
    return {"resourceType": "Observation", "status": "final", "code": {"text": "x"}, **elements}


STRUCTURAL: list[tuple[str, dict[str, Any], bool]] = [
    ("valid", observation(), True),
    ("no status", {"resourceType": "Observation", "code": {"text": "x"}}, False),
    ("no code", {"resourceType": "Observation", "status": "final"}, False),
    ("extension without url", observation(extension=[{"valueString": "x"}]), False),
    ("extension without value", observation(extension=[{"url": "http://x"}]), True),  # ext-1 is not checked
    ("unknown key", observation(foo=1), False),
    ("primitive extension", observation(_status={"extension": [{"url": "http://x", "valueString": "y"}]}), False),
    ("fhir_comments", observation(fhir_comments=["c"]), False),
    ("resourceType in an element", observation(code={"text": "x", "resourceType": "CodeableConcept"}), False),
    ("two choice values", observation(valueQuantity={"value": 1}, valueString="x"), False),
    ("two effective values", observation(effectiveDateTime="2020", effectivePeriod={"start": "2020"}), False),
    ("None in a list", observation(category=[None]), False),
    ("None in a primitive list", {"resourceType": "Patient", "name": [{"given": ["a", None]}]}, False),
    ("None value", observation(valueString=None), False),
    ("empty list", observation(category=[]), False),
    ("empty object", observation(valueQuantity={}), False),
    ("single for a list", observation(category={"text": "x"}), False),
    ("list for a single", observation(code=[{"text": "x"}]), False),
    ("extension 24 deep", observation(extension=[deep_extension(20)]), True),
    ("extension 30 deep", observation(extension=[deep_extension(30)]), False),
    ("contained known", observation(contained=[{"resourceType": "Patient", "id": "p"}]), True),
    ("contained unknown type", observation(contained=[{"resourceType": "Organization", "id": "o"}]), False),
    ("contained no type", observation(contained=[{"id": "o"}]), False),
    ("contained damaged", observation(contained=[{"resourceType": "Observation", "status": "final"}]), False),
    ("contained with bad date", observation(contained=[{"resourceType": "Patient", "birthDate": "2021-02-29"}]), False),
    ("url element", observation(extension=[{"url": "http://x", "valueUrl": "http://y"}]), False),
    ("base64Binary element", observation(extension=[{"url": "http://x", "valueBase64Binary": "AAAA"}]), False),
    ("unknown resource type", {"resourceType": "Organization", "name": "x"}, False),
    ("wrong-case resource type", {"resourceType": "patient"}, False),
    ("resourceType not a string", {"resourceType": 1}, False),
    ("resourceType a list", {"resourceType": ["Patient"]}, False),
    ("resourceType an object", {"resourceType": {"Patient": 1}}, False),
    ("contained resourceType a list", observation(contained=[{"resourceType": ["Patient"]}]), False),
]


@pytest.mark.parametrize(("name", "resource", "expected"), STRUCTURAL, ids=[n for n, _, _ in STRUCTURAL])
def test_structural_near_misses(name: str, resource: dict[str, Any], expected: bool) -> None:
    fast = shapes.conforms(resource)  # must not raise, whatever the JSON
    assert not fast or accepts(resource), f"UNSOUND: {resource!r:.300}: {pydantic_problem(resource)}"
    assert fast is expected


@pytest.mark.parametrize("rtype", [["Patient"], {"Patient": 1}, [], None, 1])
def test_read_resource_reads_an_odd_resource_type_without_raising(rtype: Json) -> None:
    reading = models.read_resource({"resourceType": rtype, "id": "x"})  # "never raises", says read_resource
    assert reading.resource is None and reading.problem == "no resourceType"


@pytest.mark.parametrize("value", [None, [], "Patient", 1, (), {"resourceType": None}, {}])
def test_what_is_not_a_resource_is_refused(value: Json) -> None:
    assert shapes.conforms(value) is False


def test_a_resource_nested_400_deep_is_refused_without_recursion_error() -> None:
    resource = observation(extension=[deep_extension(400)])
    assert shapes.conforms(resource) is False
    nested: dict[str, Any] = {"text": "x"}
    for _ in range(400):
        nested = {
            "coding": [{"system": "http://x", "extension": [{"url": "http://x", "valueCodeableConcept": nested}]}]
        }
    assert shapes.conforms(observation(code=nested)) is False
    assert shapes.conforms(observation(contained=[observation(contained=[observation()] * 2)] * 2)) is True


# ---- element order ------------------------------------------------------------------------------


def key_order(value: Json, contained: bool = True) -> Json:
    """The element names in order, all the way down (values left out; contained resources too or not)."""
    if isinstance(value, dict):
        return [
            (key, key_order(child, contained) if contained or key != "contained" else None)
            for key, child in value.items()
        ]
    if isinstance(value, list):
        return [key_order(item, contained) for item in value]
    return None


def reversed_order(value: Json) -> Json:
    if isinstance(value, dict):
        return {key: reversed_order(value[key]) for key in reversed(list(value))}
    if isinstance(value, list):
        return [reversed_order(item) for item in value]
    return value


def model_json(resource: dict[str, Any]) -> dict[str, Any]:
    dumped: dict[str, Any] = (
        get_fhir_model_class(resource["resourceType"])
        .model_validate(resource)
        .model_dump(mode="json", exclude_none=True)
    )
    return dumped


def order_cases() -> list[dict[str, Any]]:
    regimens = default_knowledge().parameters["regimens"]
    built = [t.through_model("p1", "a reason") for _, t in sorted(build.templates(regimens).items())]
    return built + list(conforming()[:: max(1, len(conforming()) // 400)])


def test_in_model_order_writes_the_models_element_order() -> None:
    cases = order_cases()
    assert len(cases) > 300
    for resource in cases:
        for given_order in (resource, reversed_order(resource)):
            assert shapes.conforms(given_order)
            ordered = shapes.in_model_order(given_order)
            expected = model_json(given_order)
            assert list(ordered) == list(expected), resource.get("id")
            assert key_order(ordered, contained=False) == key_order(expected, contained=False), resource.get("id")
            assert ordered == resource


def test_in_model_order_writes_contained_resources_in_the_models_order_too() -> None:
    with_contained = [r for r in order_cases() + list(conforming()) if "contained" in r][:20]
    assert with_contained
    for resource in with_contained:
        given_order = reversed_order(resource)
        ordered = shapes.in_model_order(given_order)
        assert key_order(ordered["contained"]) == key_order(model_json(given_order)["contained"]), resource.get("id")


# ---- the table is the installed models' --------------------------------------------------------------


def test_the_element_table_is_up_to_date_with_the_installed_models() -> None:
    done = subprocess.run(
        [sys.executable, "tools/r4b_shapes.py", "--check"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr


# ---- read_resource: the fast path, and the same reading without it -----------------------------------


def read_both_ways(resource: Json) -> tuple[models.Reading, models.Reading]:
    models.clear_cache()
    fast = models.read_resource(copy.deepcopy(resource))
    models.clear_cache()
    with mock.patch.object(models, "conforms", lambda _resource: False):
        slow = models.read_resource(copy.deepcopy(resource))
    models.clear_cache()
    return fast, slow


def test_read_resource_takes_the_fast_path_without_the_models() -> None:
    resource = conforming()[0]
    models.clear_cache()
    with mock.patch.object(models, "_model", side_effect=AssertionError("the models ran")):
        reading = models.read_resource(resource)
    assert reading.resource is resource and reading.dropped == () and reading.problem is None


@pytest.mark.parametrize(
    ("elements", "path"),
    [
        ({"foo": 1}, "foo"),
        ({"_status": {"extension": [{"url": "http://x", "valueString": "y"}]}}, None),
        ({"issued": "2020-01-01T10:00:00"}, "issued"),
        ({"effectiveDateTime": "2021-02-29"}, "effectiveDateTime"),
        ({"valueInteger": 2**31}, "valueInteger"),
        ({"category": [{"text": "x"}, {"text": "\x0b"}]}, "category[1].text"),
        ({"valueQuantity": {"value": 1}, "valueString": "x"}, None),
    ],
)
def test_read_resource_still_drops_and_records_what_the_models_refuse(
    elements: dict[str, Any], path: str | None
) -> None:
    resource = observation(**elements)
    assert shapes.conforms(resource) is False
    fast, slow = read_both_ways(resource)
    assert fast == slow
    if path is not None:
        assert [d.path for d in fast.dropped] == [path]
        assert fast.resource is not None and fast.problem is None
        assert fast.resource["code"] == {"text": "x"}


def test_read_resource_reads_the_corpus_the_same_with_and_without_the_fast_path() -> None:
    for resource in bases():
        fast, slow = read_both_ways(resource)
        assert fast == slow
        assert fast.resource == resource and fast.dropped == () and fast.problem is None


@seeded(100)
@given(damaged())
def test_read_resource_reads_damaged_resources_the_same_with_and_without_the_fast_path(
    case: tuple[dict[str, Any], list[str]],
) -> None:
    resource, done = case
    fast, slow = read_both_ways(resource)
    assert fast == slow, done
    if shapes.conforms(resource):
        assert fast.resource == resource and fast.dropped == () and fast.problem is None, done
