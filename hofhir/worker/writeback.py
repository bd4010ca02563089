"""Subscription work: read a patient's data from the FHIR server, and write the result back.

One RiskAssessment per patient, found by an identifier hofhir owns and updated in place (never a
duplicate), and one DetectedIssue per patient while HO is suspected or excision readiness is unmet.

Cost per notification: one batch request reads the patient, their Conditions, Observations,
Procedures and MedicationRequests (`_count` 1000, the rest paged) and hofhir's own RiskAssessment and
DetectedIssue; a resource whose content (all but ids, meta and timestamps) is already on the server is
not written again; one that changed is PUT by its id (a conditional update by identifier when there is
none yet, so racing tasks still create one).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from hofhir.adapters.fhirclient import FhirClient
from hofhir.clinical.evaluate import Evaluation
from hofhir.clinical.model import Topic
from hofhir.fhir.dates import fhir_datetime
from hofhir.fhir.models import valid
from hofhir.fhir.read import ClinicalInput, from_resources
from hofhir.knowledge import Knowledge

IDENTIFIER_SYSTEM = "http://hofhir.org/fhir/sid/assessment"
RISK_SYSTEM = "http://terminology.hl7.org/CodeSystem/risk-probability"
RISK_CODES = {
    "low": ("low", "Low likelihood"),
    "moderate": ("moderate", "Moderate likelihood"),
    "high": ("high", "High likelihood"),
}
ISSUE_TOPICS = (Topic.HO_SUSPECTED, Topic.HO_SURGICAL_READINESS)
SEARCHES = (
    ("Condition", "patient"),
    ("Observation", "patient"),
    ("Procedure", "patient"),
    ("MedicationRequest", "patient"),
)
PAGE_SIZE = 1000  # `_count` per search: one page for nearly every patient (the rest is paged)
# Elements that change on every write without changing what the assessment says.
VOLATILE = frozenset({"id", "meta", "text", "occurrenceDateTime", "identifiedDateTime"})


@dataclass(frozen=True, slots=True)
class PatientRecord:
    """What one batch read of the FHIR server gives: the rules' input and hofhir's own resources
    about the patient as they are on the server now (by type: RiskAssessment, DetectedIssue)."""

    inputs: ClinicalInput
    current: dict[str, list[dict[str, Any]]]


@dataclass(frozen=True, slots=True)
class WriteBack:
    """References to the patient's RiskAssessment (and DetectedIssue), and which of them were already
    current on the server (not written again)."""

    references: dict[str, str]
    unchanged: tuple[str, ...] = ()


# hofhir's own resources about a patient: by subject (a reference search every server indexes) and
# hofhir's identifier.
OWNED = {"RiskAssessment": ("subject", "risk"), "DetectedIssue": ("patient", "issue")}


def _owned_search(rtype: str, patient_id: str) -> dict[str, str | int]:
    param, kind = OWNED[rtype]
    return {param: f"Patient/{patient_id}", "identifier": f"{IDENTIFIER_SYSTEM}|ho-{kind}-{patient_id}"}


def read_record(client: FhirClient, patient_id: str, k: Knowledge, deadline: float | None = None) -> PatientRecord:
    """The patient's resources the rules read and hofhir's own current ones, in one batch request."""
    reference = f"Patient/{patient_id}"
    searches: list[tuple[str, dict[str, str | int]]] = [
        (rtype, {param: reference, "_count": PAGE_SIZE}) for rtype, param in SEARCHES
    ]
    searches += [(rtype, _owned_search(rtype, patient_id)) for rtype in OWNED]
    (patient,), found = client.batch_read([("Patient", patient_id)], searches, deadline=deadline)
    resources: list[dict[str, Any]] = [patient]
    for matches in found[: len(SEARCHES)]:
        resources.extend(matches)
    inputs = from_resources(resources, k.terminology, "patient-view", patient_id)
    return PatientRecord(inputs, {"RiskAssessment": found[-2], "DetectedIssue": found[-1]})


def read_patient(client: FhirClient, patient_id: str, k: Knowledge, deadline: float | None = None) -> ClinicalInput:
    """The patient's resources the rules read, straight from the FHIR server (one batch, all pages)."""
    return read_record(client, patient_id, k, deadline).inputs


def risk_assessment(
    evaluation: Evaluation, patient_id: str, now: datetime, *, validated: bool = True
) -> dict[str, Any]:
    """The RiskAssessment for a patient: HO risk with the basis and the catalogue IDs as its reason."""
    risk = next((g for g in evaluation.guidance if g.topic is Topic.HO_RISK), None)
    # ho-rules-v1 §3a (1.1): outside the relevance window there is no ho-risk card, but the assessment
    # is still recorded, from the trace.
    assessed = evaluation.trace.get("assessment") or {}
    summary = risk.summary if risk else assessed.get("summary")
    rules = list(risk.rules) if risk else list(assessed.get("rules") or [])
    level = evaluation.trace.get("riskLevel")
    data: dict[str, Any] = {
        "identifier": [{"system": IDENTIFIER_SYSTEM, "value": f"ho-risk-{patient_id}"}],
        "status": "final",
        "subject": {"reference": f"Patient/{patient_id}"},
        "occurrenceDateTime": fhir_datetime(now),
        "code": {
            "coding": [
                {
                    "system": "http://hofhir.org/fhir/CodeSystem/card-topic",
                    "code": "ho-risk",
                    "display": "Heterotopic ossification risk",
                }
            ]
        },
        "method": {"text": f"hofhir rules, knowledge base {evaluation.trace.get('knowledgeVersion')}"},
        "basis": [{"reference": ref} for ref in _basis(evaluation)][:50],
    }
    if not data["basis"]:
        del data["basis"]
    if isinstance(level, str) and level in RISK_CODES:
        code, display = RISK_CODES[level]
        data["prediction"] = [
            {
                "outcome": {"text": "Heterotopic ossification"},
                "qualitativeRisk": {"coding": [{"system": RISK_SYSTEM, "code": code, "display": display}]},
                "rationale": summary,
            }
        ]
        data["note"] = [{"text": f"Rules: {', '.join(rules)}"}] if rules else []
    else:
        data["note"] = [{"text": "No heterotopic ossification risk population recorded."}]
    return _resource("RiskAssessment", _drop_none(data), validated)


def _resource(resource_type: str, data: dict[str, Any], validated: bool) -> dict[str, Any]:
    """Through the R4B model (`validated`), or the same content as a draft, for comparing only."""
    return valid(resource_type, data) if validated else {"resourceType": resource_type, **data}


def detected_issue(
    evaluation: Evaluation, patient_id: str, now: datetime, *, validated: bool = True
) -> dict[str, Any] | None:
    issues = [g for g in evaluation.guidance if g.topic in ISSUE_TOPICS]
    if not issues:
        return None
    return _resource(
        "DetectedIssue",
        {
            "identifier": [{"system": IDENTIFIER_SYSTEM, "value": f"ho-issue-{patient_id}"}],
            "status": "preliminary",
            "severity": "moderate",
            "code": {
                "coding": [
                    {
                        "system": "http://hofhir.org/fhir/CodeSystem/card-topic",
                        "code": issues[0].topic.value,
                        "display": issues[0].topic_display,
                    }
                ]
            },
            "patient": {"reference": f"Patient/{patient_id}"},
            "identifiedDateTime": fhir_datetime(now),
            "detail": "; ".join(g.summary for g in issues),
        },
        validated,
    )


def _basis(evaluation: Evaluation) -> list[str]:
    refs: list[str] = []
    for population in (evaluation.trace.get("populations") or {}).values():
        index = population.get("index")
        if isinstance(index, str) and "/" in index and "#" not in index:
            refs.append(index)
    return list(dict.fromkeys(refs))


def _drop_none(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _drop_none(v) for k, v in node.items() if v is not None and v != []}
    if isinstance(node, list):
        return [_drop_none(v) for v in node]
    return node


def meaning(resource: dict[str, Any]) -> dict[str, Any]:
    """What a written resource says, without what changes on every write (ids, meta, timestamps)."""
    return {key: value for key, value in resource.items() if key not in VOLATILE}


def _save(
    client: FhirClient, draft: dict[str, Any], current: list[dict[str, Any]] | None, deadline: float | None
) -> tuple[str, bool]:
    """Write the resource `draft` describes unless the server's copy already says the same (then the
    R4B model does not even run: what the server holds was valid when written); ("Type/id", written)."""
    rtype = draft["resourceType"]
    existing = current[0] if current is not None and len(current) == 1 else None
    if existing is not None and isinstance(existing.get("id"), str) and meaning(existing) == meaning(draft):
        return f"{rtype}/{existing['id']}", False
    resource = valid(rtype, {k: v for k, v in draft.items() if k != "resourceType"})
    if existing is not None and isinstance(existing.get("id"), str):
        if meaning(existing) == meaning(resource):
            return f"{rtype}/{existing['id']}", False
        saved = client.update({**resource, "id": existing["id"]}, deadline=deadline)  # in place, by id
    else:
        # None yet (or not known): a conditional update creates it once, however many tasks race.
        param, _ = OWNED[rtype]
        subject = resource.get(param) or {}
        saved = client.update_by_identifier(
            resource, IDENTIFIER_SYSTEM, narrowed_by={param: str(subject.get("reference"))}, deadline=deadline
        )
    return f"{rtype}/{saved.get('id')}", True


def write_back(
    client: FhirClient,
    evaluation: Evaluation,
    patient_id: str,
    now: datetime,
    deadline: float | None = None,
    current: dict[str, list[dict[str, Any]]] | None = None,
) -> WriteBack:
    """Create-or-update the patient's RiskAssessment (and DetectedIssue). With `current` (from
    `read_record`), a resource whose content is already on the server is not written again."""
    current = current or {}
    references: dict[str, str] = {}
    unchanged: list[str] = []
    drafts = (
        risk_assessment(evaluation, patient_id, now, validated=False),
        detected_issue(evaluation, patient_id, now, validated=False),
    )
    for draft in drafts:
        if draft is None:
            continue
        rtype = draft["resourceType"]
        references[rtype], written = _save(client, draft, current.get(rtype), deadline)
        if not written:
            unchanged.append(rtype)
    return WriteBack(references, tuple(unchanged))
