"""Reading FHIR R4 JSON: CDS Hooks requests, Bundles, NDJSON folders.

Parsing uses orjson. A cheap check on the dicts keeps only the resources the rules can use (clinical
types whose codes fall in a hofhir value set); only those are validated with the R4B models, tolerantly:
an element the model refuses is dropped and recorded (`ClinicalInput.dropped`), the rest of the resource
kept. A resource that still cannot be read, or that loses the codes that made it relevant, is left out
and recorded (`ClinicalInput.rejected`; `needed` ones make the data-unreadable card). Nothing here raises
on odd FHIR: every value from the client may be of any JSON type.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson

from hofhir.fhir.models import CLINICAL_TYPES, Reading, read_resource
from hofhir.knowledge.terminology import Terminology

PATIENT_REFERENCE_FIELDS = ("subject", "patient")
CONDITION_TEXT_SETS = frozenset({"flaccid_limb"})
MAX_DROPPED_IN_TRACE = 1000  # the trace lists at most this many dropped elements (it travels to the worker)


class InputError(ValueError):
    """The input is not something hofhir can read (not JSON, not FHIR, not a CDS Hooks request)."""


@dataclass
class Rejection:
    resource: str  # "Observation/123" or "Observation#4" when it has no id
    reason: str
    # True when the rules would have read it (a relevant record, the patient, a relevant draft order):
    # such a record is never left out silently (the data-unreadable card).
    needed: bool = True

    @property
    def resource_type(self) -> str:
        return self.resource.split("/", 1)[0].split("#", 1)[0] or "Resource"

    def as_dict(self) -> dict[str, Any]:
        return {"resource": self.resource, "reason": self.reason, "needed": self.needed}


@dataclass
class ClinicalInput:
    """What the rules get: the patient, the relevant validated resources, the draft orders, the hook."""

    hook: str
    patient: dict[str, Any] | None
    resources: list[dict[str, Any]] = field(default_factory=list)
    draft_orders: list[dict[str, Any]] = field(default_factory=list)
    context: dict[str, Any] = field(default_factory=dict)
    rejected: list[Rejection] = field(default_factory=list)
    seen: int = 0
    dropped: list[dict[str, str]] = field(default_factory=list)  # {resource, path, reason}: elements left out
    # The value sets of each of `resources` (same order), as selection found them, so that the facts do not
    # match every resource again. Not sent to a worker: there (or when its length differs) they are found anew.
    relevance: list[frozenset[str]] = field(default_factory=list)

    def sets_of(self, index: int, terminology: Terminology) -> set[str] | frozenset[str]:
        """The value sets of `resources[index]`."""
        if len(self.relevance) == len(self.resources):
            return self.relevance[index]
        return relevant_sets(self.resources[index], terminology)

    def as_dict(self) -> dict[str, Any]:
        return {
            "hook": self.hook,
            "patient": self.patient,
            "resources": self.resources,
            "draftOrders": self.draft_orders,
            "context": self.context,
            "rejected": [r.as_dict() for r in self.rejected],
            "seen": self.seen,
            "dropped": self.dropped,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ClinicalInput:
        return cls(
            hook=str(data.get("hook", "")),
            patient=data.get("patient"),
            resources=list(data.get("resources") or []),
            draft_orders=list(data.get("draftOrders") or []),
            context=dict(data.get("context") or {}),
            rejected=[Rejection(**r) for r in data.get("rejected") or []],
            seen=int(data.get("seen") or 0),
            dropped=list(data.get("dropped") or []),
        )


def loads(raw: bytes | str) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InputError(f"not valid JSON: {exc}") from exc


def label(resource: dict[str, Any], index: int | None = None) -> str:
    rtype = resource.get("resourceType")
    rtype = rtype[:64] if isinstance(rtype, str) and rtype else "Resource"
    rid = resource.get("id")
    if isinstance(rid, str) and rid:
        return f"{rtype}/{rid}"
    return f"{rtype}#{index}" if index is not None else str(rtype)


# ---------- Bundles and references ----------


def bundle_resources(bundle: dict[str, Any]) -> list[dict[str, Any]]:
    """The entry resources of a Bundle, with urn:uuid references rewritten to Type/id.

    Transaction bundles (Synthea) name resources by fullUrl urn:uuid:…; resources without an id get the
    uuid as id so that references resolve. Search bundles' OperationOutcome entries are dropped.
    """
    entries = bundle.get("entry")
    if not isinstance(entries, list):
        return []
    urn_map: dict[str, str] = {}
    out: list[dict[str, Any]] = []
    for entry in entries:
        if not isinstance(entry, dict):
            continue
        res = entry.get("resource")
        if not isinstance(res, dict) or not isinstance(res.get("resourceType"), str):
            continue
        search = entry.get("search")
        if res["resourceType"] == "OperationOutcome" or (isinstance(search, dict) and search.get("mode") == "outcome"):
            continue
        full_url = entry.get("fullUrl")
        if isinstance(full_url, str) and full_url:
            rid = res.get("id")
            if (not isinstance(rid, str) or not rid) and full_url.startswith("urn:uuid:"):
                res = {**res, "id": full_url[len("urn:uuid:") :]}
                rid = res["id"]
            if isinstance(rid, str) and rid:
                urn_map[full_url] = f"{res['resourceType']}/{rid}"
        out.append(res)
    if urn_map:
        out = [_rewrite_patient_refs(r, urn_map) for r in out]
    return out


def _rewrite_patient_refs(resource: dict[str, Any], urn_map: dict[str, str]) -> dict[str, Any]:
    changed: dict[str, Any] = {}
    for key in PATIENT_REFERENCE_FIELDS:
        ref = resource.get(key)
        if isinstance(ref, dict) and isinstance(ref.get("reference"), str) and ref["reference"] in urn_map:
            changed[key] = {**ref, "reference": urn_map[ref["reference"]]}
    return {**resource, **changed} if changed else resource


def patient_reference(resource: dict[str, Any]) -> str | None:
    for key in PATIENT_REFERENCE_FIELDS:
        ref = resource.get(key)
        if isinstance(ref, dict) and isinstance(ref.get("reference"), str):
            value: str = ref["reference"]
            # Absolute references end in Patient/<id>; keep the relative form.
            marker = value.rfind("Patient/")
            return value[marker:] if marker >= 0 else value
    return None


# ---------- Selecting what the rules can use ----------


def _codeable_concepts(resource: dict[str, Any]) -> Iterator[Any]:
    rtype = resource.get("resourceType")
    yield resource.get("code")
    if rtype == "Observation":
        yield resource.get("valueCodeableConcept")
        for comp in _list(resource.get("component")):
            if isinstance(comp, dict):
                yield comp.get("code")
    elif rtype in ("MedicationRequest", "MedicationStatement", "MedicationAdministration"):
        yield resource.get("medicationCodeableConcept")
        for contained in _list(resource.get("contained")):
            if isinstance(contained, dict) and contained.get("resourceType") == "Medication":
                yield contained.get("code")
    elif rtype == "DiagnosticReport":
        yield from _list(resource.get("conclusionCode"))


def _list(value: Any) -> list[Any]:
    """A client's array, or nothing when it sent another JSON type."""
    return value if isinstance(value, list) else []


_TEXT_TYPES = frozenset(
    {
        "MedicationRequest",
        "MedicationStatement",
        "MedicationAdministration",
        "ServiceRequest",
        "Procedure",
        "DiagnosticReport",
    }
)


def relevant_sets(resource: dict[str, Any], terminology: Terminology) -> set[str]:
    """The value sets a resource's codes (or, for medications and orders, its texts) fall in."""
    rtype = resource.get("resourceType")
    use_text = isinstance(rtype, str) and rtype in _TEXT_TYPES
    if rtype == "Observation" and "valueCodeableConcept" not in resource and "component" not in resource:
        # Most results (a number): the code alone, without the generator below.
        return terminology.sets_for_concept(resource.get("code"), use_text=use_text)
    found: set[str] = set()
    for concept in _codeable_concepts(resource):
        found |= terminology.sets_for_concept(concept, use_text=use_text)
        if rtype == "Condition" and isinstance(concept, dict):
            # Findings with no code of their own (a flaccid limb) are recognised by their text.
            texts = [concept.get("text")] + [
                c.get("display") for c in _list(concept.get("coding")) if isinstance(c, dict)
            ]
            for text in texts:
                if isinstance(text, str):
                    found |= terminology.sets_for_text(text, only=CONDITION_TEXT_SETS)
    return found


def select(
    resources: Iterable[dict[str, Any]],
    terminology: Terminology,
    patient_id: str | None,
    dropped: list[dict[str, str]] | None = None,
    relevance: list[frozenset[str]] | None = None,
) -> tuple[dict[str, Any] | None, list[dict[str, Any]], list[Rejection], int]:
    """Pick the patient and the relevant resources about them; read those tolerantly.

    Returns (patient, kept, rejected, seen); elements dropped on the way are appended to `dropped`, and the
    value sets of each kept resource to `relevance`.
    """
    patient: dict[str, Any] | None = None
    candidates: list[tuple[int, dict[str, Any], set[str]]] = []
    rejected: list[Rejection] = []
    seen = 0
    patients: list[dict[str, Any]] = []
    dropped = dropped if dropped is not None else []
    for index, res in enumerate(resources):
        seen += 1
        rtype = res.get("resourceType") if isinstance(res, dict) else None
        if not isinstance(rtype, str):
            continue
        if rtype == "Patient":
            patients.append(res)
        elif rtype in CLINICAL_TYPES and rtype != "Medication":
            sets = relevant_sets(res, terminology)
            if sets:
                candidates.append((index, res, sets))
    if patient_id:
        patient = next((p for p in patients if p.get("id") == patient_id), None)
    elif patients:
        patient = patients[0]
    if patient is not None:
        patient = _tolerant(patient, label(patient), rejected, dropped)
    own_id = (patient or {}).get("id")
    wanted = f"Patient/{patient_id or (own_id if isinstance(own_id, str) else '')}"
    kept: list[dict[str, Any]] = []
    relevance = relevance if relevance is not None else []
    for index, res, sets in candidates:
        ref = patient_reference(res)
        if ref is not None and wanted != "Patient/" and ref != wanted:
            continue  # another patient's resource in a multi-patient bundle
        readable = _tolerant(res, label(res, index), rejected, dropped, terminology)
        if readable is not None:
            kept.append(readable)
            # A resource that lost elements is matched again: its codes may be among what was lost.
            relevance.append(frozenset(sets if readable is res else relevant_sets(readable, terminology)))
    return patient, kept, rejected, seen


def _tolerant(
    resource: dict[str, Any],
    name: str,
    rejected: list[Rejection],
    dropped: list[dict[str, str]],
    terminology: Terminology | None = None,
    needed: bool = True,
) -> dict[str, Any] | None:
    """The readable part of a resource, or None (recorded in `rejected`). With `terminology`, a resource
    that loses the codes that made it relevant is unreadable too: the rules could not use it."""
    reading: Reading = read_resource(resource)
    if reading.dropped:
        room = MAX_DROPPED_IN_TRACE - len(dropped)
        dropped.extend({"resource": name, "path": d.path, "reason": d.reason} for d in reading.dropped[: max(0, room)])
    if reading.resource is None:
        rejected.append(Rejection(name, reading.problem or "cannot be read", needed))
        return None
    if terminology is not None and reading.dropped and not relevant_sets(reading.resource, terminology):
        lost = ", ".join(sorted({d.path for d in reading.dropped}))[:200]
        rejected.append(Rejection(name, f"its codes could not be read ({lost})", needed))
        return None
    return reading.resource


# ---------- The three input forms ----------


def from_hook_request(
    request: dict[str, Any], terminology: Terminology, prefetch: dict[str, Any] | None = None
) -> ClinicalInput:
    """A CDS Hooks request whose prefetch is complete (the web edge fills in what was absent)."""
    if not isinstance(request, dict):
        raise InputError("a CDS Hooks request must be a JSON object")
    hook = request.get("hook")
    context = request.get("context")
    if not isinstance(hook, str) or not hook:
        raise InputError("a CDS Hooks request needs a 'hook' string")
    if not isinstance(context, dict):
        raise InputError("a CDS Hooks request needs a 'context' object")
    data = prefetch if prefetch is not None else request.get("prefetch") or {}
    if not isinstance(data, dict):
        raise InputError("'prefetch' must be an object")
    resources: list[dict[str, Any]] = []
    for value in data.values():
        resources.extend(prefetch_resources(value))
    patient_id = context.get("patientId") if isinstance(context.get("patientId"), str) else None
    dropped: list[dict[str, str]] = []
    relevance: list[frozenset[str]] = []
    patient, kept, rejected, seen = select(resources, terminology, patient_id, dropped, relevance)
    drafts, draft_rejections = draft_orders(context, terminology, dropped)
    return ClinicalInput(
        hook=hook,
        patient=patient,
        resources=kept,
        draft_orders=drafts,
        context=_context_subset(context),
        rejected=rejected + draft_rejections,
        seen=seen,
        dropped=dropped,
        relevance=relevance,
    )


def prefetch_resources(value: Any) -> list[dict[str, Any]]:
    """Resources of one prefetch value: a resource, a Bundle, or null (no data)."""
    if not isinstance(value, dict) or not isinstance(value.get("resourceType"), str):
        return []
    if value["resourceType"] == "Bundle":
        return bundle_resources(value)
    if value["resourceType"] == "OperationOutcome":
        return []
    return [value]


def draft_orders(
    context: dict[str, Any], terminology: Terminology | None = None, dropped: list[dict[str, str]] | None = None
) -> tuple[list[dict[str, Any]], list[Rejection]]:
    """The draft orders, read tolerantly; an unreadable one is `needed` when its codes are HO-relevant."""
    drafts = context.get("draftOrders")
    if not isinstance(drafts, dict):
        return [], []
    out: list[dict[str, Any]] = []
    rejected: list[Rejection] = []
    dropped = dropped if dropped is not None else []
    for index, res in enumerate(bundle_resources(drafts)):
        needed = terminology is None or bool(relevant_sets(res, terminology))
        readable = _tolerant(res, label(res, index), rejected, dropped, needed=needed)
        if readable is not None:
            out.append(readable)
    return out, rejected


def _context_subset(context: dict[str, Any]) -> dict[str, Any]:
    """The context fields the rules read (ids only; draft orders travel separately)."""
    return {k: context[k] for k in ("patientId", "encounterId", "userId", "selections") if k in context}


def from_bundle(bundle: dict[str, Any], terminology: Terminology, hook: str = "patient-view") -> ClinicalInput:
    if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
        raise InputError("expected a FHIR Bundle")
    return from_resources(bundle_resources(bundle), terminology, hook)


def from_resources(
    resources: list[dict[str, Any]],
    terminology: Terminology,
    hook: str = "patient-view",
    patient_id: str | None = None,
) -> ClinicalInput:
    dropped: list[dict[str, str]] = []
    relevance: list[frozenset[str]] = []
    patient, kept, rejected, seen = select(resources, terminology, patient_id, dropped, relevance)
    pid = patient_id or (patient or {}).get("id")
    context = {"patientId": pid} if isinstance(pid, str) else {}
    return ClinicalInput(
        hook=hook,
        patient=patient,
        resources=kept,
        context=context,
        rejected=rejected,
        seen=seen,
        dropped=dropped,
        relevance=relevance,
    )
