"""Entry and Measurement write their own __init__ (faster than a frozen dataclass's): it must be the one
dataclass would write, and the instances as frozen, equal and hashable as before."""

from __future__ import annotations

import dataclasses
import inspect
from datetime import UTC, datetime

import pytest

from hofhir.clinical.facts import Entry, Measurement


@pytest.mark.parametrize("cls", [Entry, Measurement])
def test_init_is_the_dataclass_one(cls: type) -> None:
    params = list(inspect.signature(cls).parameters.values())
    fields = dataclasses.fields(cls)
    assert [p.name for p in params] == [f.name for f in fields]
    for p, f in zip(params, fields, strict=True):
        assert p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD
        assert p.default == (inspect.Parameter.empty if f.default is dataclasses.MISSING else f.default)
        assert f.default_factory is dataclasses.MISSING


def test_instances_are_frozen_and_compare_by_value() -> None:
    when = datetime(2024, 1, 2, tzinfo=UTC)
    a = Entry("alp", "Observation/1", "Observation", "ALP", when, reasons=("x",))
    b = Entry(concept="alp", resource="Observation/1", resource_type="Observation", display="ALP", when=when)
    assert a == dataclasses.replace(b, reasons=("x",)) and hash(a) == hash(dataclasses.replace(b, reasons=("x",)))
    assert dataclasses.asdict(b)["active"] is True and b.until is None
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.concept = "calcium"  # type: ignore[misc]
    m = Measurement("alp", "Observation/1", "ALP", when, 120.0, "U/L", 40.0, 130.0, "lab")
    assert m.above_range is False and m.unit_known and m.original == "" and m.interpretation == ""
    assert repr(m).startswith("Measurement(concept='alp'")
    with pytest.raises(dataclasses.FrozenInstanceError):
        m.value = 1.0  # type: ignore[misc]
