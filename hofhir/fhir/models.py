"""R4 validation with the fhir.resources R4B models (R4 data never goes through the default R5 models)."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from fhir.resources.R4B import get_fhir_model_class
from pydantic import ValidationError

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


@lru_cache(maxsize=64)
def _model(resource_type: str) -> Any:
    return get_fhir_model_class(resource_type)


def validation_problem(resource: dict[str, Any]) -> str | None:
    """None when `resource` is valid R4 (R4B models), else a one-line reason naming the first bad fields."""
    rtype = resource.get("resourceType")
    if not isinstance(rtype, str):
        return "no resourceType"
    try:
        model = _model(rtype)
    except (KeyError, ValueError):
        return f"unknown resourceType {rtype!r}"
    try:
        model.model_validate(resource)
    except ValidationError as exc:
        errors = exc.errors()
        parts = []
        for err in errors[:3]:
            loc = ".".join(str(p) for p in err.get("loc", ()) if p != "__root__") or rtype
            parts.append(f"{loc}: {err.get('msg', 'invalid')}")
        more = f" (+{len(errors) - 3} more)" if len(errors) > 3 else ""
        return "; ".join(parts) + more
    except (TypeError, ValueError, AttributeError, KeyError, RecursionError) as exc:
        return f"{type(exc).__name__}: {str(exc)[:200]}"
    return None


def build(resource_type: str, data: dict[str, Any]) -> dict[str, Any]:
    """Build a resource through its R4B model and return its JSON form (raises on invalid input)."""
    model = _model(resource_type).model_validate({"resourceType": resource_type, **data})
    return dict(model.model_dump(mode="json", exclude_none=True))
