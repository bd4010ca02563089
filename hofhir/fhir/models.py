"""R4 validation with the fhir.resources R4B models (R4 data never goes through the default R5 models).

A resource that `shapes.conforms` (a walk over the models' element table, no pydantic) passes is valid
as it stands; only the rest is validated by the models, below.

Reading is tolerant: an element the R4B model refuses (an unknown element, a vendor's stray field, an R5
element in R4 data, a value of the wrong JSON type) is dropped and recorded, not the whole resource. A
resource is unreadable only when what remains still does not validate (a required element missing or
wrong, the resource itself not an object).

Validation results are cached per process, keyed by the resource's complete content (its orjson text,
sorted keys: the bytes themselves, so a hit is an exact match, not a hash's). Trade-off: one orjson.dumps
per resource (an eighth of the element-table walk, a hundredth of the models) and at most CACHE_BYTES of
memory buy skipping both for a resource seen before (an EHR sends the same chart on every hook).
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import orjson

from hofhir.fhir.shapes import conforms, in_model_order

# What the rules read, and so what is worth validating.
CLINICAL_TYPES = frozenset(
    {
        "Patient",
        "Condition",
        "Observation",
        "Procedure",
        "MedicationRequest",
        "MedicationStatement",
        "MedicationAdministration",
        "ServiceRequest",
        "DiagnosticReport",
        "Medication",
    }
)
# Each round drops what the model refused; a model's whole-resource checks (one value per choice
# element) only run once the elements pass, so a few rounds are needed. Bounded: odd input never loops.
MAX_ROUNDS = 6
MAX_DROPS = 200  # a resource that needs more than this many elements dropped is not worth reading
CACHE_SIZE = 16_384  # entries
CACHE_BYTES = 16 * 1024 * 1024  # of keys; resources larger than CACHE_ENTRY_BYTES are not kept
CACHE_ENTRY_BYTES = 64 * 1024
_MAX_JSON_DEPTH = 254  # orjson's limit when it writes the cache key
_CHOICE = re.compile(r"Any of one field value is expected from this list \[([^\]]*)\]")
_REQUIRED_CHOICE = re.compile(r"Expect any of field value from this list \[([^\]]*)\]")
_FORMAT = re.compile(r"(\w+) value string does not match spec regex")

Path = tuple[str | int, ...]


@lru_cache(maxsize=64)
def _model(resource_type: str) -> Any:
    # Imported on first use: data the element-table check passes never needs the models (nor pydantic).
    from fhir.resources.R4B import get_fhir_model_class

    return get_fhir_model_class(resource_type)


@dataclass(frozen=True)
class Dropped:
    """One element left out of a resource: its path (FHIRPath-like, e.g. `code.coding[0].system`) and why."""

    path: str
    reason: str

    def as_dict(self) -> dict[str, str]:
        return {"path": self.path, "reason": self.reason}


@dataclass(frozen=True)
class Reading:
    """What tolerant reading made of one resource.

    `resource` is the readable resource (the input itself when nothing was dropped, else a copy without
    the dropped elements), or None when it cannot be read; then `problem` says why in plain words.
    """

    resource: dict[str, Any] | None
    dropped: tuple[Dropped, ...] = ()
    problem: str | None = None


@dataclass(frozen=True)
class _Outcome:
    """A cached result: the element paths to drop, the reasons, and the problem if unreadable."""

    drops: tuple[Path, ...]
    dropped: tuple[Dropped, ...]
    problem: str | None


_VALID = _Outcome((), (), None)


class _Cache:
    """Least recently used first out, bounded by entries and by the bytes of the keys.

    Hand-written: cachetools' caches bound one measure (count or size); this needs both, under one lock."""

    def __init__(self, size: int, max_bytes: int = CACHE_BYTES) -> None:
        self._size = size
        self._max_bytes = max_bytes
        self._bytes = 0
        self._data: OrderedDict[bytes, _Outcome] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: bytes) -> _Outcome | None:
        with self._lock:
            found = self._data.get(key)
            if found is not None:
                self._data.move_to_end(key)
            return found

    def put(self, key: bytes, value: _Outcome) -> None:
        if len(key) > CACHE_ENTRY_BYTES:
            return
        with self._lock:
            if key not in self._data:
                self._bytes += len(key)
            self._data[key] = value
            while len(self._data) > self._size or self._bytes > self._max_bytes:
                old, _ = self._data.popitem(last=False)
                self._bytes -= len(old)

    def clear(self) -> None:
        with self._lock:
            self._data.clear()
            self._bytes = 0


_cache = _Cache(CACHE_SIZE)


def clear_cache() -> None:
    _cache.clear()


def _key(resource: dict[str, Any]) -> bytes | None:
    try:
        return orjson.dumps(resource, option=orjson.OPT_SORT_KEYS)
    except (orjson.JSONEncodeError, TypeError):  # nested too deep (or not JSON data)
        return None


def read_resource(resource: Any) -> Reading:
    """Validate `resource` as R4 (R4B models), dropping what the model refuses; never raises."""
    if not isinstance(resource, dict):
        return Reading(None, (), "not a JSON object")
    rtype = resource.get("resourceType")
    if not isinstance(rtype, str):
        return Reading(None, (), "no resourceType")
    key = _key(resource)
    if key is None:  # JSON nested deeper than orjson writes (254 levels): no FHIR resource does that
        return Reading(None, (), f"nested more than {_MAX_JSON_DEPTH} levels deep")
    outcome = _cache.get(key)
    if outcome is None:
        if conforms(resource):
            outcome = _VALID
        else:
            try:
                model = _model(rtype)
            except (KeyError, ValueError, AttributeError, ImportError):
                return Reading(None, (), f"{_short(rtype)} is not an R4 resource type")
            outcome = _read(model, resource)
        _cache.put(key, outcome)
    if outcome.problem is not None:
        return Reading(None, outcome.dropped, outcome.problem)
    if not outcome.drops:
        return Reading(resource, (), None)
    return Reading(_without(resource, outcome.drops), outcome.dropped, None)


def _read(model: Any, resource: dict[str, Any]) -> _Outcome:
    current = resource
    drops: list[Path] = []
    dropped: list[Dropped] = []
    from pydantic import ValidationError

    for _ in range(MAX_ROUNDS):
        try:
            model.model_validate(current)
        except ValidationError as exc:
            errors = exc.errors()
        except RecursionError:
            return _Outcome(tuple(drops), tuple(dropped), "nested too deeply to read")
        except (TypeError, ValueError, AttributeError, KeyError):
            return _Outcome(tuple(drops), tuple(dropped), "cannot be read as FHIR R4")
        else:
            return _Outcome(tuple(drops), tuple(dropped), None)
        round_drops: list[Path] = []
        for err in errors:
            for path in _paths_to_drop(current, err):
                if not path:
                    return _Outcome(tuple(drops), tuple(dropped), _unreadable(err, dropped))
                if path not in round_drops:
                    round_drops.append(path)
                    dropped.append(Dropped(_render(path), _plain(err, path)))
        if not round_drops or len(drops) + len(round_drops) > MAX_DROPS:
            return _Outcome(tuple(drops), tuple(dropped), "too many invalid elements")
        drops.extend(round_drops)
        current = _without(resource, tuple(drops))
    return _Outcome(tuple(drops), tuple(dropped), "still invalid after dropping the refused elements")


def _unreadable(err: Any, dropped: list[Dropped]) -> str:
    """Why a resource cannot be read; a required element that was itself refused says so."""
    problem = _plain(err, ())
    names = [p for p in err.get("loc", ()) if isinstance(p, str)]
    if names and str(err.get("type", "")).endswith("missing"):
        refused = next((d for d in dropped if d.path == names[-1]), None)
        if refused is not None:
            return f"required element {refused.path} {refused.reason.removeprefix('has ')}".replace(
                " the wrong", " has the wrong"
            )
    return problem


def _paths_to_drop(data: dict[str, Any], err: Any) -> list[Path]:
    """The elements to drop for one pydantic error: the deepest part of its location present in the data.

    A location that ends below what the data holds (a required element missing inside an element) drops
    the element that holds it; a location at the resource itself cannot be dropped (returns [()]), except
    a choice element given more than once, where every value given is dropped.
    """
    loc = tuple(p for p in err.get("loc", ()) if isinstance(p, str | int))
    node: Any = data
    found: list[str | int] = []
    for part in loc:
        if not _holds(node, part):
            break
        node = node[part]
        found.append(part)
    if found:
        return [tuple(found)]
    match = _CHOICE.search(str(err.get("msg", "")))
    if match:
        names = [n.strip().strip("'\"") for n in match.group(1).split(",")]
        present = [(n,) for n in names if n in data]
        if len(present) > 1:
            return list(present)
    return [()]


def _holds(node: Any, part: str | int) -> bool:
    if isinstance(node, dict):
        return isinstance(part, str) and part in node
    return isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)


_DROP = object()


def _without(resource: dict[str, Any], drops: Sequence[Path]) -> dict[str, Any]:
    """A copy of `resource` without the elements at `drops`, copied only along those paths.

    Elements left empty by a drop are dropped in turn (an empty element is not valid FHIR either).
    """
    out = dict(resource)
    copied = {id(out)}
    for path in drops:
        node: Any = out
        for part in path[:-1]:
            try:
                child = node[part]
            except (KeyError, IndexError, TypeError):
                break
            if not isinstance(child, dict | list):
                break
            if id(child) not in copied:
                child = dict(child) if isinstance(child, dict) else list(child)
                copied.add(id(child))
                node[part] = child
            node = child
        else:
            last = path[-1]
            if isinstance(node, dict) and isinstance(last, str) and last in node:
                node[last] = _DROP
            elif isinstance(node, list) and isinstance(last, int) and 0 <= last < len(node):
                node[last] = _DROP  # marked, removed below, so the other indices of this list stay right
    _clean(out, copied)
    return out


def _clean(node: Any, copied: set[int]) -> None:
    """Remove the drop markers, and the copied elements they leave empty, below `node`."""
    if isinstance(node, dict):
        for key in list(node):
            child = node[key]
            if id(child) in copied:
                _clean(child, copied)
                if not child:
                    del node[key]
            elif child is _DROP:
                del node[key]
    elif isinstance(node, list):
        for child in node:
            if id(child) in copied:
                _clean(child, copied)
        node[:] = [c for c in node if c is not _DROP and not (id(c) in copied and not c)]


def _render(path: Path) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


_PLAIN = {
    "extra_forbidden": "not an element of this resource type in FHIR R4",
    "missing": "a required element is missing",
    "json_invalid": "must be a JSON object or array, not a plain value",
    "model_validation_format": "has the wrong JSON type",
    "model_field_validation.missing": "a required element is missing",
    "string_pattern_mismatch": "is not in the FHIR format for this element",
    "string_too_short": "is empty",
}


def _plain(err: Any, path: Path) -> str:
    """A pydantic error as plain words (no Python reprs)."""
    kind = str(err.get("type", ""))
    msg = str(err.get("msg", "invalid"))
    if kind in _PLAIN:
        text = _PLAIN[kind]
        if kind.endswith("missing"):
            missing = [p for p in err.get("loc", ()) if isinstance(p, str)]
            if missing:
                text = f"required element {missing[-1]} is missing"
        return text
    if kind.endswith("_type") or kind.endswith("_parsing"):
        expected = kind.rsplit("_", 1)[0].replace("_", " ")
        return f"has the wrong JSON type (expected {_JSON_NAMES.get(expected, expected)})"
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, ") :]
    if _CHOICE.search(msg):
        return "a choice element is given more than once"
    required = _REQUIRED_CHOICE.search(msg)
    if required:
        names = [n.strip().strip("'\"") for n in required.group(1).split(",")]
        return f"one of {' or '.join(names)} is required"
    fmt = _FORMAT.search(msg)
    if fmt:
        return f"is not a valid FHIR {fmt.group(1).lower()}"
    msg = re.sub(r"<class '([A-Za-z_.]+)'>", r"\1", msg)
    return " ".join(msg.split())[:200] or "invalid"


_JSON_NAMES = {
    "string": "a string",
    "list": "an array",
    "dict": "an object",
    "model": "an object",
    "int": "a whole number",
    "float": "a number",
    "decimal": "a number",
    "bool": "true or false",
}


def _short(value: str) -> str:
    return value if len(value) <= 40 else value[:39] + "…"


def validation_problem(resource: dict[str, Any]) -> str | None:
    """None when `resource` is valid R4 (R4B models) as it stands, else a one-line reason in plain words."""
    reading = read_resource(resource)
    if reading.problem is not None:
        return reading.problem
    if reading.dropped:
        return "; ".join(f"{d.path}: {d.reason}" for d in reading.dropped[:3]) + (
            f" (and {len(reading.dropped) - 3} more)" if len(reading.dropped) > 3 else ""
        )
    return None


def build(resource_type: str, data: dict[str, Any]) -> dict[str, Any]:
    """Build a resource through its R4B model and return its JSON form (raises on invalid input)."""
    model = _model(resource_type).model_validate({"resourceType": resource_type, **data})
    return dict(model.model_dump(mode="json", exclude_none=True))


def valid(resource_type: str, data: dict[str, Any]) -> dict[str, Any]:
    """`build`'s result without the model when the element-table check passes the resource as written
    (then it is put in the model's element order); else through the model (raises on invalid input)."""
    candidate = {"resourceType": resource_type, **data}
    return in_model_order(candidate) if conforms(candidate) else build(resource_type, data)
